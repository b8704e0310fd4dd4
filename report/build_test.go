package report

import (
	"bytes"
	"encoding/json"
	"flag"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flowtop/flowtop/conntrack"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var goldenTime = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// goldenSnapshot has one flow of each kind the document must render.
func goldenSnapshot() *conntrack.Snapshot {
	a := netip.MustParseAddr
	filter := conntrack.Filter{IPv4: true, IPv6: true}
	for _, p := range []conntrack.Proto{conntrack.ProtoTCP, conntrack.ProtoUDP, conntrack.ProtoICMP} {
		filter.Protos.Add(p)
	}
	s := &conntrack.Snapshot{
		Time:       goldenTime.In(time.FixedZone("CET", 3600)), // printed in UTC whatever the zone
		Interval:   time.Second,
		TableFlows: 6,
		Filter:     filter,
		Health: conntrack.Health{
			Events: 42, Overruns: 1, Resyncs: 1,
			Refresh: 12345 * time.Microsecond, RefreshEvery: time.Second,
			KernelFlows: 6, Accounting: true, Timestamps: true,
		},
		Flows: conntrack.Pointers([]conntrack.Flow{{
			// IPv4 TCP behind masquerade (SNAT).
			ID: 11, Family: conntrack.IPv4, Proto: conntrack.ProtoTCP, State: 3,
			Orig: conntrack.Tuple{Src: conntrack.AddrFrom(a("192.168.1.10")), Dst: conntrack.AddrFrom(a("93.184.216.34")), SrcPort: 40000, DstPort: 443},
			Reply: conntrack.Tuple{Src: conntrack.AddrFrom(a("93.184.216.34")), Dst: conntrack.AddrFrom(a("203.0.113.1")),
				SrcPort: 443, DstPort: 61000},
			Status:      conntrack.StatusSeenReply | conntrack.StatusAssured | conntrack.StatusConfirmed | conntrack.StatusSrcNAT,
			Mark:        3,
			Timeout:     431999,
			Start:       conntrack.StampOf(goldenTime.Add(-90 * time.Second)),
			HasCounters: true,
			OrigCount:   conntrack.Counter{Packets: 100, Bytes: 12000},
			ReplyCount:  conntrack.Counter{Packets: 900, Bytes: 1300000},
			OrigRate:    conntrack.Rate{Bytes: 1500.5, Packets: 12, Avg2: 1400, Avg10: 1200, Avg40: 800},
			ReplyRate:   conntrack.Rate{Bytes: 150000, Packets: 100, Avg2: 140000, Avg10: 120000, Avg40: 80000},
		}, {
			// IPv6 UDP, no NAT, in zone 2.
			ID: 12, Family: conntrack.IPv6, Proto: conntrack.ProtoUDP,
			Orig:        conntrack.Tuple{Src: conntrack.AddrFrom(a("2001:db8::1")), Dst: conntrack.AddrFrom(a("2001:db8::53")), SrcPort: 5353, DstPort: 53},
			Reply:       conntrack.Tuple{Src: conntrack.AddrFrom(a("2001:db8::53")), Dst: conntrack.AddrFrom(a("2001:db8::1")), SrcPort: 53, DstPort: 5353},
			Status:      conntrack.StatusConfirmed | conntrack.StatusSeenReply,
			Zone:        2,
			Timeout:     29,
			Start:       conntrack.StampOf(goldenTime.Add(-1500 * time.Millisecond)),
			HasCounters: true,
			OrigCount:   conntrack.Counter{Packets: 1, Bytes: 80},
			ReplyCount:  conntrack.Counter{Packets: 1, Bytes: 200},
			OrigRate:    conntrack.Rate{Bytes: 53.25, Packets: 0.5, Avg2: 53.25, Avg10: 53.25, Avg40: 53.25},
			ReplyRate:   conntrack.Rate{Bytes: 133.5, Packets: 0.5, Avg2: 133.5, Avg10: 133.5, Avg40: 133.5},
		}, {
			// ICMP echo: type, code and id instead of ports.
			ID: 13, Family: conntrack.IPv4, Proto: conntrack.ProtoICMP,
			Orig:        conntrack.Tuple{Src: conntrack.AddrFrom(a("192.0.2.1")), Dst: conntrack.AddrFrom(a("192.0.2.2"))},
			Reply:       conntrack.Tuple{Src: conntrack.AddrFrom(a("192.0.2.2")), Dst: conntrack.AddrFrom(a("192.0.2.1"))},
			ICMP:        conntrack.ICMP{ID: 4242, Type: 8},
			Status:      conntrack.StatusConfirmed | conntrack.StatusSeenReply,
			Timeout:     30,
			Start:       conntrack.StampOf(goldenTime.Add(-3 * time.Second)),
			HasCounters: true,
			OrigCount:   conntrack.Counter{Packets: 3, Bytes: 252},
			ReplyCount:  conntrack.Counter{Packets: 3, Bytes: 252},
			OrigRate:    conntrack.Rate{Bytes: 84, Packets: 1, Avg2: 84, Avg10: 84, Avg40: 84},
			ReplyRate:   conntrack.Rate{Bytes: 84, Packets: 1, Avg2: 84, Avg10: 84, Avg40: 84},
		}, {
			// Created while accounting and timestamps were off: counters,
			// start and age are unknown (null), not 0.
			ID: 14, Family: conntrack.IPv4, Proto: conntrack.ProtoTCP, State: 3,
			Orig:    conntrack.Tuple{Src: conntrack.AddrFrom(a("192.168.1.10")), Dst: conntrack.AddrFrom(a("192.168.1.1")), SrcPort: 50000, DstPort: 22},
			Reply:   conntrack.Tuple{Src: conntrack.AddrFrom(a("192.168.1.1")), Dst: conntrack.AddrFrom(a("192.168.1.10")), SrcPort: 22, DstPort: 50000},
			Status:  conntrack.StatusConfirmed | conntrack.StatusSeenReply | conntrack.StatusAssured,
			Timeout: 300,
		}, {
			// Port forward (DNAT) to an inner host.
			ID: 15, Family: conntrack.IPv4, Proto: conntrack.ProtoTCP, State: 1,
			Orig: conntrack.Tuple{Src: conntrack.AddrFrom(a("198.51.100.7")), Dst: conntrack.AddrFrom(a("203.0.113.1")), SrcPort: 51000, DstPort: 8080},
			Reply: conntrack.Tuple{Src: conntrack.AddrFrom(a("192.168.1.20")), Dst: conntrack.AddrFrom(a("198.51.100.7")),
				SrcPort: 80, DstPort: 51000},
			Status:      conntrack.StatusConfirmed | conntrack.StatusDstNAT,
			Timeout:     120,
			Start:       conntrack.StampOf(goldenTime.Add(-time.Second)),
			HasCounters: true,
			OrigCount:   conntrack.Counter{Packets: 1, Bytes: 60},
			OrigRate:    conntrack.Rate{Bytes: 60, Packets: 1, Avg2: 60, Avg10: 60, Avg40: 60},
		}}),
	}
	s.Flows[0].Labels = conntrack.RefLabels(conntrack.Labels{0: 0x01, 15: 0x80})
	return s
}

func TestBuildGolden(t *testing.T) {
	s := goldenSnapshot()
	before := goldenSnapshot()
	doc := Build(s, Options{Host: "router", Netns: "/var/run/netns/lan"})
	if diff := cmp.Diff(before, s, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("Build modified the snapshot (-before +after):\n%s", diff)
	}
	got, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", "snapshot.golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./report -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("document differs from %s (-want +got):\n%s\nrun go test ./report -update if the change is intended",
			path, cmp.Diff(string(want), string(got)))
	}
}

// TestGoldenHasRequiredKeys reads the golden file back as plain JSON and
// checks the keys the issue requires, so an -update cannot silently drop
// or rename one.
func TestGoldenHasRequiredKeys(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "snapshot.golden.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	has := func(m map[string]any, where string, keys ...string) {
		t.Helper()
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				t.Errorf("%s: missing key %q", where, k)
			}
		}
	}
	has(doc, "document", "version", "host", "time", "interval_s", "totals", "health", "flows")
	if doc["version"] != float64(1) || doc["time"] != "2025-03-01T12:00:00Z" || doc["interval_s"] != float64(1) {
		t.Errorf("version %v, time %v, interval_s %v", doc["version"], doc["time"], doc["interval_s"])
	}
	totals := doc["totals"].(map[string]any)
	has(totals, "totals", "flows", "by_proto", "orig_bytes_per_s", "reply_bytes_per_s")
	if diff := cmp.Diff(map[string]any{"tcp": 3.0, "udp": 1.0, "icmp": 1.0}, totals["by_proto"]); diff != "" {
		t.Errorf("by_proto (-want +got):\n%s", diff)
	}
	if totals["orig_bytes_per_s"] != 1500.5+53.25+84+60 || totals["reply_bytes_per_s"] != 150000+133.5+84 {
		t.Errorf("rate totals: %v %v", totals["orig_bytes_per_s"], totals["reply_bytes_per_s"])
	}
	has(doc["health"].(map[string]any), "health", "events", "overruns", "resyncs", "refresh_ms", "kernel_flows")
	flows := doc["flows"].([]any)
	byID := map[float64]map[string]any{}
	for _, f := range flows {
		m := f.(map[string]any)
		has(m, "flow", "id", "family", "proto", "state", "src", "sport", "dst", "dport",
			"reply_src", "reply_sport", "reply_dst", "reply_dport", "nat", "orig", "reply", "start", "age_s", "mark", "zone")
		for _, dir := range []string{"orig", "reply"} {
			has(m[dir].(map[string]any), dir, "bytes", "packets", "bytes_per_s")
		}
		byID[m["id"].(float64)] = m
	}
	checks := []struct {
		id         float64
		key        string
		want       any
		dir, inner string
	}{
		{id: 11, key: "nat", want: "snat"},
		{id: 11, key: "state", want: "ESTABLISHED"},
		{id: 11, key: "family", want: "ipv4"},
		{id: 11, key: "age_s", want: 90.0},
		{id: 12, key: "nat", want: ""},
		{id: 12, key: "family", want: "ipv6"},
		{id: 12, key: "proto", want: "udp"},
		{id: 12, key: "state", want: ""},
		{id: 12, key: "zone", want: 2.0},
		{id: 13, key: "proto", want: "icmp"},
		{id: 13, key: "icmp_type", want: 8.0},
		{id: 13, key: "icmp_id", want: 4242.0},
		{id: 14, key: "counted", want: false},
		{id: 14, key: "start", want: nil},
		{id: 14, key: "age_s", want: nil},
		{id: 14, dir: "orig", inner: "bytes", want: nil},
		{id: 14, dir: "reply", inner: "packets", want: nil},
		{id: 11, dir: "reply", inner: "bytes", want: 1300000.0},
		{id: 15, key: "nat", want: "dnat"},
		{id: 15, dir: "reply", inner: "bytes", want: 0.0}, // counted: 0 is a real 0
	}
	for _, c := range checks {
		f := byID[c.id]
		var got any
		if c.dir != "" {
			got = f[c.dir].(map[string]any)[c.inner]
		} else {
			got = f[c.key]
		}
		if got != c.want {
			t.Errorf("flow %v %s%s%s = %#v, want %#v", c.id, c.key, c.dir, "."+c.inner, got, c.want)
		}
	}
}

// TestSortedTiesByID: flows with the same metric come in ID order whatever
// their order in the snapshot, so the list does not jump between refreshes.
func TestSortedTiesByID(t *testing.T) {
	now := goldenTime
	var flows []conntrack.Flow
	for id := uint32(1); id <= 40; id++ {
		f := conntrack.Flow{ID: id, HasCounters: true, Start: conntrack.StampOf(now.Add(-time.Duration(id%3) * time.Second))}
		f.OrigRate.Bytes = float32(id % 3)
		f.OrigCount = conntrack.Counter{Packets: uint64(id % 2), Bytes: uint64(id % 4)}
		flows = append(flows, f)
	}
	r := rand.New(rand.NewPCG(3, 4))
	for _, key := range []SortKey{SortRate, SortBytes, SortPackets, SortAge} {
		var first []uint32
		for round := 0; round < 5; round++ {
			r.Shuffle(len(flows), func(i, j int) { flows[i], flows[j] = flows[j], flows[i] })
			var got []uint32
			for _, f := range Sorted(conntrack.Pointers(flows), key, now) {
				got = append(got, f.ID)
			}
			if round == 0 {
				first = got
				continue
			}
			if !slices.Equal(first, got) {
				t.Fatalf("%s: order depends on the input order:\n%v\n%v", key, first, got)
			}
		}
		// Ties in ID order, metric descending.
		byID := map[uint32]conntrack.Flow{}
		for _, f := range flows {
			byID[f.ID] = f
		}
		metric := func(f conntrack.Flow) float64 {
			switch key {
			case SortBytes:
				return float64(f.TotalBytes())
			case SortPackets:
				return float64(f.TotalPackets())
			case SortAge:
				a, _ := f.Age(now)
				return a.Seconds()
			}
			return f.TotalRate()
		}
		for i := 1; i < len(first); i++ {
			a, b := byID[first[i-1]], byID[first[i]]
			if metric(a) < metric(b) || metric(a) == metric(b) && a.ID > b.ID {
				t.Fatalf("%s: flow %d before %d", key, a.ID, b.ID)
			}
		}
	}
}

func TestBuildLimit(t *testing.T) {
	s := goldenSnapshot()
	doc := Build(s, Options{Limit: 2})
	if len(doc.Flows) != 2 || doc.Totals.Flows != 5 || doc.Totals.Listed != 2 || doc.Totals.TableFlows != 6 {
		t.Fatalf("Limit 2: %d flows listed, totals %+v; want 2 listed of 5", len(doc.Flows), doc.Totals)
	}
	// The two fastest by total rate.
	if doc.Flows[0].ID != 11 || doc.Flows[1].ID != 12 {
		t.Errorf("listed %d and %d, want 11 and 12", doc.Flows[0].ID, doc.Flows[1].ID)
	}
	// Totals still count what the limit leaves out.
	full := Build(s, Options{})
	if diff := cmp.Diff(full.Totals.ByProto, doc.Totals.ByProto); diff != "" || full.Totals.OrigBytesPerS != doc.Totals.OrigBytesPerS {
		t.Errorf("totals depend on the limit (-full +limited):\n%s", diff)
	}
	if len(full.Flows) != 5 {
		t.Errorf("no limit: %d flows, want 5", len(full.Flows))
	}
	if got := Build(s, Options{Limit: 99}); len(got.Flows) != 5 {
		t.Errorf("limit above the flow count: %d flows, want 5", len(got.Flows))
	}
	bytesDoc := Build(s, Options{Sort: SortBytes, Limit: 1})
	if bytesDoc.Flows[0].ID != 11 {
		t.Errorf("--sort bytes --limit 1 lists flow %d, want 11", bytesDoc.Flows[0].ID)
	}
	ageDoc := Build(s, Options{Sort: SortAge, Limit: 1})
	if ageDoc.Flows[0].ID != 11 {
		t.Errorf("--sort age --limit 1 lists flow %d, want 11", ageDoc.Flows[0].ID)
	}
}

func TestBuildEmpty(t *testing.T) {
	doc := Build(&conntrack.Snapshot{Time: goldenTime}, Options{})
	b, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if flows, ok := m["flows"].([]any); !ok || len(flows) != 0 {
		t.Errorf("flows of an empty snapshot = %#v, want [] (not null)", m["flows"])
	}
	if bp, ok := m["totals"].(map[string]any)["by_proto"].(map[string]any); !ok || len(bp) != 0 {
		t.Errorf("by_proto of an empty snapshot = %#v, want {}", m["totals"].(map[string]any)["by_proto"])
	}
}

func TestParseSortKey(t *testing.T) {
	for in, want := range map[string]SortKey{"rate": SortRate, "BYTES": SortBytes, "packets": SortPackets, "Age": SortAge} {
		if got, err := ParseSortKey(in); err != nil || got != want {
			t.Errorf("ParseSortKey(%q) = %q, %v", in, got, err)
		}
	}
	if _, err := ParseSortKey("speed"); err == nil {
		t.Error("ParseSortKey(speed): no error")
	}
}
