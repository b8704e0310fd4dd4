package remote

import (
	"bytes"
	"fmt"
	"net/netip"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
	"github.com/flowtop/flowtop/geo"
	"github.com/flowtop/flowtop/procs"
	"github.com/flowtop/flowtop/report"
)

// docTime is the time of the synthetic snapshots.
var docTime = time.Date(2026, 11, 22, 9, 5, 23, 732263907, time.UTC)

// synthFlows makes n flows of every kind the document has: NATed TCP over
// IPv4, UDP over IPv6, ICMP, an uncounted flow without a start time,
// labels and a mark. Rates fall with i, so the document's order (by rate)
// is the order of i.
func synthFlows(n int) []conntrack.Flow {
	flows := make([]conntrack.Flow, n)
	seen := conntrack.StampOf(docTime)
	for i := range flows {
		f := &flows[i]
		f.ID = uint32(1000 + i)
		f.Seen = seen
		f.Timeout = uint32(60 + i%100)
		f.Status = conntrack.StatusSeenReply | conntrack.StatusAssured | conntrack.StatusConfirmed
		f.HasCounters = true
		f.OrigCount = conntrack.Counter{Packets: uint64(10 + i), Bytes: uint64(1000 * (i + 1))}
		f.ReplyCount = conntrack.Counter{Packets: uint64(20 + i), Bytes: uint64(3000 * (i + 1))}
		rate := float32(n-i) * 100
		f.OrigRate = conntrack.Rate{Bytes: rate, Packets: rate / 100, Avg2: rate * 0.9, Avg10: rate * 0.8, Avg40: rate * 0.5}
		f.ReplyRate = conntrack.Rate{Bytes: rate * 3, Packets: rate / 50, Avg2: rate * 2.5, Avg10: rate * 2, Avg40: rate}
		f.Start = conntrack.StampOf(docTime.Add(-time.Duration(i+1) * time.Second))
		switch i % 4 {
		case 0: // TCP, SNAT
			f.Family, f.Proto, f.State = conntrack.IPv4, conntrack.ProtoTCP, 3
			f.Orig = conntrack.Tuple{Src: v4(192, 168, 1, byte(i)), Dst: v4(93, 184, 216, 34), SrcPort: uint16(40000 + i), DstPort: 443}
			f.Reply = conntrack.Tuple{Src: f.Orig.Dst, Dst: v4(203, 0, 113, 1), SrcPort: 443, DstPort: uint16(60000 + i%5000)}
			f.Status |= conntrack.StatusSrcNAT
			f.Mark = uint32(i)
		case 1: // UDP over IPv6
			f.Family, f.Proto = conntrack.IPv6, conntrack.ProtoUDP
			src := conntrack.AddrFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)}))
			f.Orig = conntrack.Tuple{Src: src, Dst: conntrack.MustParseAddr("2001:db8::53"), SrcPort: uint16(30000 + i), DstPort: 53}
			f.Reply = conntrack.Tuple{Src: f.Orig.Dst, Dst: src, SrcPort: 53, DstPort: f.Orig.SrcPort}
			f.Zone = 7
		case 2: // ICMP echo
			f.Family, f.Proto = conntrack.IPv4, conntrack.ProtoICMP
			f.ICMP = conntrack.ICMP{ID: uint16(i), Type: 8}
			f.Orig = conntrack.Tuple{Src: v4(10, 0, 0, byte(i)), Dst: v4(10, 0, 1, 1)}
			f.Reply = conntrack.Tuple{Src: f.Orig.Dst, Dst: f.Orig.Src}
			f.Labels = conntrack.RefLabels(conntrack.Labels{0: 1, 15: 0x80})
		case 3: // uncounted TCP without a start time, in TIME_WAIT
			f.Family, f.Proto, f.State = conntrack.IPv4, conntrack.ProtoTCP, 7
			f.Orig = conntrack.Tuple{Src: v4(10, 1, 0, byte(i)), Dst: v4(10, 1, 1, 1), SrcPort: uint16(1024 + i), DstPort: 22}
			f.Reply = conntrack.Tuple{Src: f.Orig.Dst, Dst: f.Orig.Src, SrcPort: 22, DstPort: f.Orig.SrcPort}
			f.HasCounters, f.OrigCount, f.ReplyCount = false, conntrack.Counter{}, conntrack.Counter{}
			f.Start = 0
		}
	}
	return flows
}

func v4(a, b, c, d byte) conntrack.Addr {
	return conntrack.AddrFrom(netip.AddrFrom4([4]byte{a, b, c, d}))
}

// synthNamer names flows by their ID: services on all, reverse DNS,
// GeoIP and processes on some, nothing on every fifth.
type synthNamer struct{}

func (synthNamer) Names(f *conntrack.Flow) enrich.Names {
	i := int(f.ID) - 1000
	switch i % 5 {
	case 0:
		return enrich.Names{Service: "https", DstName: fmt.Sprintf("host%d.example.net", i),
			DstGeo: geo.Info{Country: "NL", CountryName: "Netherlands", City: "Amsterdam", ASN: 64500, ASOrg: "Example <AS>"}}
	case 1:
		return enrich.Names{Service: "domain", SrcName: "laptop.lan",
			Process: procs.Info{PID: 4000 + i, Name: "dig", User: "alice", Cmdline: "dig @2001:db8::53 example.net"}}
	case 2:
		return enrich.Names{SrcGeo: geo.Info{Country: "DE"}}
	case 3:
		return enrich.Names{Service: "ssh", SrcService: "x11"}
	}
	return enrich.Names{}
}

// synthSnapshot is a table snapshot of the flows.
func synthSnapshot(flows []conntrack.Flow) *conntrack.Snapshot {
	filter := conntrack.Filter{IPv4: true, IPv6: true}
	filter.AllProtos()
	return &conntrack.Snapshot{
		Time: docTime, Interval: time.Second, Flows: conntrack.Pointers(flows),
		TableFlows: len(flows) + 3, Filter: filter,
		Health: conntrack.Health{Events: 42, Overruns: 2, Resyncs: 2, KernelFlows: len(flows) + 3,
			RefreshEvery: time.Second, Accounting: true, Timestamps: true},
	}
}

// encodeDoc is the real document of a snapshot, as flowtop writes it.
func encodeDoc(t testing.TB, s *conntrack.Snapshot, opt report.Options) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := report.Prepare(s, opt).Encode(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// short cuts a payload for failure messages.
func short(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}
