package ui

import (
	"math/bits"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
)

// nameMemo remembers the names of the flows of the latest build, so that a
// build does not look up every flow again. A / filter, the Processes tab
// and a sort by a name need the names of every flow, and flowtop's lookups
// (reverse DNS, GeoIP and process caches) cost microseconds a flow once
// the flows outnumber their caches: a second for 100k flows, where a key
// must show within 50 ms.
//
// A build takes the names of a flow it saw before from the memo and looks
// up only the new flows, and the old ones whose names are older than
// namesTTL (names appear late: a reverse DNS answer, a process found),
// within a time budget: a tick's build may spend tickBudget, a key's
// build keyBudget and no time on old names. A flow not looked up for want
// of budget has no names in that build, which the Namer contract allows
// ("names may appear on a later refresh"); it comes first in the next.
//
// The memo belongs to the refresher goroutine.
type nameMemo struct {
	names enrich.Namer
	epoch time.Time
	cur   memoGen // of the latest complete build
	next  memoGen // being made by the build in flight; reused
	chunk []enrich.Names
	// intern finds the copy of names already in chunk.
	intern map[enrich.Names]*enrich.Names
	// idleSince is when builds stopped needing names (zero while they do).
	idleSince time.Time
	// byRecord keeps names for a flow's record only, not for a new record
	// of the same connection: with a Fleet, names come with each document
	// (names the router found since are in the new one), and names is
	// the latest document's.
	byRecord bool
}

// memoGen is the memo of one build: flows[i] had names[i], looked up at
// at[i] (nanoseconds since the memo's epoch).
type memoGen struct {
	flows []*conntrack.Flow
	names []*enrich.Names
	at    []int64
	// index maps a flow ID to 1 + its position, 0 for none: an
	// open-addressing table made when first needed.
	index []int32
	shift uint
}

const (
	// namesTTL is the age after which a build looks up a flow's names
	// again, budget permitting.
	namesTTL = 2 * time.Second
	// keyBudget is what a build for a key may spend on lookups.
	keyBudget = 5 * time.Millisecond
	// lookupWork is the cost of a lookup in rows, for the build's checks
	// of whether it is still wanted (every staleEvery rows).
	lookupWork = 64
)

// tickBudgets returns what a tick's build may spend on new flows and on
// refreshing old names with the screen refreshing every interval: at most
// half the interval on new flows (a full memo of 100k flows is made within
// a couple of seconds of starting), a fortieth on old ones: old names
// rarely change (a reverse DNS answer that came late), and refreshing
// them is most of the CPU of a screen with a / filter. The rows on screen
// are named afresh whenever they are drawn anyway.
func tickBudgets(interval time.Duration) (fresh, refresh time.Duration) {
	return min(max(interval/2, 10*time.Millisecond), 500*time.Millisecond),
		min(max(interval/40, time.Millisecond), 25*time.Millisecond)
}

func newNameMemo(names enrich.Namer) *nameMemo {
	return &nameMemo{names: names, epoch: time.Now()}
}

// namesPass is one build's use of the memo.
type namesPass struct {
	m       *nameMemo
	names   enrich.Namer // when m is nil, every flow is looked up
	fresh   int64        // deadlines, since the epoch, for new and old flows
	refresh int64
	now     int64
	lookups int
	asks    int            // calls of allow
	hint    int            // where in the memo the next flow probably is
	used    bool           // a name was asked for: the memo is the build's
	chunk   []enrich.Names // of the names looked up without a memo
}

// noNames is the names of a flow not looked up.
var noNames enrich.Names

// pass starts a build's use of the memo, with budgets for new and old
// flows (from now).
func (m *nameMemo) pass(fresh, refresh time.Duration) *namesPass {
	m.idleSince = time.Time{}
	now := int64(time.Since(m.epoch))
	g := &m.next
	clear(g.flows) // let the records of gone flows go
	clear(g.names)
	g.flows, g.names, g.at = g.flows[:0], g.names[:0], g.at[:0]
	g.index = g.index[:0]
	return &namesPass{m: m, names: m.names, now: now, fresh: now + int64(fresh), refresh: now + int64(refresh)}
}

// memoKeep is how long the memo outlives the last build that needed
// names: 100k flows' names are tens of MB, worth keeping across a look at
// another tab, not for good.
const memoKeep = 30 * time.Second

// unused notes a build that needs no names (the Flows tab without a /
// filter looks up only the rows on screen, when drawn), and drops a memo
// unused for memoKeep.
func (m *nameMemo) unused() {
	switch {
	case m.cur.flows == nil && m.next.flows == nil:
	case m.idleSince.IsZero():
		m.idleSince = time.Now()
	case time.Since(m.idleSince) >= memoKeep:
		m.cur, m.next, m.chunk, m.intern, m.idleSince = memoGen{}, memoGen{}, nil, nil, time.Time{}
	}
}

// done makes the pass's memo the current one once the build completed,
// if the build used it.
func (p *namesPass) done() {
	if p.m == nil || !p.used {
		return
	}
	p.m.cur, p.m.next = p.m.next, p.m.cur
}

// get returns the names of f: the pointer stays valid (and unchanged) for
// good.
func (p *namesPass) get(f *conntrack.Flow) *enrich.Names {
	if p.m == nil {
		p.lookups++
		if len(p.chunk) == cap(p.chunk) {
			p.chunk = make([]enrich.Names, 0, 256)
		}
		p.chunk = append(p.chunk, p.names.Names(f))
		return &p.chunk[len(p.chunk)-1]
	}
	p.used = true
	m := p.m
	old := &m.cur
	j := p.hint
	if j >= len(old.flows) || old.flows[j].ID != f.ID {
		j = old.find(f.ID)
	}
	if j >= 0 {
		o := old.flows[j]
		// A new record under the ID may be another connection's (the ID
		// is a hash) or, with another reply tuple, another entry of it:
		// either may have other names.
		if o != f && (m.byRecord || o.Key() != f.Key() || o.Reply != f.Reply || o.Family != f.Family) {
			j = -1
		}
	}
	if j >= 0 {
		n, at := old.names[j], old.at[j]
		if p.now-at >= int64(namesTTL) && p.allow(p.refresh) {
			n, at = p.lookup(f), p.now
		}
		m.next.add(f, n, at)
		p.hint = j + 1
		return n
	}
	if !p.allow(p.fresh) {
		return &noNames
	}
	n := p.lookup(f)
	m.next.add(f, n, p.now)
	return n
}

// allow reports whether a lookup fits in the budget ending at deadline.
// The clock is read every 32 calls.
func (p *namesPass) allow(deadline int64) bool {
	if p.now >= deadline {
		return false
	}
	p.asks++
	if p.asks%32 == 0 {
		p.now = int64(time.Since(p.m.epoch))
	}
	return p.now < deadline
}

func (p *namesPass) lookup(f *conntrack.Flow) *enrich.Names {
	p.lookups++
	m := p.m
	if len(m.chunk) == cap(m.chunk) {
		m.chunk = make([]enrich.Names, 0, 256)
	}
	n := m.names.Names(f)
	// Many flows have the same names (every flow to one host and port,
	// all of a process's): they share one copy, where a copy each would
	// be tens of MB at 100k flows.
	if shared, ok := m.intern[n]; ok {
		return shared
	}
	if m.intern == nil || len(m.intern) > 2*len(m.cur.flows)+1024 {
		m.intern = map[enrich.Names]*enrich.Names{} // forget names long gone
	}
	m.chunk = append(m.chunk, n)
	shared := &m.chunk[len(m.chunk)-1]
	m.intern[n] = shared
	return shared
}

func (g *memoGen) add(f *conntrack.Flow, n *enrich.Names, at int64) {
	g.flows = append(g.flows, f)
	g.names = append(g.names, n)
	g.at = append(g.at, at)
}

func idHash(id uint32, shift uint) uint64 {
	return uint64(id) * 0x9e3779b97f4a7c15 >> shift
}

// find returns the position of the flow with ID id, or -1.
func (g *memoGen) find(id uint32) int {
	if len(g.flows) == 0 {
		return -1
	}
	if len(g.index) == 0 {
		size := 1024
		for size < 2*len(g.flows) {
			size *= 2
		}
		if cap(g.index) < size {
			g.index = make([]int32, size)
		} else {
			g.index = g.index[:size]
			clear(g.index)
		}
		g.shift = uint(64 - bits.TrailingZeros(uint(size)))
		mask := uint64(size - 1)
		for k, f := range g.flows {
			for h := idHash(f.ID, g.shift); ; h = (h + 1) & mask {
				if g.index[h] == 0 {
					g.index[h] = int32(k + 1)
					break
				}
			}
		}
	}
	mask := uint64(len(g.index) - 1)
	for h := idHash(id, g.shift); ; h = (h + 1) & mask {
		k := g.index[h]
		if k == 0 {
			return -1
		}
		if g.flows[k-1].ID == id {
			return int(k - 1)
		}
	}
}
