package metrics

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

// DefaultMaxHosts bounds the local hosts that get series of their own.
const DefaultMaxHosts = 4096

// hostIdle is how long a host must have had no flow before it may give
// its series up to a new host, when the host table is full. IPv6 privacy
// addresses change daily: without this a router would fill the table in
// weeks and count every new address as "other".
const hostIdle = time.Hour

// otherHost labels the traffic of local hosts beyond the host limit.
const otherHost = "other"

// host holds the counters of one local host. They only grow: a flow's
// bytes stay counted after the flow ends.
type host struct {
	addr             netip.Addr
	label            string
	rxBytes, txBytes uint64
	rxPkts, txPkts   uint64
	// flows is how many flows of the last folded snapshot have the host
	// as a local end.
	flows int
	// active is the last fold at which the host had a flow.
	active time.Time
	// evicted is set when the host gave its series up; flow records that
	// still point at it look the address up again.
	evicted bool
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

// accounting turns snapshots and ended-flow records into per-host
// counters that never go down. Owned by one goroutine.
//
// A flow's bytes are counted once: at its first fold in full (its
// counters since it began), then as differences between folds, and at
// its end the difference between the final counters of its DESTROY and
// the last fold. Flows of the first snapshot are counted only from then
// on: their earlier bytes predate flowtop, and counting them would make a
// restart look like a burst of traffic.
type accounting struct {
	nets     []netip.Prefix
	maxHosts int
	hosts    map[conntrack.Addr]*host
	sorted   []*host // hosts by address, made again when dirty
	dirty    bool
	other    *host
	// overflow counts the flows whose local host got no series of its
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
	// the order being made; ended the states made by ended records since.
	order, next, endedOnly []*flowState
	gen                    uint32
	folded                 *conntrack.Snapshot // the last snapshot folded in
	classes                classCounter
}

// flowClass is a flow's family, protocol and state number.
type flowClass struct {
	family conntrack.Family
	proto  conntrack.Proto
	state  uint8
}

func newAccounting(nets []netip.Prefix, maxHosts int) *accounting {
	if nets == nil {
		nets = DefaultLocalNets
	}
	if maxHosts <= 0 {
		maxHosts = DefaultMaxHosts
	}
	return &accounting{
		nets:     nets,
		maxHosts: maxHosts,
		hosts:    map[conntrack.Addr]*host{},
		other:    &host{label: otherHost},
		flows:    map[uint32]*flowState{},
	}
}

// isLocal reports whether a is inside one of the local networks.
func (a *accounting) isLocal(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, n := range a.nets {
		if n.Contains(addr) {
			return true
		}
	}
	return false
}

// hostOf returns the counters of a local address, nil when the address is
// not local; "other" when the host table is full.
func (a *accounting) hostOf(addr conntrack.Addr, now time.Time) *host {
	if h := a.hosts[addr]; h != nil {
		return h
	}
	ip := addr.IP()
	if !a.isLocal(ip) {
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
func (a *accounting) resolve(st *flowState, f *conntrack.Flow, now time.Time) {
	st.originator = a.hostOf(f.Orig.Src, now)
	// After DNAT the host that answers is the reply's source, not the
	// original destination (the router's public address).
	if f.Reply.Src != f.Orig.Src {
		st.responder = a.hostOf(f.Reply.Src, now)
	}
}

// add counts a flow's new bytes for its hosts: what the originator sent
// is the original direction, what it received the reply direction; the
// responder's are the other way round.
func (st *flowState) add(orig, reply conntrack.Counter) {
	if h := st.originator; h != nil {
		h.txBytes += orig.Bytes
		h.txPkts += orig.Packets
		h.rxBytes += reply.Bytes
		h.rxPkts += reply.Packets
	}
	if h := st.responder; h != nil {
		h.rxBytes += orig.Bytes
		h.rxPkts += orig.Packets
		h.txBytes += reply.Bytes
		h.txPkts += reply.Packets
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

// fold counts what the snapshot s adds: new flows in full (except in the
// first snapshot), known flows by their growth. Flows of the last fold
// that s no longer lists are forgotten: their end came as an ended
// record, or was lost.
func (a *accounting) fold(s *conntrack.Snapshot) {
	if s == nil || s == a.folded {
		return
	}
	first := a.folded == nil
	a.folded = s
	a.gen++
	now := s.Time
	a.classes.reset()
	for _, h := range a.hosts {
		h.flows = 0
	}
	a.other.flows = 0
	next := a.next[:0]
	cursor := 0
	for _, f := range s.Flows {
		a.classes.add(f)
		k := keyOf(f)
		st := a.find(k, &cursor)
		switch {
		case st == nil:
			st = &flowState{key: k}
			a.resolve(st, f, now)
			a.insert(st)
			if f.HasCounters && !first {
				st.add(f.OrigCount, f.ReplyCount)
			}
		case st.ended:
			// Counted in full when it ended.
		default:
			a.refreshHosts(st, f, now)
			if f.HasCounters {
				st.add(delta(f.OrigCount, st.orig), delta(f.ReplyCount, st.reply))
			}
		}
		if !st.ended {
			st.orig, st.reply = f.OrigCount, f.ReplyCount
		}
		st.gen = a.gen
		st.pos = int32(len(next))
		next = append(next, st)
		if h := st.originator; h != nil {
			h.flows++
			h.active = now
		}
		if h := st.responder; h != nil && h != st.originator {
			h.flows++
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
func (a *accounting) lookup(k flowKey) *flowState {
	for st := a.flows[k.id]; st != nil; st = st.sameID {
		if st.key == k {
			return st
		}
	}
	return nil
}

// insert adds the state of a flow lookup did not find.
func (a *accounting) insert(st *flowState) {
	st.sameID = a.flows[st.key.id]
	a.flows[st.key.id] = st
}

// remove takes a state out of the index.
func (a *accounting) remove(st *flowState) {
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
func (a *accounting) find(k flowKey, cursor *int) *flowState {
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
// series up.
func (a *accounting) refreshHosts(st *flowState, f *conntrack.Flow, now time.Time) {
	if (st.originator != nil && st.originator.evicted) || (st.responder != nil && st.responder.evicted) {
		a.resolve(st, f, now)
	}
}

// ended counts the end of a flow: what its final counters add to what
// was counted of it so far.
func (a *accounting) ended(e *conntrack.Ended) {
	if a.folded == nil {
		return // before the first snapshot: nothing to count from
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
			st.add(e.OrigCount, e.ReplyCount)
		}
	case st.ended:
		return
	default:
		a.refreshHosts(st, &e.Flow, e.Stop)
		st.ended = true
		if e.HasCounters {
			st.add(delta(e.OrigCount, st.orig), delta(e.ReplyCount, st.reply))
		}
	}
	st.orig, st.reply = e.OrigCount, e.ReplyCount
}

// evictIdle frees the series of hosts without flows for hostIdle, when
// the host table is full, so that new hosts get series of their own.
func (a *accounting) evictIdle(now time.Time) {
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

// hostSample is one host's counters as a scrape shows them.
type hostSample struct {
	label            string
	rxBytes, txBytes uint64
	rxPkts, txPkts   uint64
	flows            int
}

// appendHosts appends the hosts' counters in address order, "other" last
// once it has counted anything.
func (a *accounting) appendHosts(dst []hostSample) []hostSample {
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

func (h *host) sample() hostSample {
	return hostSample{label: h.label, rxBytes: h.rxBytes, txBytes: h.txBytes, rxPkts: h.rxPkts,
		txPkts: h.txPkts, flows: h.flows}
}

// classCount is the number of flows of one class.
type classCount struct {
	family, proto, state string
	n                    int
}

// classCounter counts flows by family, protocol and state: in an array
// for the usual classes (a map access per flow cost a 100k-flow fold
// 2 ms), in a map for the rest.
type classCounter struct {
	common [2][256][statesCommon]int32
	rare   map[flowClass]int32
}

// statesCommon covers every state the kernel names (TCP, SCTP and DCCP
// have ten each).
const statesCommon = 16

// familyIndex is 0 for IPv4, 1 for IPv6, -1 for anything else.
func familyIndex(f conntrack.Family) int {
	switch f {
	case conntrack.IPv4:
		return 0
	case conntrack.IPv6:
		return 1
	}
	return -1
}

func (c *classCounter) reset() {
	clear(c.common[:])
	clear(c.rare)
}

// add counts a flow. The state of a protocol without states is always 0,
// so that one class has one set of label values.
func (c *classCounter) add(f *conntrack.Flow) {
	state := f.State
	if !hasStates(f.Proto) {
		state = 0
	}
	if fi := familyIndex(f.Family); fi >= 0 && state < statesCommon {
		c.common[fi][f.Proto][state]++
		return
	}
	if c.rare == nil {
		c.rare = map[flowClass]int32{}
	}
	c.rare[flowClass{family: f.Family, proto: f.Proto, state: state}]++
}

func hasStates(p conntrack.Proto) bool {
	return p == conntrack.ProtoTCP || p == conntrack.ProtoSCTP || p == conntrack.ProtoDCCP
}

// appendClasses appends the flow counts of the last fold, sorted by
// family, protocol and state names.
func (a *accounting) appendClasses(dst []classCount) []classCount {
	start := len(dst)
	add := func(c flowClass, n int32) {
		f := conntrack.Flow{Family: c.family, Proto: c.proto, State: c.state}
		dst = append(dst, classCount{family: c.family.String(), proto: c.proto.String(), state: f.StateName(), n: int(n)})
	}
	for fi, fam := range []conntrack.Family{conntrack.IPv4, conntrack.IPv6} {
		for p := range 256 {
			for st, n := range a.classes.common[fi][p] {
				if n > 0 {
					add(flowClass{family: fam, proto: conntrack.Proto(p), state: uint8(st)}, n)
				}
			}
		}
	}
	for c, n := range a.classes.rare {
		add(c, n)
	}
	slices.SortFunc(dst[start:], func(x, y classCount) int {
		return cmp.Or(cmp.Compare(x.family, y.family), cmp.Compare(x.proto, y.proto), cmp.Compare(x.state, y.state))
	})
	return dst
}
