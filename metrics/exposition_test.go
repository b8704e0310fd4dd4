package metrics

import (
	"bytes"
	"context"
	"flag"
	"math"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/export"
	"github.com/flowtop/flowtop/report"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

func TestEscaping(t *testing.T) {
	for _, tc := range []struct {
		in          string
		quote       bool
		want        string
		description string
	}{
		{`a"b\c` + "\nd", true, `a\"b\\c\nd`, "label value"},
		{`a"b\c` + "\nd", false, `a"b\\c\nd`, "help text keeps quotes"},
		{"192.168.1.10", true, "192.168.1.10", "plain"},
	} {
		if got := string(appendEscaped(nil, tc.in, tc.quote)); got != tc.want {
			t.Errorf("%s: appendEscaped(%q) = %q, want %q", tc.description, tc.in, got, tc.want)
		}
	}
	for v, want := range map[float64]string{0.25: "0.25", 3: "3", 1e21: "1e+21", math.Inf(1): "+Inf",
		math.Inf(-1): "-Inf"} {
		if got := string(appendFloat(nil, v)); got != want {
			t.Errorf("appendFloat(%v) = %q, want %q", v, got, want)
		}
	}
	if got := string(appendFloat(nil, math.NaN())); got != "NaN" {
		t.Errorf("appendFloat(NaN) = %q", got)
	}
	var w expWriter
	w.uint("x", 1, label{"a", `"`}, label{"b", ""})
	if got, want := string(w.b), "x{a=\"\\\"\",b=\"\"} 1\n"; got != want {
		t.Errorf("sample = %q, want %q", got, want)
	}
}

// fakeKernel returns fixed statistics.
type fakeKernel struct {
	s   conntrack.KernelStats
	err error
}

func (k fakeKernel) Read() (conntrack.KernelStats, error) { return k.s, k.err }

// open is k as Config.OpenKernel opens it.
func (k fakeKernel) open() (KernelStats, error) { return k, nil }

// fixture is a collector over snapshots the test sets, with fixed
// exporters, kernel statistics and versions.
type fixture struct {
	latest atomic.Pointer[conntrack.Snapshot]
	c      *Collector
}

// setup is what a fixture's collector is made with; the fixture sets the
// Env's Latest.
type setup struct {
	Config
	export.Env
}

func newFixture(t testing.TB, su setup) *fixture {
	t.Helper()
	fx := &fixture{}
	su.Latest = fx.latest.Load
	if su.Version == "" {
		su.Version, su.GoVersion = "1.2.3", "go1.26.0"
	}
	if su.FoldEvery == 0 {
		su.FoldEvery = time.Hour // folds only when scraped
	}
	c, err := New(su.Config, su.Env)
	if err != nil {
		t.Fatal(err)
	}
	fx.c = c
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { fx.c.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	return fx
}

// scrape sets the latest snapshot (when s is not nil) and gathers.
func (fx *fixture) scrape(t testing.TB, s *conntrack.Snapshot) string {
	t.Helper()
	if s != nil {
		fx.latest.Store(s)
	}
	b, err := fx.c.Gather(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// goldenSnapshot is a small router's table: LAN hosts over IPv4 and IPv6
// behind SNAT, a port forward, LAN-to-LAN traffic, DNS over UDP, a ping.
func goldenSnapshot() *conntrack.Snapshot {
	wan := conntrack.MustParseAddr("198.51.100.1")
	web := counted(flow(1, "192.168.1.10", 40000, "203.0.113.5", 443), 12000, 480000)
	web.Reply.Dst = wan
	closing := counted(flow(2, "192.168.1.10", 40002, "203.0.113.5", 443), 700, 900)
	closing.State = 7 // TIME_WAIT
	closing.Reply.Dst = wan
	fwd := counted(flow(3, "203.0.113.9", 50000, "198.51.100.1", 8080), 2000, 64000)
	fwd.Reply.Src = conntrack.MustParseAddr("192.168.1.20")
	ssh := counted(flow(4, "192.168.1.10", 40001, "192.168.1.20", 22), 3000, 9000)
	v6 := counted(flow(5, "fd00::5", 40003, "2001:db8::1", 443), 5000, 150000)
	dns := counted(flow(6, "192.168.1.20", 5353, "192.168.1.1", 53), 80, 240)
	dns.Proto, dns.State = conntrack.ProtoUDP, 0
	ping := counted(flow(7, "192.168.1.10", 0, "203.0.113.5", 0), 84, 84)
	ping.Proto, ping.State, ping.ICMP = conntrack.ProtoICMP, 0, conntrack.ICMP{ID: 9, Type: 8}
	ping.Orig.SrcPort, ping.Orig.DstPort, ping.Reply.SrcPort, ping.Reply.DstPort = 0, 0, 0, 0
	s := snap(web, closing, fwd, ssh, v6, dns, ping)
	s.Time = time.Date(2025, 3, 1, 12, 0, 5, 250e6, time.UTC)
	s.TableFlows = 9
	s.Health = conntrack.Health{Events: 1234, Overruns: 2, Resyncs: 2, Refresh: 3500 * time.Microsecond,
		RefreshEvery: time.Second, Refreshes: 60, KernelFlows: 11, Accounting: true, Timestamps: true}
	return s
}

func goldenConfig() setup {
	connected, endedDropped := true, uint64(5)
	return setup{
		Env: export.Env{Health: func(h *report.Health) {
			h.Exporters = map[string]report.ExporterHealth{
				"mqtt": {Published: 40, Dropped: 1, Errors: 3, Connected: &connected, EndedDropped: &endedDropped},
				"file": {Published: 6},
			}
		}},
		Config: Config{OpenKernel: fakeKernel{s: conntrack.KernelStats{CPUs: 2, Found: 1, Invalid: 17, Insert: 0,
			InsertFailed: 3, Drop: 4, EarlyDrop: 5, Error: 6, SearchRestart: 7, Max: 262144}}.open},
	}
}

// TestExpositionGolden compares the metrics of a fixed table with
// testdata/golden.prom (go test -update rewrites it).
func TestExpositionGolden(t *testing.T) {
	fx := newFixture(t, goldenConfig())
	fx.scrape(t, snap()) // the baseline: an empty table
	got := fx.scrape(t, goldenSnapshot())
	path := filepath.Join("testdata", "golden.prom")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("exposition differs from %s (-want +got):\n%s", path, diff)
	}
}

// TestExpositionWithoutExtras: no exporters, no kernel statistics (an
// error reading them), no snapshot yet: the build and host metrics only.
func TestExpositionWithoutExtras(t *testing.T) {
	fx := newFixture(t, setup{Config: Config{OpenKernel: fakeKernel{err: os.ErrPermission}.open}})
	got := fx.scrape(t, nil)
	want := `# HELP flowtop_build_info flowtop's version and the Go version it was built with; always 1.
# TYPE flowtop_build_info gauge
flowtop_build_info{version="1.2.3",goversion="go1.26.0"} 1
# HELP flowtop_hosts Local hosts with series of their own.
# TYPE flowtop_hosts gauge
flowtop_hosts 0
# HELP flowtop_host_overflow_flows_total Flows of local hosts beyond the host limit, counted under host="other".
# TYPE flowtop_host_overflow_flows_total counter
flowtop_host_overflow_flows_total 0
`
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestScrapeCountsEndedFlows: through the collector's goroutine, an ended
// record's bytes show at the next scrape and stay after the flow is gone.
func TestScrapeCountsEndedFlows(t *testing.T) {
	ended := make(chan conntrack.Ended, 4)
	fx := newFixture(t, setup{Env: export.Env{Ended: ended}})
	x := flow(1, "192.168.1.10", 40000, "203.0.113.5", 443)
	fx.scrape(t, snap())
	first := fx.scrape(t, snap(counted(x, 100, 1000)))
	ended <- conntrack.Ended{Flow: counted(x, 150, 4000), Stop: seqTime}
	fx.latest.Store(snap())
	after := fx.scrape(t, nil)
	for _, tc := range []struct {
		text, line string
	}{
		{first, `flowtop_host_receive_bytes_total{host="192.168.1.10"} 1000`},
		{first, `flowtop_host_flows{host="192.168.1.10"} 1`},
		{after, `flowtop_host_receive_bytes_total{host="192.168.1.10"} 4000`},
		{after, `flowtop_host_transmit_bytes_total{host="192.168.1.10"} 150`},
		{after, `flowtop_host_flows{host="192.168.1.10"} 0`},
	} {
		if !bytes.Contains([]byte(tc.text), []byte(tc.line+"\n")) {
			t.Errorf("no line %q in:\n%.600s", tc.line, tc.text)
		}
	}
}

// TestEndedFollowsFilter: an ended flow the table's filter hides is not
// counted, as its snapshots never listed it.
func TestEndedFollowsFilter(t *testing.T) {
	ended := make(chan conntrack.Ended, 4)
	fx := newFixture(t, setup{Env: export.Env{Ended: ended}})
	tcpOnly := snap()
	tcpOnly.Filter = conntrack.DefaultFilter()
	fx.scrape(t, tcpOnly)
	u := counted(flow(1, "192.168.1.10", 5000, "203.0.113.5", 53), 100, 1000)
	u.Proto = conntrack.ProtoUDP
	ended <- conntrack.Ended{Flow: u, Stop: seqTime}
	next := snap()
	next.Filter = conntrack.DefaultFilter()
	if got := fx.scrape(t, next); bytes.Contains([]byte(got), []byte("flowtop_host_receive_bytes_total")) {
		t.Errorf("a UDP flow counted under a TCP-only filter:\n%.600s", got)
	}
}
