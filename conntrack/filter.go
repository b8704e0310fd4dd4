package conntrack

import (
	"net/netip"
	"slices"
	"strings"
	"time"
)

// ProtoSet is a set of IP protocol numbers.
type ProtoSet [4]uint64

// Add puts p in the set.
func (s *ProtoSet) Add(p Proto) { s[p>>6] |= 1 << (p & 63) }

// Remove takes p out of the set.
func (s *ProtoSet) Remove(p Proto) { s[p>>6] &^= 1 << (p & 63) }

// Has reports whether p is in the set.
func (s ProtoSet) Has(p Proto) bool { return s[p>>6]&(1<<(p&63)) != 0 }

// Empty reports whether the set has no member.
func (s ProtoSet) Empty() bool { return s == ProtoSet{} }

// Protos lists the members in ascending order.
func (s ProtoSet) Protos() []Proto {
	var ps []Proto
	for p := 0; p < 256; p++ {
		if s.Has(Proto(p)) {
			ps = append(ps, Proto(p))
		}
	}
	return ps
}

// Filter selects the flows every consumer sees. The zero Filter passes
// nothing (no family, no protocol); DefaultFilter is flowtop's default.
type Filter struct {
	IPv4, IPv6 bool
	// Protos are the protocols shown (flowtop's -T -U -D -I -S mask).
	Protos ProtoSet
	// ExcludeProtos are never shown, even when in Protos (iftop-dotqoo -z).
	ExcludeProtos ProtoSet
	// Ports, when not empty, keeps flows with one of these ports at either
	// end of the original direction.
	Ports []uint16
	// ExcludePorts drops flows with one of these ports at either end.
	ExcludePorts []uint16
	// Nets, when not empty, keeps flows with either end inside one of them.
	Nets []netip.Prefix
	// IgnoreControl drops multicast, broadcast and loopback traffic.
	IgnoreControl bool
	// MinBytes drops flows whose two directions together carried fewer
	// bytes. Flows without counters are kept: their size is unknown.
	MinBytes uint64
	// MinAge drops flows younger than this. Flows without a start time are
	// kept: their age is unknown.
	MinAge time.Duration
}

// DefaultFilter is netsniff-ng flowtop's default: TCP over IPv4 and IPv6.
func DefaultFilter() Filter {
	f := Filter{IPv4: true, IPv6: true}
	f.Protos.Add(ProtoTCP)
	return f
}

// AllProtos sets Protos to every protocol.
func (f *Filter) AllProtos() {
	for i := range f.Protos {
		f.Protos[i] = ^uint64(0)
	}
}

// Match reports whether fl passes the filter at time now.
func (f *Filter) Match(fl *Flow, now time.Time) bool {
	switch fl.Family {
	case IPv4:
		if !f.IPv4 {
			return false
		}
	case IPv6:
		if !f.IPv6 {
			return false
		}
	}
	if !f.Protos.Has(fl.Proto) || f.ExcludeProtos.Has(fl.Proto) {
		return false
	}
	t := &fl.Orig
	if len(f.Ports) > 0 && (!fl.Proto.HasPorts() ||
		!slices.Contains(f.Ports, t.SrcPort) && !slices.Contains(f.Ports, t.DstPort)) {
		return false
	}
	if len(f.ExcludePorts) > 0 && fl.Proto.HasPorts() &&
		(slices.Contains(f.ExcludePorts, t.SrcPort) || slices.Contains(f.ExcludePorts, t.DstPort)) {
		return false
	}
	if len(f.Nets) > 0 && !inAny(f.Nets, t.Src.IP()) && !inAny(f.Nets, t.Dst.IP()) {
		return false
	}
	if f.IgnoreControl && (isControl(t.Src.IP()) || isControl(t.Dst.IP())) {
		return false
	}
	if f.MinBytes > 0 && fl.HasCounters && fl.TotalBytes() < f.MinBytes {
		return false
	}
	if f.MinAge > 0 {
		if age, ok := fl.Age(now); ok && age < f.MinAge {
			return false
		}
	}
	return true
}

func inAny(nets []netip.Prefix, a netip.Addr) bool {
	a = a.Unmap()
	for _, n := range nets {
		if n.Contains(a) {
			return true
		}
	}
	return false
}

// isControl reports multicast, broadcast and loopback addresses, the
// traffic iftop-dotqoo's -q ignores.
func isControl(a netip.Addr) bool {
	a = a.Unmap()
	if a.IsMulticast() || a.IsLoopback() || a.IsLinkLocalMulticast() {
		return true
	}
	if a.Is4() {
		b := a.As4()
		return b == [4]byte{255, 255, 255, 255} || b[3] == 255 && b[0] != 0 && looksLikeBroadcast(b)
	}
	return false
}

// looksLikeBroadcast guesses subnet broadcasts without knowing the netmask:
// x.y.z.255 in a private /24 or larger is the common case on LANs.
func looksLikeBroadcast(b [4]byte) bool {
	return netip.AddrFrom4(b).IsPrivate()
}

// String describes the families and protocols the filter shows, as the
// screen's header and the JSON document's "filter" both say it:
// families, then protocols, UDP-Lite counted as UDP and ICMPv6 as ICMP,
// and others only counted ("IPv4,IPv6,TCP,UDP,ICMP,+1 more").
func (f *Filter) String() string {
	var parts []string
	if f.IPv4 {
		parts = append(parts, "IPv4")
	}
	if f.IPv6 {
		parts = append(parts, "IPv6")
	}
	has := func(p Proto) bool { return f.Protos.Has(p) && !f.ExcludeProtos.Has(p) }
	named := 0
	for _, p := range []struct {
		name string
		on   bool
	}{
		{"TCP", has(ProtoTCP)},
		{"UDP", has(ProtoUDP) || has(ProtoUDPLite)},
		{"DCCP", has(ProtoDCCP)},
		{"ICMP", has(ProtoICMP) || has(ProtoICMPv6)},
		{"SCTP", has(ProtoSCTP)},
	} {
		if p.on {
			parts = append(parts, p.name)
			named++
		}
	}
	others := 0
	for _, p := range f.Protos.Protos() {
		switch p {
		case ProtoTCP, ProtoUDP, ProtoUDPLite, ProtoDCCP, ProtoICMP, ProtoICMPv6, ProtoSCTP:
		default:
			if !f.ExcludeProtos.Has(p) {
				others++
			}
		}
	}
	if others > 0 {
		parts = append(parts, "+"+itoa(uint64(others))+" more")
	}
	if named == 0 && others == 0 {
		parts = append(parts, "no protocol")
	}
	return strings.Join(parts, ",")
}
