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
	orig, reply conntrack.Counter
	// originator is the host that opened the flow (the original source),
	// responder the one that answered (the reply source, after DNAT); nil
	// when not local.
	originator, responder *host
	gen                   uint32
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
	flows    map[flowKey]*flowState
	gen      uint32
	folded   *conntrack.Snapshot // the last snapshot folded in
	// classes counts the flows of the last folded snapshot by family,
	// protocol and state.
	classes map[flowClass]int
}

// flowClass is a flow's family, protocol and state number.
type flowClass struct {
	family conntrack.Family
	proto  conntrack.Proto
	state  uint8
}

// classOf is the class of a flow; the state of a protocol without states
// is always 0, so that one class has one set of label values.
func classOf(f *conntrack.Flow) flowClass {
	c := flowClass{family: f.Family, proto: f.Proto}
	if f.StateName() != "" {
		c.state = f.State
	}
	return c
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
		flows:    map[flowKey]*flowState{},
		classes:  map[flowClass]int{},
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
	clear(a.classes)
	for _, h := range a.hosts {
		h.flows = 0
	}
	a.other.flows = 0
	for _, f := range s.Flows {
		a.classes[classOf(f)]++
		k := keyOf(f)
		st := a.flows[k]
		switch {
		case st == nil:
			st = &flowState{}
			a.resolve(st, f, now)
			a.flows[k] = st
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
		if h := st.originator; h != nil {
			h.flows++
			h.active = now
		}
		if h := st.responder; h != nil && h != st.originator {
			h.flows++
			h.active = now
		}
	}
	for k, st := range a.flows {
		if st.gen != a.gen {
			delete(a.flows, k)
		}
	}
	a.evictIdle(now)
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
	st := a.flows[k]
	switch {
	case st == nil:
		// A flow that began and ended between two folds. Remember that it
		// was counted, in case a snapshot taken before its end still
		// lists it; the next fold forgets it.
		st = &flowState{ended: true, gen: a.gen}
		a.resolve(st, &e.Flow, e.Stop)
		a.flows[k] = st
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

// appendClasses appends the flow counts of the last fold, sorted by
// family, protocol and state names.
func (a *accounting) appendClasses(dst []classCount) []classCount {
	start := len(dst)
	for c, n := range a.classes {
		f := conntrack.Flow{Family: c.family, Proto: c.proto, State: c.state}
		dst = append(dst, classCount{family: c.family.String(), proto: c.proto.String(), state: f.StateName(), n: n})
	}
	slices.SortFunc(dst[start:], func(x, y classCount) int {
		return cmp.Or(cmp.Compare(x.family, y.family), cmp.Compare(x.proto, y.proto), cmp.Compare(x.state, y.state))
	})
	return dst
}
