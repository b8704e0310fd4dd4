package enrich

import (
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/geo"
)

type fakeServices map[uint16]string

func (s fakeServices) Name(_ uint8, port uint16) string { return s[port] }

type fakeDNS map[netip.Addr]string

func (d fakeDNS) Name(a netip.Addr) string { return d[a] }

type fakeGeo map[netip.Addr]geo.Info

func (g fakeGeo) Lookup(a netip.Addr) geo.Info { return g[a] }

type fakeOwners Process

func (o fakeOwners) Owner(*conntrack.Flow) Process { return Process(o) }

func TestLookupsNames(t *testing.T) {
	src, dst := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.7")
	f := &conntrack.Flow{Proto: conntrack.ProtoTCP, Orig: conntrack.Tuple{Src: conntrack.AddrFrom(src), Dst: conntrack.AddrFrom(dst), SrcPort: 22, DstPort: 443}}
	l := &Lookups{
		Services: fakeServices{22: "ssh", 443: "https"},
		DNS:      fakeDNS{dst: "www.example.net"},
		Geo:      fakeGeo{dst: {Country: "NL", CountryName: "Netherlands"}},
		Procs:    fakeOwners{PID: 42, Name: "curl"},
	}
	want := Names{
		Service: "https", SrcService: "ssh", DstName: "www.example.net",
		DstGeo:  geo.Info{Country: "NL", CountryName: "Netherlands"},
		Process: Process{PID: 42, Name: "curl"},
	}
	if diff := cmp.Diff(want, l.Names(f)); diff != "" {
		t.Errorf("Names (-want +got):\n%s", diff)
	}

	// ICMP has no ports: no service, even though port 0 could be mapped.
	icmp := &conntrack.Flow{Proto: conntrack.ProtoICMP, Orig: conntrack.Tuple{Src: conntrack.AddrFrom(src), Dst: conntrack.AddrFrom(dst)}}
	if got := (&Lookups{Services: fakeServices{0: "zero"}}).Names(icmp); got.Service != "" {
		t.Errorf("ICMP flow got service %q", got.Service)
	}
	// Every source off: nothing known, nothing panics.
	if got := (&Lookups{}).Names(f); got != (Names{}) {
		t.Errorf("empty Lookups gave %+v", got)
	}
}
