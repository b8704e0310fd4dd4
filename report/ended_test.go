package report

import (
	"encoding/json"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
	"github.com/flowtop/flowtop/geo"
)

type fakeNamer map[uint32]enrich.Names

func (n fakeNamer) Names(f *conntrack.Flow) enrich.Names { return n[f.ID] }

func TestBuildEnded(t *testing.T) {
	start := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	stop := start.Add(90 * time.Second)
	tcp := conntrack.Ended{
		Flow: conntrack.Flow{
			ID: 7, Family: conntrack.IPv4, Proto: conntrack.ProtoTCP, State: 7,
			Orig: conntrack.Tuple{Src: conntrack.AddrFrom(netip.MustParseAddr("192.168.1.10")), Dst: conntrack.AddrFrom(netip.MustParseAddr("93.184.216.34")),
				SrcPort: 40000, DstPort: 443},
			Reply: conntrack.Tuple{Src: conntrack.AddrFrom(netip.MustParseAddr("93.184.216.34")), Dst: conntrack.AddrFrom(netip.MustParseAddr("203.0.113.1")),
				SrcPort: 443, DstPort: 40000},
			Status:      conntrack.StatusAssured | conntrack.StatusConfirmed | conntrack.StatusSrcNAT,
			Mark:        3,
			Zone:        1,
			Start:       conntrack.StampOf(start),
			HasCounters: true,
			OrigCount:   conntrack.Counter{Packets: 10, Bytes: 1000},
			ReplyCount:  conntrack.Counter{Packets: 20, Bytes: 30000},
		},
		Stop: stop,
	}
	icmp := conntrack.Ended{
		Flow: conntrack.Flow{
			ID: 8, Family: conntrack.IPv6, Proto: conntrack.ProtoICMPv6,
			Orig:  conntrack.Tuple{Src: conntrack.AddrFrom(netip.MustParseAddr("2001:db8::1")), Dst: conntrack.AddrFrom(netip.MustParseAddr("2001:db8::2"))},
			Reply: conntrack.Tuple{Src: conntrack.AddrFrom(netip.MustParseAddr("2001:db8::2")), Dst: conntrack.AddrFrom(netip.MustParseAddr("2001:db8::1"))},
			ICMP:  conntrack.ICMP{ID: 5, Type: 128},
		},
		Stop:   stop,
		Reason: conntrack.EndVanished,
	}
	u64 := func(v uint64) *uint64 { return &v }
	f64 := func(v float64) *float64 { return &v }
	u8 := func(v uint8) *uint8 { return &v }
	u16 := func(v uint16) *uint16 { return &v }
	names := fakeNamer{7: {Service: "https", DstName: "example.com", DstGeo: geo.Info{Country: "US"}}}

	got := BuildEnded([]conntrack.Ended{tcp, icmp}, names)
	want := []Ended{{
		Endpoints: Endpoints{
			ID: 7, Family: "ipv4", Proto: "tcp", ProtoNum: 6, State: "TIME_WAIT",
			Src: "192.168.1.10", Sport: 40000, Dst: "93.184.216.34", Dport: 443,
			ReplySrc: "93.184.216.34", ReplySport: 443, ReplyDst: "203.0.113.1", ReplyDport: 40000,
			NAT: "snat", Status: []string{"ASSURED", "CONFIRMED", "SRC_NAT"},
		},
		Counted: true,
		Orig:    Counts{Bytes: u64(1000), Packets: u64(10)},
		Reply:   Counts{Bytes: u64(30000), Packets: u64(20)},
		Start:   &start, Stop: stop, DurationS: f64(90), Reason: "destroyed", Mark: 3, Zone: 1,
		Names: Names{Service: "https", DstName: "example.com", DstGeo: &Geo{Country: "US"}},
	}, {
		Endpoints: Endpoints{
			ID: 8, Family: "ipv6", Proto: "icmpv6", ProtoNum: 58,
			Src: "2001:db8::1", Dst: "2001:db8::2", ReplySrc: "2001:db8::2", ReplyDst: "2001:db8::1",
			ICMPType: u8(128), ICMPCode: u8(0), ICMPID: u16(5), Status: []string{},
		},
		Stop:   stop,
		Reason: "vanished",
	}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("BuildEnded (-want +got):\n%s", diff)
	}
}

func TestEndedJSON(t *testing.T) {
	stop := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	e := conntrack.Ended{Flow: conntrack.Flow{ID: 1, Family: conntrack.IPv4, Proto: conntrack.ProtoUDP,
		Orig:  conntrack.Tuple{Src: conntrack.AddrFrom(netip.MustParseAddr("10.0.0.1")), Dst: conntrack.AddrFrom(netip.MustParseAddr("10.0.0.2")), SrcPort: 1, DstPort: 53},
		Reply: conntrack.Tuple{Src: conntrack.AddrFrom(netip.MustParseAddr("10.0.0.2")), Dst: conntrack.AddrFrom(netip.MustParseAddr("10.0.0.1")), SrcPort: 53, DstPort: 1},
	}, Stop: stop}
	b, err := json.Marshal(BuildEnded([]conntrack.Ended{e}, nil))
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	// Unknown counters and start are null, not zero: a consumer must be
	// able to tell "not counted" from "empty".
	want := map[string]any{"bytes": nil, "packets": nil}
	if diff := cmp.Diff(want, got[0]["orig"]); diff != "" {
		t.Errorf("orig (-want +got):\n%s", diff)
	}
	for _, k := range []string{"start", "duration_s"} {
		if v, ok := got[0][k]; !ok || v != nil {
			t.Errorf("%s = %v (present %v), want null", k, v, ok)
		}
	}
	if got[0]["stop"] != "2025-03-01T12:00:00Z" {
		t.Errorf("stop = %v", got[0]["stop"])
	}
	// reason is always there: a record from a DESTROY event says so.
	if got[0]["reason"] != "destroyed" {
		t.Errorf("reason = %v (present %v), want \"destroyed\"", got[0]["reason"], got[0]["reason"] != nil)
	}
}
