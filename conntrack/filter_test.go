package conntrack

import (
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var filterNow = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// fl makes a flow from "src:port" style arguments; ports are ignored for
// protocols without them.
func fl(fam Family, p Proto, src string, sport uint16, dst string, dport uint16) Flow {
	o := Tuple{Src: MustParseAddr(src), Dst: MustParseAddr(dst), SrcPort: sport, DstPort: dport}
	return Flow{Family: fam, Proto: p, Orig: o,
		Reply: Tuple{Src: o.Dst, Dst: o.Src, SrcPort: dport, DstPort: sport}}
}

var (
	tcp4  = fl(IPv4, ProtoTCP, "10.0.0.2", 40000, "93.184.216.34", 443)
	udp4  = fl(IPv4, ProtoUDP, "10.0.0.2", 5353, "10.0.0.1", 53)
	tcp6  = fl(IPv6, ProtoTCP, "2001:db8::1", 40001, "2001:db8::2", 22)
	udp6  = fl(IPv6, ProtoUDP, "2001:db8::1", 40002, "2001:db8:1::9", 123)
	icmp4 = fl(IPv4, ProtoICMP, "192.0.2.1", 0, "192.0.2.2", 0)
	sctp4 = fl(IPv4, ProtoSCTP, "10.0.0.2", 36412, "10.9.9.9", 36412)
	gre4  = fl(IPv4, ProtoGRE, "10.0.0.2", 0, "10.9.9.9", 0)
)

func allFilter() Filter {
	f := Filter{IPv4: true, IPv6: true}
	f.AllProtos()
	return f
}

func protos(ps ...Proto) ProtoSet {
	var s ProtoSet
	for _, p := range ps {
		s.Add(p)
	}
	return s
}

func TestProtoSet(t *testing.T) {
	var s ProtoSet
	if !s.Empty() {
		t.Error("zero set not empty")
	}
	for _, p := range []Proto{0, 63, 64, 255, ProtoTCP} {
		s.Add(p)
	}
	if diff := cmp.Diff([]Proto{0, ProtoTCP, 63, 64, 255}, s.Protos()); diff != "" {
		t.Errorf("Protos (-want +got):\n%s", diff)
	}
	s.Remove(64)
	if s.Has(64) || !s.Has(63) || !s.Has(255) {
		t.Errorf("after Remove(64): %v", s.Protos())
	}
}

func TestFilterMatch(t *testing.T) {
	all := []Flow{tcp4, udp4, tcp6, udp6, icmp4, sctp4, gre4}
	cases := []struct {
		name string
		f    func() Filter
		want []Flow
	}{
		{"zero filter passes nothing", func() Filter { return Filter{} }, nil},
		{"default: TCP over both families", DefaultFilter, []Flow{tcp4, tcp6}},
		{"all", allFilter, all},
		{"-4 only", func() Filter { f := allFilter(); f.IPv6 = false; return f },
			[]Flow{tcp4, udp4, icmp4, sctp4, gre4}},
		{"-6 -U", func() Filter { return Filter{IPv6: true, Protos: protos(ProtoUDP)} }, []Flow{udp6}},
		{"-46 -UI", func() Filter { return Filter{IPv4: true, IPv6: true, Protos: protos(ProtoUDP, ProtoICMP)} },
			[]Flow{udp4, udp6, icmp4}},
		{"exclude proto wins over the mask", func() Filter {
			f := allFilter()
			f.ExcludeProtos = protos(ProtoUDP, ProtoGRE)
			return f
		}, []Flow{tcp4, tcp6, icmp4, sctp4}},
		{"port at either end", func() Filter {
			f := allFilter()
			f.Ports = []uint16{53, 40001}
			return f
		}, []Flow{udp4, tcp6}},
		{"ports drop portless protocols", func() Filter {
			f := allFilter()
			f.Ports = []uint16{0}
			return f
		}, nil},
		{"exclude port at either end, portless kept", func() Filter {
			f := allFilter()
			f.ExcludePorts = []uint16{443, 5353, 36412}
			return f
		}, []Flow{tcp6, udp6, icmp4, gre4}},
		{"net at either end", func() Filter {
			f := allFilter()
			f.Nets = []netip.Prefix{netip.MustParsePrefix("10.0.0.1/32"), netip.MustParsePrefix("2001:db8:1::/48")}
			return f
		}, []Flow{udp4, udp6}},
		{"net source side", func() Filter {
			f := allFilter()
			f.Nets = []netip.Prefix{netip.MustParsePrefix("192.0.2.0/24")}
			return f
		}, []Flow{icmp4}},
	}
	for _, c := range cases {
		f := c.f()
		var got []Flow
		for i := range all {
			if f.Match(&all[i], filterNow) {
				got = append(got, all[i])
			}
		}
		if diff := cmp.Diff(c.want, got, cmpOpts); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
}

func TestFilterIgnoreControl(t *testing.T) {
	f := allFilter()
	f.IgnoreControl = true
	cases := []struct {
		src, dst string
		want     bool
	}{
		{"10.0.0.2", "93.184.216.34", true},
		{"10.0.0.2", "224.0.0.251", false},       // mDNS multicast
		{"10.0.0.2", "239.255.255.250", false},   // SSDP
		{"10.0.0.2", "255.255.255.255", false},   // limited broadcast
		{"192.168.1.20", "192.168.1.255", false}, // LAN broadcast
		{"127.0.0.1", "127.0.0.1", false},        // loopback
		{"::1", "::1", false},
		{"fe80::1", "ff02::fb", false},
		{"2001:db8::1", "ff0e::1", false},
		{"::ffff:127.0.0.1", "::ffff:10.0.0.1", false}, // mapped loopback
		{"2001:db8::1", "2001:db8::2", true},
		// x.y.z.255 in public space can be a host of a bigger subnet.
		{"10.0.0.2", "93.184.216.255", true},
	}
	for _, c := range cases {
		fam := IPv4
		if !MustParseAddr(c.src).Is4() {
			fam = IPv6
		}
		fl := fl(fam, ProtoUDP, c.src, 1000, c.dst, 2000)
		if got := f.Match(&fl, filterNow); got != c.want {
			t.Errorf("%s -> %s: Match = %v, want %v", c.src, c.dst, got, c.want)
		}
	}
	f.IgnoreControl = false
	loop := fl(IPv4, ProtoUDP, "127.0.0.1", 1, "127.0.0.1", 2)
	if !f.Match(&loop, filterNow) {
		t.Error("loopback dropped without IgnoreControl")
	}
}

func TestFilterMinBytes(t *testing.T) {
	f := allFilter()
	f.MinBytes = 1000
	small, big, unknown := tcp4, tcp4, tcp4
	small.HasCounters, small.OrigCount, small.ReplyCount = true, Counter{Bytes: 400}, Counter{Bytes: 599}
	big.HasCounters, big.OrigCount, big.ReplyCount = true, Counter{Bytes: 400}, Counter{Bytes: 600}
	unknown.HasCounters = false
	if f.Match(&small, filterNow) {
		t.Error("999 bytes passed --min-bytes 1000")
	}
	if !f.Match(&big, filterNow) {
		t.Error("1000 bytes (both directions) dropped by --min-bytes 1000")
	}
	if !f.Match(&unknown, filterNow) {
		t.Error("a flow without counters was dropped: its size is unknown, not 0")
	}
}

func TestFilterMinAge(t *testing.T) {
	f := allFilter()
	f.MinAge = time.Minute
	young, old, unknown := tcp4, tcp4, tcp4
	young.Start = StampOf(filterNow.Add(-59 * time.Second))
	old.Start = StampOf(filterNow.Add(-time.Minute))
	if f.Match(&young, filterNow) {
		t.Error("a 59 s old flow passed --min-age 1m")
	}
	if !f.Match(&old, filterNow) {
		t.Error("a 1 min old flow dropped by --min-age 1m")
	}
	if !f.Match(&unknown, filterNow) {
		t.Error("a flow without start time was dropped: its age is unknown")
	}
}

// TestFilterString: the description the screen's header and the JSON
// document's "filter" share.
func TestFilterString(t *testing.T) {
	udpOut := Filter{IPv4: true, Protos: protos(ProtoTCP, ProtoUDP, ProtoICMP)}
	udpOut.ExcludeProtos.Add(ProtoUDP)
	all := Filter{IPv4: true, IPv6: true, Protos: protos(ProtoTCP, ProtoUDP, ProtoUDPLite, ProtoDCCP,
		ProtoICMP, ProtoICMPv6, ProtoSCTP)}
	others := Filter{IPv4: true, Protos: protos(ProtoUDPLite, ProtoGRE, ProtoTCP)}
	others.ExcludeProtos.Add(ProtoTCP)
	for _, c := range []struct {
		name string
		f    Filter
		want string
	}{
		{"default", DefaultFilter(), "IPv4,IPv6,TCP"},
		{"an excluded protocol is left out", udpOut, "IPv4,TCP,ICMP"},
		{"-46TUDIS: UDP-Lite as UDP, ICMPv6 as ICMP", all, "IPv4,IPv6,TCP,UDP,DCCP,ICMP,SCTP"},
		{"protocols without a flag are counted", others, "IPv4,UDP,+1 more"},
		{"nothing", Filter{}, "no protocol"},
	} {
		if got := c.f.String(); got != c.want {
			t.Errorf("%s: String = %q, want %q", c.name, got, c.want)
		}
	}
}
