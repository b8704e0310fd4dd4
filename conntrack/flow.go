package conntrack

import (
	"time"
)

// Family is an address family: IPv4 or IPv6.
type Family uint8

// Address families, numbered as the kernel numbers them (AF_INET, AF_INET6).
const (
	IPv4 Family = 2
	IPv6 Family = 10
)

func (f Family) String() string {
	switch f {
	case IPv4:
		return "ipv4"
	case IPv6:
		return "ipv6"
	}
	return "unknown"
}

// Proto is an IP protocol number (IPPROTO_*).
type Proto uint8

// The layer-4 protocols conntrack tracks with their own state or ports.
const (
	ProtoICMP    Proto = 1
	ProtoTCP     Proto = 6
	ProtoUDP     Proto = 17
	ProtoDCCP    Proto = 33
	ProtoGRE     Proto = 47
	ProtoICMPv6  Proto = 58
	ProtoSCTP    Proto = 132
	ProtoUDPLite Proto = 136
)

var protoNames = map[Proto]string{
	ProtoICMP: "icmp", ProtoTCP: "tcp", ProtoUDP: "udp", ProtoDCCP: "dccp",
	ProtoGRE: "gre", ProtoICMPv6: "icmpv6", ProtoSCTP: "sctp", ProtoUDPLite: "udplite",
}

// String returns the lower-case protocol name used in JSON ("tcp", "udp",
// ...), or the number for protocols without a name here.
func (p Proto) String() string {
	if n, ok := protoNames[p]; ok {
		return n
	}
	return itoa(uint64(p))
}

// HasPorts reports whether the protocol's tuples carry ports.
func (p Proto) HasPorts() bool {
	switch p {
	case ProtoTCP, ProtoUDP, ProtoUDPLite, ProtoSCTP, ProtoDCCP:
		return true
	}
	return false
}

// Tuple is one direction of a connection as conntrack sees it.
type Tuple struct {
	Src, Dst Addr
	// SrcPort and DstPort are set for protocols with ports (Proto.HasPorts);
	// ICMP and ICMPv6 flows have Flow.ICMP instead.
	SrcPort, DstPort uint16
}

// ICMP identifies an ICMP or ICMPv6 flow, which has no ports. Only the
// original direction's is kept (the reply's differs in its type, an echo
// reply for an echo request, and nothing reads it): four bytes less in
// every flow record.
type ICMP struct {
	ID         uint16
	Type, Code uint8
}

// Counter holds the kernel's accounting for one direction.
type Counter struct {
	Packets, Bytes uint64
}

// Rate is the throughput of one direction in bytes (and packets) per
// second: over the last refresh interval, and exponentially smoothed
// averages whose time constants are 2, 10 and 40 seconds (iftop's columns).
// float32 keeps seven significant digits, more than any display needs, at
// half the size: a million flows carry four of these.
type Rate struct {
	Bytes, Packets     float32
	Avg2, Avg10, Avg40 float32
}

// NAT tells which ends of a flow were translated.
type NAT uint8

// NAT kinds.
const (
	NATNone NAT = iota
	NATSNAT
	NATDNAT
	NATBoth
)

func (n NAT) String() string {
	switch n {
	case NATSNAT:
		return "snat"
	case NATDNAT:
		return "dnat"
	case NATBoth:
		return "both"
	}
	return ""
}

// Status is the kernel's connection status bit set (IPS_*).
type Status uint32

// Status bits, as in linux/netfilter/nf_conntrack_common.h.
const (
	StatusExpected  Status = 1 << 0
	StatusSeenReply Status = 1 << 1
	StatusAssured   Status = 1 << 2
	StatusConfirmed Status = 1 << 3
	StatusSrcNAT    Status = 1 << 4
	StatusDstNAT    Status = 1 << 5
	StatusDying     Status = 1 << 9
	StatusOffload   Status = 1 << 14
)

var statusNames = []struct {
	bit  Status
	name string
}{
	{StatusExpected, "EXPECTED"}, {StatusSeenReply, "SEEN_REPLY"}, {StatusAssured, "ASSURED"},
	{StatusConfirmed, "CONFIRMED"}, {StatusSrcNAT, "SRC_NAT"}, {StatusDstNAT, "DST_NAT"},
	{1 << 6, "SEQ_ADJUST"}, {1 << 7, "SRC_NAT_DONE"}, {1 << 8, "DST_NAT_DONE"},
	{StatusDying, "DYING"}, {1 << 10, "FIXED_TIMEOUT"}, {1 << 11, "TEMPLATE"},
	{1 << 12, "UNTRACKED"}, {1 << 13, "HELPER"}, {StatusOffload, "OFFLOAD"},
	{1 << 15, "HW_OFFLOAD"},
}

// Names lists the set bits by their kernel names (without the IPS_ prefix).
func (s Status) Names() []string {
	return s.AppendNames(nil)
}

// AppendNames appends the names of Names to dst: with room in dst, it
// allocates nothing.
func (s Status) AppendNames(dst []string) []string {
	for _, sn := range statusNames {
		if s&sn.bit != 0 {
			dst = append(dst, sn.name)
		}
	}
	return dst
}

// Flow is flowtop's compact copy of one conntrack entry. Values in a
// Snapshot are never modified. It holds no pointer (see Addr and Stamp), so
// that tables and snapshots of a million flows cost the garbage collector
// nothing to scan.
type Flow struct {
	// ID is the kernel's conntrack id, the same in dumps and events.
	ID     uint32
	Family Family
	Proto  Proto
	// State is the protocol state number (TCP, SCTP, DCCP); see StateName.
	State uint8
	// HasCounters is false for flows created while nf_conntrack_acct was
	// off: their counters are unknown, not zero.
	HasCounters bool
	// ICMP is the id, type and code of an ICMP or ICMPv6 flow's original
	// direction, part of its identity as ports are of others.
	ICMP   ICMP
	Zone   uint16
	Labels LabelsRef
	Orig   Tuple // the original direction (who started it)
	Reply  Tuple // the reply direction, after NAT
	Status Status
	Mark   uint32
	// Timeout is the seconds the kernel had left before expiring the
	// entry at Seen; TimeLeft gives it for another moment.
	Timeout uint32
	// Seen is when the kernel last reported this state of the flow.
	Seen Stamp
	// Start is when the kernel created the entry; zero when timestamps were
	// off at the time.
	Start      Stamp
	OrigCount  Counter
	ReplyCount Counter
	OrigRate   Rate
	ReplyRate  Rate
}

// SameConnection reports whether f and g describe the same kernel entry,
// as its hash table tells entries apart: original tuple, protocol, zone
// and, for ICMP, id, type and code. The ID alone is no key: it is a 32-bit
// hash, and among 50,000 flows two share one about once in four tables.
// It is f.Key() == g.Key() (TestKeyAgreesWithSameConnection holds them
// equal) without copying two keys: the table's hot paths compare in place.
func (f *Flow) SameConnection(g *Flow) bool {
	return f.Orig == g.Orig && f.Proto == g.Proto && f.Zone == g.Zone && f.ICMP == g.ICMP
}

// Key is a flow's identity as a comparable value: the fields
// SameConnection compares, so f.Key() == g.Key() exactly when
// f.SameConnection(g). It serves where a flow must be found again among
// re-ranked or refreshed flows (a map key, the screen's selection); the ID
// alone can name two entries.
type Key struct {
	Orig  Tuple
	Proto Proto
	Zone  uint16
	ICMP  ICMP
}

// Key returns the flow's identity (see SameConnection).
func (f *Flow) Key() Key {
	return Key{Orig: f.Orig, Proto: f.Proto, Zone: f.Zone, ICMP: f.ICMP}
}

// NAT derives the kind of address translation from the two tuples: the
// reply tuple mirrors the original one unless an address or port was
// rewritten.
func (f *Flow) NAT() NAT {
	snat := f.Orig.Src != f.Reply.Dst || f.Orig.SrcPort != f.Reply.DstPort
	dnat := f.Orig.Dst != f.Reply.Src || f.Orig.DstPort != f.Reply.SrcPort
	switch {
	case snat && dnat:
		return NATBoth
	case snat:
		return NATSNAT
	case dnat:
		return NATDNAT
	}
	return NATNone
}

// Age is how long the flow has existed at now; ok is false when the kernel
// gave no start time.
func (f *Flow) Age(now time.Time) (age time.Duration, ok bool) {
	if f.Start.IsZero() {
		return 0, false
	}
	if d := time.Duration(now.UnixNano() - int64(f.Start)); d > 0 {
		return d, true
	}
	return 0, true
}

// TimeLeft is the time before the kernel expires the entry, as of now,
// unless traffic refreshes it first.
func (f *Flow) TimeLeft(now time.Time) time.Duration {
	left := time.Duration(f.Timeout) * time.Second
	if !f.Seen.IsZero() {
		left -= time.Duration(now.UnixNano() - int64(f.Seen))
	}
	return max(left, 0)
}

// TotalRate is the current rate of both directions together, in bytes/s.
func (f *Flow) TotalRate() float64 { return float64(f.OrigRate.Bytes) + float64(f.ReplyRate.Bytes) }

// TotalBytes is the byte count of both directions together.
func (f *Flow) TotalBytes() uint64 { return f.OrigCount.Bytes + f.ReplyCount.Bytes }

// TotalPackets is the packet count of both directions together.
func (f *Flow) TotalPackets() uint64 { return f.OrigCount.Packets + f.ReplyCount.Packets }

func itoa(v uint64) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + v%10)
		v /= 10
		if v == 0 {
			break
		}
	}
	return string(b[i:])
}
