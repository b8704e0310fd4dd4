package traffic

import (
	"cmp"
	"net/netip"
	"slices"
	"time"

	"github.com/flowtop/flowtop/conntrack"
)

// DefaultLocalNets are the local networks when none are given: the
// private IPv4 ranges of RFC 1918 and IPv6 unique local addresses. The
// shared address space 100.64.0.0/10 is not among them: it is the carrier's
// side of carrier-grade NAT, often a router's WAN address.
var DefaultLocalNets = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("fc00::/7"),
}

// DefaultMaxHosts bounds the local hosts counted one by one.
const DefaultMaxHosts = 4096

// hostIdle is how long a host must have had no flow before it may give
// its place up to a new host, when the host table is full. IPv6 privacy
// addresses change daily: without this a router would fill the table in
// weeks and count every new address as "other".
const hostIdle = time.Hour

// OtherLabel labels the traffic of local hosts beyond the host limit.
const OtherLabel = "other"

// host holds the counters of one local host. They only grow: a flow's
// bytes stay counted after the flow ends.
type host struct {
	addr             netip.Addr
	label            string
	rxBytes, txBytes uint64
	rxPkts, txPkts   uint64
	// flows is how many flows of the last folded snapshot have the host
	// as a local end, and rxRate, txRate their current rates summed.
	flows          int
	rxRate, txRate float64
	// active is the last fold at which the host had a flow.
	active time.Time
	// evicted is set when the host gave its place up; flow records that
	// still point at it look the address up again.
	evicted bool
}

// Host is one local host's counters, as Hosts and Top return them: a copy.
type Host struct {
	// Addr is the host's address; the zero Addr for the "other" line.
	Addr netip.Addr
	// Label is the address as text, or OtherLabel.
	Label string
	// Bytes and packets the host received and sent, since the first
	// snapshot folded; they never go down.
	RxBytes, TxBytes, RxPackets, TxPackets uint64
	// Flows is how many flows of the last snapshot have the host as a
	// local end; RxBytesPerS and TxBytesPerS are their current rates
	// (the last refresh interval's) summed.
	Flows                    int
	RxBytesPerS, TxBytesPerS float64
}

// Totals are the counters of all local hosts together (the "other" line
// included), since the first snapshot folded. They never go down, even
// when a host gives its place up. A flow between two local hosts counts
// for both: its bytes are in RxBytes and in TxBytes.
type Totals struct {
	RxBytes, TxBytes, RxPackets, TxPackets uint64
}

// flowKey is a flow's identity: the kernel's ID and its hash key (the
// original tuple, protocol, zone, ICMP id). The ID tells apart two flows
// of the same tuple one after the other.
type flowKey struct {
	orig  conntrack.Tuple
	id    uint32
	zone  uint16
	proto conntrack.Proto
	icmp  conntrack.ICMP
}

func keyOf(f *conntrack.Flow) flowKey {
	return flowKey{orig: f.Orig, id: f.ID, zone: f.Zone, proto: f.Proto, icmp: f.ICMP}
}

// flowState is what the accounting remembers of a flow between folds:
// the counters already added to its hosts, and the hosts themselves.
type flowState struct {
	key         flowKey
	orig, reply conntrack.Counter
	// originator is the host that opened the flow (the original source),
	// responder the one that answered (the reply source, after DNAT); nil
	// when not local.
	originator, responder *host
	sameID                *flowState // the next state with the same kernel ID
	gen                   uint32
	pos                   int32 // in the order of the last fold
	// ended is set once the flow's final counters were added: a snapshot
	// taken before the kernel ended it may still list it, and adds
	// nothing more.
	ended bool
}

// Accounting turns snapshots and ended-flow records into per-host
// counters that never go down. It is owned by one goroutine: none of its
// methods may be called concurrently.
//
// A flow's bytes are counted once: at its first fold in full (its
// counters since it began), then as differences between folds, and at
// its end the difference between the final counters of its DESTROY and
// the last fold. Flows of the first snapshot are counted only from then
// on: their earlier bytes predate flowtop, and counting them would make a
// restart look like a burst of traffic.
type Accounting struct {
	nets     []netip.Prefix
	maxHosts int
	hosts    map[conntrack.Addr]*host
	sorted   []*host // hosts by address, made again when dirty
	dirty    bool
	other    *host
	totals   Totals
	// overflow counts the flows whose local host got no place of its
	// own (the table was full): they are counted under "other".
	overflow uint64
	// flows finds a flow's state by its kernel ID; flows that share an
	// ID (a 32-bit hash: about one pair in a table of 100k) are chained.
	// Keyed by the whole flowKey the map cost 90 more bytes per flow.
	flows map[uint32]*flowState
	// order holds the states of the last fold in the snapshot's order,
	// which the table keeps from one snapshot to the next (a flow that
	// ends moves the last one into its place): a fold finds most flows
	// by looking at the next position instead of in the map, whose
	// random accesses cost more than half of a 100k-flow fold. next is
	// the order being made; endedOnly the states made by ended records
	// since.
	order, next, endedOnly []*flowState
	gen                    uint32
	folded                 *conntrack.Snapshot // the last snapshot folded in
}

// New makes an Accounting of the hosts in localNets (nil means
// DefaultLocalNets), at most maxHosts of them one by one (0 means
// DefaultMaxHosts); the others are summed as "other".
func New(localNets []netip.Prefix, maxHosts int) *Accounting {
	if localNets == nil {
		localNets = DefaultLocalNets
	}
	if maxHosts <= 0 {
		maxHosts = DefaultMaxHosts
	}
	return &Accounting{
		nets:     localNets,
		maxHosts: maxHosts,
		hosts:    map[conntrack.Addr]*host{},
		other:    &host{label: OtherLabel},
		flows:    map[uint32]*flowState{},
	}
}

// IsLocal reports whether addr is inside one of the local networks.
func (a *Accounting) IsLocal(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, n := range a.nets {
		if n.Contains(addr) {
			return true
		}
	}
	return false
}

// Folded returns the last snapshot folded in, nil before the first.
func (a *Accounting) Folded() *conntrack.Snapshot { return a.folded }

// Tracked is the number of hosts counted one by one.
func (a *Accounting) Tracked() int { return len(a.hosts) }

// Overflow counts the flows whose local host was beyond the host limit
// (counted under "other").
func (a *Accounting) Overflow() uint64 { return a.overflow }

// Totals returns the counters of all local hosts together.
func (a *Accounting) Totals() Totals { return a.totals }

// hostOf returns the counters of a local address, nil when the address is
// not local; "other" when the host table is full.
func (a *Accounting) hostOf(addr conntrack.Addr, now time.Time) *host {
	if h := a.hosts[addr]; h != nil {
		return h
	}
	ip := addr.IP()
	if !a.IsLocal(ip) {
		return nil
	}
	if len(a.hosts) >= a.maxHosts {
		a.overflow++
		return a.other
	}
	h := &host{addr: ip.Unmap(), label: ip.Unmap().String(), active: now}
	a.hosts[addr] = h
	a.dirty = true
	return h
}

// resolve finds the local ends of a new flow.
func (a *Accounting) resolve(st *flowState, f *conntrack.Flow, now time.Time) {
	st.originator = a.hostOf(f.Orig.Src, now)
	// After DNAT the host that answers is the reply's source, not the
	// original destination (the router's public address).
	if f.Reply.Src != f.Orig.Src {
		st.responder = a.hostOf(f.Reply.Src, now)
	}
}

// add counts a flow's new bytes for its hosts, and in the totals: what
// the originator sent is the original direction, what it received the
// reply direction; the responder's are the other way round.
func (a *Accounting) add(st *flowState, orig, reply conntrack.Counter) {
	if h := st.originator; h != nil {
		h.txBytes += orig.Bytes
		h.txPkts += orig.Packets
		h.rxBytes += reply.Bytes
		h.rxPkts += reply.Packets
		a.totals.TxBytes += orig.Bytes
		a.totals.TxPackets += orig.Packets
		a.totals.RxBytes += reply.Bytes
		a.totals.RxPackets += reply.Packets
	}
	if h := st.responder; h != nil {
		h.rxBytes += orig.Bytes
		h.rxPkts += orig.Packets
		h.txBytes += reply.Bytes
		h.txPkts += reply.Packets
		a.totals.RxBytes += orig.Bytes
		a.totals.RxPackets += orig.Packets
		a.totals.TxBytes += reply.Bytes
		a.totals.TxPackets += reply.Packets
	}
}

// delta is what a counter grew by since last; a counter that went down was
// zeroed (conntrack -Z) and counts from zero.
func delta(cur, last conntrack.Counter) conntrack.Counter {
	if cur.Bytes < last.Bytes || cur.Packets < last.Packets {
		return cur
	}
	return conntrack.Counter{Bytes: cur.Bytes - last.Bytes, Packets: cur.Packets - last.Packets}
}

// Fold counts what the snapshot s adds: new flows in full (except in the
// first snapshot), known flows by their growth. Flows of the last fold
// that s no longer lists are forgotten: their end came as an ended
// record, or was lost. The hosts' flow counts and rates become those of
// s. Folding the same snapshot again does nothing.
//
// Count the ended records waiting before folding a snapshot: the table
// sends a flow's record before it publishes the first snapshot without
// the flow, so a record counted after that snapshot finds its flow
// forgotten and counts it in full once more.
func (a *Accounting) Fold(s *conntrack.Snapshot) { a.FoldEach(s, nil) }

// FoldEach is Fold that also calls each (when not nil) with every flow of
// s, in the same pass: a second pass over the flows of a big snapshot
// costs more in cache misses than whatever each does.
func (a *Accounting) FoldEach(s *conntrack.Snapshot, each func(*conntrack.Flow)) {
	if s == nil || s == a.folded {
		return
	}
	first := a.folded == nil
	a.folded = s
	a.gen++
	now := s.Time
	for _, h := range a.hosts {
		h.flows, h.rxRate, h.txRate = 0, 0, 0
	}
	a.other.flows, a.other.rxRate, a.other.txRate = 0, 0, 0
	next := a.next[:0]
	cursor := 0
	for _, f := range s.Flows {
		if each != nil {
			each(f)
		}
		k := keyOf(f)
		st := a.find(k, &cursor)
		switch {
		case st == nil:
			st = &flowState{key: k}
			a.resolve(st, f, now)
			a.insert(st)
			if f.HasCounters && !first {
				a.add(st, f.OrigCount, f.ReplyCount)
			}
		case st.ended:
			// Counted in full when it ended.
		default:
			a.refreshHosts(st, f, now)
			if f.HasCounters {
				a.add(st, delta(f.OrigCount, st.orig), delta(f.ReplyCount, st.reply))
			}
		}
		if !st.ended {
			st.orig, st.reply = f.OrigCount, f.ReplyCount
		}
		st.gen = a.gen
		st.pos = int32(len(next))
		next = append(next, st)
		origRate, replyRate := float64(f.OrigRate.Bytes), float64(f.ReplyRate.Bytes)
		if h := st.originator; h != nil {
			h.flows++
			h.txRate += origRate
			h.rxRate += replyRate
			h.active = now
		}
		if h := st.responder; h != nil && h != st.originator {
			h.flows++
			h.rxRate += origRate
			h.txRate += replyRate
			h.active = now
		}
	}
	// Forget the flows this snapshot no longer lists.
	for _, list := range [][]*flowState{a.order, a.endedOnly} {
		for _, st := range list {
			if st.gen != a.gen {
				a.remove(st)
				st.gen = a.gen // deleted once, even if listed twice
			}
		}
	}
	clear(a.order) // keep no state alive through the spare slice
	a.order, a.next = next, a.order[:0]
	clear(a.endedOnly)
	a.endedOnly = a.endedOnly[:0]
	a.evictIdle(now)
}

// lookup returns the state of the flow with key k, nil when none.
func (a *Accounting) lookup(k flowKey) *flowState {
	for st := a.flows[k.id]; st != nil; st = st.sameID {
		if st.key == k {
			return st
		}
	}
	return nil
}

// insert adds the state of a flow lookup did not find.
func (a *Accounting) insert(st *flowState) {
	st.sameID = a.flows[st.key.id]
	a.flows[st.key.id] = st
}

// remove takes a state out of the index.
func (a *Accounting) remove(st *flowState) {
	id := st.key.id
	head := a.flows[id]
	if head == st {
		if st.sameID == nil {
			delete(a.flows, id)
		} else {
			a.flows[id] = st.sameID
		}
		return
	}
	for p := head; p != nil; p = p.sameID {
		if p.sameID == st {
			p.sameID = st.sameID
			return
		}
	}
}

// find returns the state of the flow with key k, nil for a new flow.
// cursor is where the flow is expected in the order of the last fold.
//
// From one snapshot to the next, a position keeps its flow, loses it
// (the flow ended, the next ones move up), or gets the table's last flow
// (which the table moves into the place of one that ended); new flows
// come at the end. So a flow found elsewhere a little ahead means the
// ones in between are gone, and one found far away took the place of the
// one expected.
func (a *Accounting) find(k flowKey, cursor *int) *flowState {
	i := *cursor
	if i < len(a.order) && a.order[i].key == k {
		*cursor = i + 1
		return a.order[i]
	}
	st := a.lookup(k)
	if st != nil && int(st.pos) > i && int(st.pos) <= i+64 && int(st.pos) < len(a.order) && a.order[st.pos] == st {
		*cursor = int(st.pos) + 1
	} else {
		*cursor = i + 1
	}
	return st
}

// refreshHosts looks a flow's hosts up again when one of them gave its
// place up.
func (a *Accounting) refreshHosts(st *flowState, f *conntrack.Flow, now time.Time) {
	if (st.originator != nil && st.originator.evicted) || (st.responder != nil && st.responder.evicted) {
		a.resolve(st, f, now)
	}
}

// Ended counts the end of a flow: what its final counters add to what
// was counted of it so far. Records before the first fold, and of flows
// that the last folded snapshot's filter leaves out (snapshots list only
// the flows that pass it), count nothing.
func (a *Accounting) Ended(e *conntrack.Ended) {
	if a.folded == nil || !a.folded.Filter.Match(&e.Flow, e.Stop) {
		return
	}
	k := keyOf(&e.Flow)
	st := a.lookup(k)
	switch {
	case st == nil:
		// A flow that began and ended between two folds. Remember that it
		// was counted, in case a snapshot taken before its end still
		// lists it; the next fold forgets it.
		st = &flowState{key: k, ended: true, gen: a.gen}
		a.resolve(st, &e.Flow, e.Stop)
		a.insert(st)
		a.endedOnly = append(a.endedOnly, st)
		if e.HasCounters {
			a.add(st, e.OrigCount, e.ReplyCount)
		}
	case st.ended:
		return
	default:
		a.refreshHosts(st, &e.Flow, e.Stop)
		st.ended = true
		if e.HasCounters {
			a.add(st, delta(e.OrigCount, st.orig), delta(e.ReplyCount, st.reply))
		}
	}
	st.orig, st.reply = e.OrigCount, e.ReplyCount
}

// evictIdle frees the places of hosts without flows for hostIdle, when
// the host table is full, so that new hosts get places of their own.
func (a *Accounting) evictIdle(now time.Time) {
	if len(a.hosts) < a.maxHosts {
		return
	}
	for k, h := range a.hosts {
		if h.flows == 0 && now.Sub(h.active) >= hostIdle {
			h.evicted = true
			delete(a.hosts, k)
			a.dirty = true
		}
	}
}

// Hosts returns the hosts' counters in address order, "other" last once
// it has counted anything.
func (a *Accounting) Hosts() []Host {
	return a.AppendHosts(make([]Host, 0, len(a.hosts)+1))
}

// AppendHosts appends the hosts' counters to dst, as Hosts returns them.
func (a *Accounting) AppendHosts(dst []Host) []Host {
	if a.dirty {
		a.sorted = a.sorted[:0]
		for _, h := range a.hosts {
			a.sorted = append(a.sorted, h)
		}
		slices.SortFunc(a.sorted, func(x, y *host) int { return x.addr.Compare(y.addr) })
		a.dirty = false
	}
	for _, h := range a.sorted {
		dst = append(dst, h.sample())
	}
	if a.overflow > 0 {
		dst = append(dst, a.other.sample())
	}
	return dst
}

// Top returns at most n hosts of the last snapshot (those with a flow),
// busiest first: by the sum of their receive and transmit rates, then by
// flows, then by address. "other" is not a host and is never among them.
func (a *Accounting) Top(n int) []Host {
	if n <= 0 {
		return nil
	}
	var busy []*host
	for _, h := range a.hosts {
		if h.flows > 0 {
			busy = append(busy, h)
		}
	}
	slices.SortFunc(busy, func(x, y *host) int {
		return cmp.Or(
			cmp.Compare(y.rxRate+y.txRate, x.rxRate+x.txRate),
			cmp.Compare(y.flows, x.flows),
			x.addr.Compare(y.addr))
	})
	top := make([]Host, 0, min(n, len(busy)))
	for _, h := range busy[:min(n, len(busy))] {
		top = append(top, h.sample())
	}
	return top
}

func (h *host) sample() Host {
	return Host{Addr: h.addr, Label: h.label, RxBytes: h.rxBytes, TxBytes: h.txBytes, RxPackets: h.rxPkts,
		TxPackets: h.txPkts, Flows: h.flows, RxBytesPerS: h.rxRate, TxBytesPerS: h.txRate}
}
