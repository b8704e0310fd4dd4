package geo

import (
	"net/netip"
	"sync"
)

// cache remembers recent lookups, misses included: the same remote shows up
// in many flows and on every refresh. It keeps two generations of at most
// size/2 entries each; when the young one is full the old one is dropped.
// That bounds memory without per-entry bookkeeping and keeps whatever was
// used during the last generation.
type cache struct {
	mu       sync.Mutex
	half     int
	cur, old map[netip.Addr]Info
}

func newCache(size int) *cache {
	half := max(size/2, 1)
	return &cache{half: half, cur: make(map[netip.Addr]Info)}
}

func (c *cache) get(a netip.Addr) (Info, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if v, ok := c.cur[a]; ok {
		return v, true
	}
	if v, ok := c.old[a]; ok {
		c.putLocked(a, v) // still in use: keep it past the next rotation
		return v, true
	}
	return Info{}, false
}

func (c *cache) put(a netip.Addr, v Info) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(a, v)
}

func (c *cache) putLocked(a netip.Addr, v Info) {
	if len(c.cur) >= c.half {
		c.old, c.cur = c.cur, make(map[netip.Addr]Info, c.half)
	}
	c.cur[a] = v
}

func (c *cache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.old)
}

func (c *cache) clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cur, c.old = make(map[netip.Addr]Info), nil
}
