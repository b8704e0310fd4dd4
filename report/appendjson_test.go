package report

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
	"github.com/flowtop/flowtop/geo"
	"github.com/flowtop/flowtop/procs"
)

// oddStrings are names as they may come from reverse DNS, GeoIP or /proc:
// what encoding/json escapes included.
var oddStrings = []string{"", "example.org", "a<b>&c", "ünïcödé", `quote"back\slash`, "ctl\x01\n\t",
	"line\u2028sep", "bad\xffutf8", "東京", "firefox --new-tab https://x/?a=1&b=2"}

// randomFlow makes a flow with every field drawn from r, corner cases
// (tiny and huge rates, no counters, no start, labels, ICMP, an unknown
// protocol, IPv4-mapped and missing addresses) included.
func randomFlow(r *rand.Rand, now time.Time) *conntrack.Flow {
	addr := func() conntrack.Addr {
		switch r.IntN(5) {
		case 0:
			return conntrack.AddrFrom(netip.AddrFrom4([4]byte{byte(r.IntN(256)), byte(r.IntN(256)), 0, byte(r.IntN(256))}))
		case 1:
			return conntrack.AddrFrom(netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(r.IntN(256))}))
		case 2:
			return conntrack.AddrFrom(netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: 10, 15: byte(r.IntN(256))})) // mapped
		case 3:
			return conntrack.Addr{} // none
		}
		return conntrack.AddrFrom(netip.IPv6Loopback())
	}
	rate := func() float32 {
		switch r.IntN(5) {
		case 0:
			return 0
		case 1:
			return float32(math.Pow(10, -10*r.Float64())) // around 1e-6
		case 2:
			return float32(math.Pow(10, 15+10*r.Float64())) // around 1e21
		}
		return float32(r.Float64() * 1e6)
	}
	protos := []conntrack.Proto{conntrack.ProtoTCP, conntrack.ProtoUDP, conntrack.ProtoICMP, conntrack.ProtoICMPv6,
		conntrack.ProtoSCTP, conntrack.ProtoDCCP, conntrack.ProtoUDPLite, 99}
	f := &conntrack.Flow{
		ID: r.Uint32(), Family: conntrack.Family([]uint8{2, 10, 0}[r.IntN(3)]), Proto: protos[r.IntN(len(protos))],
		Orig:  conntrack.Tuple{Src: addr(), Dst: addr(), SrcPort: uint16(r.IntN(65536)), DstPort: uint16(r.IntN(65536))},
		ICMP:  conntrack.ICMP{Type: uint8(r.IntN(256)), Code: uint8(r.IntN(16)), ID: uint16(r.IntN(65536))},
		Reply: conntrack.Tuple{Src: addr(), Dst: addr(), SrcPort: uint16(r.IntN(65536)), DstPort: uint16(r.IntN(65536))},
		State: uint8(r.IntN(12)), HasCounters: r.IntN(4) != 0, Status: conntrack.Status(r.Uint32()),
		Mark: r.Uint32(), Zone: uint16(r.IntN(3)), Timeout: uint32(r.IntN(500000)),
		Seen:       conntrack.StampOf(now.Add(-time.Duration(r.IntN(1e9)))),
		OrigCount:  conntrack.Counter{Packets: r.Uint64(), Bytes: r.Uint64() >> r.IntN(64)},
		ReplyCount: conntrack.Counter{Packets: uint64(r.IntN(1000)), Bytes: uint64(r.IntN(1 << 30))},
		OrigRate:   conntrack.Rate{Bytes: rate(), Packets: rate(), Avg2: rate(), Avg10: rate(), Avg40: rate()},
		ReplyRate:  conntrack.Rate{Bytes: rate(), Packets: rate(), Avg2: rate(), Avg10: rate(), Avg40: rate()},
	}
	if r.IntN(4) != 0 {
		f.Start = conntrack.StampOf(now.Add(-time.Duration(r.Int64N(int64(48 * time.Hour)))))
	}
	if r.IntN(5) == 0 {
		f.Start = conntrack.StampOf(now.Add(time.Duration(r.IntN(1e9)))) // clocks apart: a start after now
	}
	if r.IntN(3) == 0 {
		var l conntrack.Labels
		for i := range l {
			l[i] = byte(r.IntN(256))
		}
		f.Labels = conntrack.RefLabels(l)
	}
	return f
}

func randomNames(r *rand.Rand) enrich.Names {
	s := func() string { return oddStrings[r.IntN(len(oddStrings))] }
	n := enrich.Names{Service: s(), SrcService: s(), SrcName: s(), DstName: s()}
	if r.IntN(2) == 0 {
		n.SrcGeo = geo.Info{Country: s(), CountryName: s(), City: s(), ASN: uint(r.IntN(3)) * 3320, ASOrg: s()}
	}
	if r.IntN(2) == 0 {
		n.DstGeo = geo.Info{Country: s()}
	}
	if r.IntN(2) == 0 {
		n.Process = procs.Info{PID: r.IntN(3) * 4242, Name: s(), User: s(), Cmdline: s()}
	}
	return n
}

// TestAppendFlowIsEncodingJSON: the flow appender writes the very bytes
// encoding/json writes of the flow's document, with and without names.
func TestAppendFlowIsEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	now := time.Date(2026, 11, 22, 13, 0, 0, 123456789, time.UTC)
	for i := range 20000 {
		f := randomFlow(r, now)
		d := flowDoc(f, now)
		var n *enrich.Names
		if i%2 == 0 {
			names := randomNames(r)
			n = &names
			d.Names = namesDoc(names)
		}
		want, err := json.Marshal(&d)
		if err != nil {
			t.Fatalf("encoding/json: %v", err)
		}
		got, ok := appendFlow(nil, f, now, n)
		if !ok || !bytes.Equal(got, want) {
			t.Fatalf("flow %+v names %+v:\n got %s (ok %v)\nwant %s", f, n, got, ok, want)
		}
	}
}

// TestAppendFlowRefusesWhatJSONRefuses: a NaN rate fails as with
// encoding/json, naming the flow.
func TestAppendFlowRefusesWhatJSONRefuses(t *testing.T) {
	s := benchSnapshot(3)
	bad := *s.Flows[1]
	bad.OrigRate.Avg10 = float32(math.NaN())
	s.Flows[1] = &bad
	err := Prepare(s, Options{}).Encode(&bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "flow 1") || !strings.Contains(err.Error(), "NaN") {
		t.Errorf("a NaN rate: err = %v, want encoding/json's error naming flow 1", err)
	}
}

type randomNamer struct{}

func (randomNamer) Names(f *conntrack.Flow) enrich.Names {
	return randomNames(rand.New(rand.NewPCG(uint64(f.ID), 1)))
}

// TestEncodeIsEncodingJSON: a prepared document writes the bytes
// encoding/json writes of the whole document, for every limit and sort,
// with names, an empty table and the exporters' health added after
// Prepare.
func TestEncodeIsEncodingJSON(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	now := time.Date(2026, 11, 22, 13, 0, 0, 5, time.UTC)
	flows := make([]*conntrack.Flow, 3000)
	for i := range flows {
		flows[i] = randomFlow(r, now)
	}
	snap := &conntrack.Snapshot{Time: now, Interval: time.Second, Flows: flows, TableFlows: 3100,
		Filter: conntrack.DefaultFilter(), Health: conntrack.Health{Events: 7, Accounting: true}}
	empty := &conntrack.Snapshot{Time: now, Filter: conntrack.DefaultFilter()}
	connected := true
	for _, s := range []*conntrack.Snapshot{snap, empty} {
		for _, opt := range []Options{
			{Host: "h<1>"},
			{Host: "h", Netns: "ns", Limit: 10, Sort: SortBytes, Names: randomNamer{}},
			{Limit: 5000, Sort: SortAge, Names: randomNamer{}},
		} {
			p := Prepare(s, opt)
			p.Health.Exporters = map[string]ExporterHealth{"file": {Published: 3, Connected: &connected}}
			var got, want bytes.Buffer
			if err := p.Encode(&got); err != nil {
				t.Fatal(err)
			}
			if err := json.NewEncoder(&want).Encode(p.Full()); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want.Bytes()) {
				t.Errorf("%d flows, %+v: Encode differs from encoding/json (%d vs %d bytes)", len(s.Flows), opt, got.Len(), want.Len())
			}
		}
	}
}

// TestEncodeDoesNotHoldTheDocument: writing every flow of a table costs a
// few allocations whatever the number of flows (the order, the header,
// the write buffer), not a document's worth: --once and --batch of a
// 100k-flow table stay within the table's memory.
func TestEncodeDoesNotHoldTheDocument(t *testing.T) {
	s := benchSnapshot(20_000)
	allocs := testing.AllocsPerRun(3, func() {
		if err := Prepare(s, Options{Host: "h"}).Encode(io.Discard); err != nil {
			t.Fatal(err)
		}
	})
	if allocs > 200 {
		t.Errorf("encoding 20,000 flows made %.0f allocations, want a few (not per flow)", allocs)
	}
}
