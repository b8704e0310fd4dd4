package rdns

import (
	"container/list"
	"context"
	"errors"
	"net/netip"
	"sync"
	"time"
)

// Cache answers reverse DNS questions from memory and resolves the rest in
// the background. It is safe for concurrent use. Create it with New and
// release it with Close.
type Cache struct {
	cfg     Config
	res     addrLookuper
	queue   chan netip.Addr
	changed chan struct{}

	ctx    context.Context // cancelled by Close; parent of every lookup
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	entries  map[netip.Addr]*list.Element // values are *entry
	lru      list.List                    // most recently used at the front
	inflight map[netip.Addr]struct{}      // queued or being looked up
	stats    Stats                        // counters only; gauges are filled in by Stats
	closed   bool
}

// entry is one cached answer. An empty name is a negative entry.
type entry struct {
	addr    netip.Addr
	name    string
	expires time.Time
}

// Stats counts what a Cache has done since New. Counters only grow.
type Stats struct {
	Lookups  uint64 // lookups started by the workers
	Hits     uint64 // Name calls answered by a fresh entry, positive or negative
	Misses   uint64 // Name calls with no entry or an expired one
	NotFound uint64 // lookups answered with no name (NXDOMAIN, no PTR)
	Failures uint64 // lookups that failed otherwise (refused, server failure, ...)
	Timeouts uint64 // lookups cut off by Config.Timeout
	Dropped  uint64 // requests not queued because the queue was full

	Inflight int // lookups queued or running now
	Entries  int // addresses cached now, positive and negative

	// LastErr is the latest failure or timeout, for a status line; nil if none.
	LastErr error
}

// New starts the workers of a cache configured by cfg. Zero fields of cfg
// take their defaults.
func New(cfg Config) *Cache {
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	c := &Cache{
		cfg:      cfg,
		res:      interruptible(cfg.Resolver),
		queue:    make(chan netip.Addr, cfg.QueueLen),
		changed:  make(chan struct{}, 1),
		ctx:      ctx,
		cancel:   cancel,
		entries:  make(map[netip.Addr]*list.Element),
		inflight: make(map[netip.Addr]struct{}),
	}
	c.wg.Add(cfg.Workers)
	for range cfg.Workers {
		go c.work()
	}
	return c
}

// Name returns the cached name of a, or "" if none is known yet or the
// address has none. Without a fresh entry it queues a lookup, unless one is
// already queued or running, and returns at once: the name appears on a
// later call. An expired name is still returned while it is refreshed, so a
// screen does not blank names every TTL.
//
// IPv4-mapped IPv6 addresses are treated as IPv4, zones are ignored, and the
// invalid and unspecified addresses are never looked up.
func (c *Cache) Name(a netip.Addr) string {
	a = a.Unmap().WithZone("")
	if !a.IsValid() || a.IsUnspecified() {
		return ""
	}
	now := c.cfg.now()

	c.mu.Lock()
	defer c.mu.Unlock()
	var name string
	if el, ok := c.entries[a]; ok {
		c.lru.MoveToFront(el)
		e := el.Value.(*entry)
		if now.Before(e.expires) {
			c.stats.Hits++
			return e.name
		}
		name = e.name
	}
	c.stats.Misses++
	c.request(a)
	return name
}

// request queues a lookup of a unless one is pending. It never blocks: a
// full queue drops the request, and the next Name call tries again.
// c.mu must be held.
func (c *Cache) request(a netip.Addr) {
	if c.closed {
		return
	}
	if _, ok := c.inflight[a]; ok {
		return
	}
	select {
	case c.queue <- a:
		c.inflight[a] = struct{}{}
	default:
		c.stats.Dropped++
	}
}

// Changed returns a channel that receives a value when new names have
// arrived since the last receive. Signals coalesce: one pending value stands
// for any number of names, so a UI can redraw once. It is never closed.
func (c *Cache) Changed() <-chan struct{} {
	return c.changed
}

// Stats returns a copy of the counters and the current gauges.
func (c *Cache) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.stats
	s.Inflight = len(c.inflight)
	s.Entries = c.lru.Len()
	return s
}

// Close stops the workers, abandoning queued lookups and cancelling running
// ones, and waits for them to return. Name keeps answering from the cache
// afterwards but queues nothing. Close may be called more than once.
func (c *Cache) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()

	c.cancel()
	c.wg.Wait()

	c.mu.Lock()
	defer c.mu.Unlock()
	for len(c.queue) > 0 {
		<-c.queue
	}
	clear(c.inflight)
}

// work runs lookups from the queue until Close.
func (c *Cache) work() {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case a := <-c.queue:
			c.lookup(a)
		}
	}
}

// lookup resolves a and stores the answer.
func (c *Cache) lookup(a netip.Addr) {
	c.mu.Lock()
	c.stats.Lookups++
	c.mu.Unlock()

	name, err := resolve(c.ctx, c.res, c.cfg.Timeout, a)
	if c.ctx.Err() != nil {
		return // closing: the answer may be a cancellation, not a fact
	}
	if c.store(a, name, err) {
		c.notify()
	}
}

// store records the outcome of a lookup of a and reports whether a new
// name became known. A timeout or failure keeps an older name, since the
// server being unwell says nothing about the name; NotFound clears it.
func (c *Cache) store(a netip.Addr, name string, err error) bool {
	now := c.cfg.now()

	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.inflight, a)

	e := &entry{addr: a}
	if el, ok := c.entries[a]; ok {
		e = el.Value.(*entry)
		c.lru.MoveToFront(el)
	} else {
		c.entries[a] = c.lru.PushFront(e)
	}
	old := e.name

	switch {
	case err == nil:
		e.name = name
		e.expires = now.Add(c.cfg.TTL)
	case errors.Is(err, ErrNotFound):
		c.stats.NotFound++
		e.name = ""
		e.expires = now.Add(c.cfg.NegativeTTL)
	default:
		if errors.Is(err, ErrTimeout) {
			c.stats.Timeouts++
		} else {
			c.stats.Failures++
		}
		c.stats.LastErr = err
		e.expires = now.Add(c.cfg.NegativeTTL)
	}

	for c.lru.Len() > c.cfg.MaxEntries {
		back := c.lru.Back()
		c.lru.Remove(back)
		delete(c.entries, back.Value.(*entry).addr)
	}
	return e.name != "" && e.name != old
}

// notify signals Changed without blocking; a pending signal already covers
// this one.
func (c *Cache) notify() {
	select {
	case c.changed <- struct{}{}:
	default:
	}
}
