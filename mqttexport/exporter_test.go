package mqttexport

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
	"github.com/flowtop/flowtop/export"
	"github.com/flowtop/flowtop/mqttexport/mqtttest"
	"github.com/flowtop/flowtop/report"
)

// testSnapshot makes a table of n TCP flows from a LAN to the internet,
// NATed, with rates falling with the index (flow 1 is the busiest) and
// flow 1 on port 22.
func testSnapshot(n int) *conntrack.Snapshot {
	now := time.Now()
	wan := netip.MustParseAddr("198.51.100.1")
	s := &conntrack.Snapshot{
		Time: now, Interval: time.Second, TableFlows: n, Filter: conntrack.DefaultFilter(),
		Health: conntrack.Health{KernelFlows: n, Accounting: true, Timestamps: true, RefreshEvery: time.Second},
	}
	for i := range n {
		src := netip.AddrFrom4([4]byte{192, 168, 1, byte(10 + i%200)})
		dst := netip.AddrFrom4([4]byte{203, 0, 113, byte(1 + i%250)})
		sport, dport := uint16(40000+i), uint16(443)
		if i == 0 {
			dport = 22
		}
		s.Flows = append(s.Flows, &conntrack.Flow{
			ID: uint32(i + 1), Family: conntrack.IPv4, Proto: conntrack.ProtoTCP, State: 3,
			Orig:        conntrack.Tuple{Src: conntrack.AddrFrom(src), Dst: conntrack.AddrFrom(dst), SrcPort: sport, DstPort: dport},
			Reply:       conntrack.Tuple{Src: conntrack.AddrFrom(dst), Dst: conntrack.AddrFrom(wan), SrcPort: dport, DstPort: sport},
			Status:      conntrack.StatusAssured | conntrack.StatusConfirmed | conntrack.StatusSrcNAT,
			Timeout:     431999,
			Start:       conntrack.StampOf(now.Add(-time.Minute)),
			HasCounters: true,
			OrigCount:   conntrack.Counter{Packets: uint64(10 * (i + 1)), Bytes: uint64(1000 * (i + 1))},
			ReplyCount:  conntrack.Counter{Packets: uint64(20 * (i + 1)), Bytes: uint64(30000 * (i + 1))},
			OrigRate:    conntrack.Rate{Bytes: float32(100 * (n - i))},
			ReplyRate:   conntrack.Rate{Bytes: float32(1000 * (n - i))},
		})
	}
	return s
}

// syncBuffer collects log output from the exporter's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// harness runs one exporter against a test broker.
type harness struct {
	e      *Exporter
	t      topics
	snap   atomic.Pointer[conntrack.Snapshot]
	ended  chan conntrack.Ended
	logs   *syncBuffer
	cancel context.CancelFunc
	done   chan error
}

// patience is how long a test waits for what normally takes a second or
// less: the machine running the tests may be busy.
const patience = 30 * time.Second

// tail keeps the end of a log for a failure message: a few hundred bytes,
// where the cause usually is.
func tail(s string) string {
	const keep = 600
	if len(s) <= keep {
		return s
	}
	return "..." + s[len(s)-keep:]
}

// statsLine formats an exporter's counters.
func statsLine(st report.ExporterHealth) string {
	return fmt.Sprintf("published %d, dropped %d, errors %d, connected %v", st.Published, st.Dropped, st.Errors, *st.Connected)
}

func nodeName(t testing.TB) string {
	return strings.NewReplacer("/", "_", "#", "_", "+", "_").Replace(t.Name())
}

// harnessConfig is what a harness makes its exporter with: the settings
// and the table side, which a test may change in one place.
type harnessConfig struct {
	Config
	export.Env
}

// newHarness makes an exporter for b with a snapshot of 5 flows, an hour
// long interval (tests that want ticks set one) and fast reconnects.
func newHarness(t testing.TB, b *broker, mod func(*harnessConfig)) *harness {
	t.Helper()
	h := &harness{ended: make(chan conntrack.Ended, 1000), logs: &syncBuffer{}}
	h.snap.Store(testSnapshot(5))
	cfg := harnessConfig{Config: Config{
		URL: b.url(), Node: nodeName(t), QoS: 1,
		Interval: time.Hour,
	}, Env: export.Env{
		Host:   "testhost",
		Latest: h.latest,
		Ended:  h.ended,
		Logger: slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}}
	if b.opt.pki != nil {
		cfg.CA, cfg.Cert, cfg.Key = b.opt.pki.CAFile, b.opt.pki.ClientCert, b.opt.pki.ClientKey
	}
	if mod != nil {
		mod(&cfg)
	}
	e, err := New(cfg.Config, cfg.Env)
	if err != nil {
		t.Fatal(err)
	}
	e.minBackoff, e.maxBackoff = 50*time.Millisecond, 300*time.Millisecond
	e.connectTimeout, e.publishTimeout = 10*time.Second, 10*time.Second
	h.e, h.t = e, e.t
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("exporter log:\n%s", tail(h.logs.String()))
		}
	})
	return h
}

// latest stands for a table that makes a snapshot at every call: the
// stored one, stamped with the time.
func (h *harness) latest() *conntrack.Snapshot {
	s := *h.snap.Load()
	s.Time = time.Now()
	return &s
}

func (h *harness) run(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- h.e.Run(ctx) }()
	t.Cleanup(func() { h.stop(t) })
}

// stop ends Run and waits for it.
func (h *harness) stop(t testing.TB) {
	t.Helper()
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(patience):
		t.Fatalf("Run did not return within %v of cancel", patience)
	}
}

// poll sends a request to the node and returns the reply carrying id.
func (h *harness) poll(t testing.TB, s *subscriber, body, id string) *report.Document {
	t.Helper()
	s.publish(t, h.t.request, false, body)
	m := s.next(t, patience, func(m received) bool {
		return m.topic == h.t.snapshot && strings.Contains(string(m.payload), `"request_id":"`+id+`"`)
	})
	return decodeDoc(t, m)
}

func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// exporterGoroutines lists goroutines running the exporter's code.
func exporterGoroutines() []string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "mqttexport.(*Exporter)") || strings.Contains(g, "paho.mqtt.golang") {
			out = append(out, g)
		}
	}
	return out
}

// Not parallel: it checks that no goroutine is left behind, which needs
// the process to itself.
func TestStatusOnlineOfflineNoLeak(t *testing.T) {
	b := startBroker(t, brokerOptions{})
	h := newHarness(t, b, nil)
	s := subscribe(t, b, nil, h.t.status)
	h.run(t)
	m := s.next(t, patience, onTopic(h.t.status))
	if string(m.payload) != statusOnline {
		t.Fatalf("status = %q, want online", m.payload)
	}
	waitFor(t, patience, "connected", func() bool { return *h.e.Health().Connected })

	h.stop(t)
	s.next(t, patience, isPayload(h.t.status, statusOffline))
	if st := h.e.Health(); *st.Connected || st.Published < 2 {
		t.Errorf("after stop: %s; want disconnected and >= 2 published", statsLine(st))
	}
	// The status stays retained for those who come later.
	late := subscribe(t, b, nil, h.t.status)
	if m := late.next(t, patience, onTopic(h.t.status)); string(m.payload) != statusOffline || !m.retained {
		t.Errorf("retained status = %q (retained %v), want offline", m.payload, m.retained)
	}

	s.c.Disconnect(100)
	late.c.Disconnect(100)
	deadline := time.Now().Add(patience)
	for {
		left := exporterGoroutines()
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d goroutines left after Run returned:\n%s", len(left), tail(strings.Join(left, "\n\n")))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

const helperEnv = "FLOWTOP_MQTTEXPORT_HELPER_URL"

// TestHelperExporter is not a test: TestLastWillAfterKill runs the test
// binary with it as a daemon to kill.
func TestHelperExporter(t *testing.T) {
	url := os.Getenv(helperEnv)
	if url == "" {
		t.Skip("helper process of TestLastWillAfterKill")
	}
	e, err := New(Config{
		URL: url, Node: os.Getenv(helperEnv + "_NODE"), QoS: 1, Interval: time.Hour,
	}, export.Env{
		Latest: func() *conntrack.Snapshot { return testSnapshot(3) },
		Logger: slog.New(slog.NewTextHandler(os.Stderr, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	e.keepAlive = time.Minute // the will must come from the closed socket, not a ping timeout
	_ = e.Run(context.Background())
}

func TestLastWillAfterKill(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	status := "flowtop/" + nodeName(t) + "/status"
	s := subscribe(t, b, nil, status)

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperExporter$")
	cmd.Env = append(os.Environ(), helperEnv+"="+b.url(), helperEnv+"_NODE="+nodeName(t))
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("helper output:\n%s", tail(out.String()))
		}
	})
	s.next(t, patience, isPayload(status, statusOnline))
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no chance to say goodbye
		t.Fatal(err)
	}
	s.next(t, patience, isPayload(status, statusOffline))
}

func TestPeriodicSnapshotsAndState(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	h := newHarness(t, b, func(c *harnessConfig) { c.Interval = 200 * time.Millisecond; c.Limit = 3 })
	s := subscribe(t, b, nil, h.t.snapshot, h.t.state)
	h.run(t)

	var docs []*report.Document
	for len(docs) < 5 {
		docs = append(docs, decodeDoc(t, s.next(t, patience, onTopic(h.t.snapshot))))
	}
	for i, d := range docs {
		if d.RequestID != "" || d.Host != "testhost" || len(d.Flows) != 3 || d.Totals.Flows != 5 || d.Totals.Listed != 3 {
			t.Errorf("snapshot %d: request_id %q host %q flows %d totals %+v", i, d.RequestID, d.Host, len(d.Flows), d.Totals)
		}
		if d.Flows[0].ID != 1 {
			t.Errorf("snapshot %d: first flow %d, want the busiest (1)", i, d.Flows[0].ID)
		}
		if d.PublishIntervalS != 0.2 {
			t.Errorf("snapshot %d: publish_interval_s %g, want the --mqtt-interval, 0.2", i, d.PublishIntervalS)
		}
		ex, ok := d.Health.Exporters["mqtt"]
		if !ok || ex.Connected == nil || !*ex.Connected {
			t.Errorf("snapshot %d: health.exporters.mqtt = %+v", i, d.Health.Exporters)
		}
	}
	// The first comes at connect, then one per tick, each a newer
	// snapshot of the table. (How regular the ticks are is up to the
	// machine: not checked here.)
	for i := 1; i < len(docs); i++ {
		if !docs[i].Time.After(docs[i-1].Time) {
			t.Errorf("snapshot %d: time %v, not after the one before (%v)", i, docs[i].Time, docs[i-1].Time)
		}
	}
	m := s.next(t, patience, onTopic(h.t.state))
	var st state
	if err := json.Unmarshal(m.payload, &st); err != nil {
		t.Fatal(err)
	}
	if st.Flows != 5 || st.RxBytesPerS != 15000 || st.TxBytesPerS != 1500 {
		t.Errorf("state = %+v, want 5 flows, rx 15000 B/s, tx 1500 B/s", st)
	}
}

// TestSnapshotsOncePerTableSnapshot: with --mqtt-interval equal to the
// table's interval, every table snapshot is published once. The table
// here makes snapshot k at k intervals, a fifth of an interval before the
// exporter's tick for even k, a fifth after it for odd k (a table whose
// refresh sometimes takes longer): a tick that took the latest snapshot
// as it found it published snapshot k-1 twice and snapshot k never.
func TestSnapshotsOncePerTableSnapshot(t *testing.T) {
	t.Parallel()
	const every = 300 * time.Millisecond
	b := startBroker(t, brokerOptions{})
	var table atomic.Pointer[conntrack.Snapshot]
	base := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	snapshotAt := func(k int) *conntrack.Snapshot {
		s := testSnapshot(2)
		s.Time = base.Add(time.Duration(k) * time.Second)
		return s
	}
	table.Store(snapshotAt(0))
	h := newHarness(t, b, func(c *harnessConfig) { c.Interval = every; c.Latest = table.Load })
	s := subscribe(t, b, nil, h.t.snapshot)

	start := time.Now()
	h.run(t)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for k := 1; ; k++ {
			at := start.Add(time.Duration(k)*every - every/5)
			if k%2 == 1 {
				at = at.Add(2 * every / 5)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Until(at)):
				table.Store(snapshotAt(k))
			}
		}
	})
	t.Cleanup(func() { close(stop); wg.Wait() })

	const want = 10 // table snapshots 0..9
	seen := map[time.Time]int{}
	deadline := time.Now().Add(patience)
	for last := -1; last < want-1; {
		m := s.next(t, time.Until(deadline), onTopic(h.t.snapshot))
		d := decodeDoc(t, m)
		seen[d.Time]++
		last = max(last, int(d.Time.Sub(base)/time.Second))
	}
	var dup []string
	for tm, n := range seen {
		if n > 1 {
			dup = append(dup, fmt.Sprintf("%s x%d", tm.Format("15:04:05"), n))
		}
	}
	slices.Sort(dup)
	if len(dup) > 0 {
		t.Errorf("snapshots published more than once: %v", dup)
	}
	// On a busy machine a tick may come late and a snapshot be skipped
	// for the next; most must be there.
	if len(seen) < want/2 {
		t.Errorf("%d of the table's %d snapshots published", len(seen), want)
	}
}

type portNamer struct{}

func (portNamer) Names(f *conntrack.Flow) enrich.Names {
	if f.Orig.DstPort == 22 {
		return enrich.Names{Service: "ssh"}
	}
	return enrich.Names{Service: "https"}
}

func TestRequestReply(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	h := newHarness(t, b, func(c *harnessConfig) { c.Names = portNamer{} })
	s := subscribe(t, b, nil, h.t.snapshot)
	h.run(t)
	s.next(t, patience, onTopic(h.t.snapshot)) // the one at connect

	d := h.poll(t, s, `{"id": "abc", "limit": 2}`, "abc")
	if len(d.Flows) != 2 || d.Totals.Flows != 5 {
		t.Errorf("limit 2: %d flows listed of %d", len(d.Flows), d.Totals.Flows)
	}
	d = h.poll(t, s, `{"id": 42, "filter": "SSH"}`, "42")
	if len(d.Flows) != 1 || d.Flows[0].ID != 1 || d.Flows[0].Service != "ssh" || d.Totals.Flows != 1 {
		t.Errorf("filter SSH: %+v", d.Flows)
	}
	d = h.poll(t, s, `{"id": "addr", "filter": "203.0.113.3"}`, "addr")
	if len(d.Flows) != 1 || d.Flows[0].Dst != "203.0.113.3" {
		t.Errorf("filter by address: %+v", d.Flows)
	}
}

func TestBroadcastPoll(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	var hs []*harness
	for _, node := range []string{"router-a", "router-b"} {
		// Each router needs a client id of its own, or the broker keeps
		// only the newest connection.
		h := newHarness(t, b, func(c *harnessConfig) { c.Node, c.ClientID = node, "flowtop-"+node })
		hs = append(hs, h)
	}
	s := subscribe(t, b, nil, "flowtop/+/snapshot", "flowtop/+/status")
	for _, h := range hs {
		h.run(t)
		s.next(t, patience, isPayload(h.t.status, statusOnline))
	}
	s.publish(t, "flowtop/broadcast/request", false, `{"id":"fleet"}`)
	got := map[string]bool{}
	for len(got) < 2 {
		m := s.next(t, patience, func(m received) bool {
			return strings.Contains(string(m.payload), `"request_id":"fleet"`)
		})
		got[m.topic] = true
	}
	if !got["flowtop/router-a/snapshot"] || !got["flowtop/router-b/snapshot"] {
		t.Errorf("replies on %v", got)
	}
}

func TestHostileRequests(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	h := newHarness(t, b, nil)
	s := subscribe(t, b, nil, h.t.snapshot)
	// A retained poll is not live: it would fire at every reconnect.
	s.publish(t, h.t.request, true, `{"id":"retained"}`)
	h.run(t)
	s.next(t, patience, onTopic(h.t.snapshot))

	big := `{"id":"big","pad":"` + strings.Repeat("x", MaxRequest) + `"}`
	for _, body := range []string{big, `{"id":`, `{"limit":"ten","id":"bad"}`, `{"limit":-1,"id":"neg"}`} {
		s.publish(t, h.t.request, false, body)
	}
	waitFor(t, patience, "5 rejected requests", func() bool { return h.e.rejected.Load() == 5 })
	if got := s.collect(1200*time.Millisecond, onTopic(h.t.snapshot)); len(got) != 0 {
		t.Errorf("%d replies to rejected requests", len(got))
	}
	// A plain poll (any body) still works, and so does a good request.
	s.publish(t, h.t.request, false, "RETV")
	if d := decodeDoc(t, s.next(t, patience, onTopic(h.t.snapshot))); d.RequestID != "" || len(d.Flows) != 5 {
		t.Errorf("plain poll: request_id %q, %d flows", d.RequestID, len(d.Flows))
	}
	h.poll(t, s, `{"id":"ok"}`, "ok")
	if st := h.e.Health(); st.Dropped < 5 || !*st.Connected {
		t.Errorf("%s: want >= 5 dropped, connected", statsLine(st))
	}
}

func TestRequestFlood(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	h := newHarness(t, b, func(c *harnessConfig) { c.Interval = 250 * time.Millisecond })
	s := subscribe(t, b, nil, h.t.snapshot)
	h.run(t)
	s.next(t, patience, onTopic(h.t.snapshot))

	const flood = 3 * time.Second
	stop := make(chan struct{})
	var sent atomic.Int64
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			s.c.Publish(h.t.request, 0, false, fmt.Sprintf(`{"id":"f%d"}`, i))
			sent.Add(1)
			time.Sleep(3 * time.Millisecond)
		}
	}()
	got := s.collect(flood, onTopic(h.t.snapshot))
	close(stop)

	var replies int
	var periodic []time.Time
	for _, m := range got {
		if decodeDoc(t, m).RequestID != "" {
			replies++
		} else {
			periodic = append(periodic, m.at)
		}
	}
	t.Logf("%d requests sent, %d replies, %d periodic snapshots, %d coalesced", sent.Load(), replies, len(periodic), h.e.coalesced.Load())
	// The bounds below allow for a busy machine: fewer replies and
	// snapshots than the 3 and 12 of an idle one, never more replies.
	if replies < 1 || replies > 4 {
		t.Errorf("%d replies in %v, want about one per second", replies, flood)
	}
	if len(periodic) < 3 {
		t.Errorf("%d periodic snapshots in %v at 250ms, want about 12", len(periodic), flood)
	}
	for i := 1; i < len(periodic); i++ {
		if gap := periodic[i].Sub(periodic[i-1]); gap > 2*time.Second {
			t.Errorf("periodic snapshots %v apart during the flood, want 250ms", gap)
		}
	}
	if c := h.e.coalesced.Load(); c*4 < uint64(sent.Load()) {
		t.Errorf("coalesced = %d of %d requests, want most of the flood", c, sent.Load())
	}
}

func TestPasswordLogin(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{users: map[string]string{"router": "s3cret", "reader": "r"}})
	dir := t.TempDir()
	good, bad := filepath.Join(dir, "good"), filepath.Join(dir, "bad")
	os.WriteFile(good, []byte("s3cret\n"), 0o600)
	os.WriteFile(bad, []byte("wrong\n"), 0o600)

	s := subscribe(t, b, func(o *mqtt.ClientOptions) { o.SetUsername("reader").SetPassword("r") }, "flowtop/#")
	ok := newHarness(t, b, func(c *harnessConfig) { c.User, c.PasswordFile = "router", good })
	ok.run(t)
	s.next(t, patience, isPayload(ok.t.status, statusOnline))

	wrong := newHarness(t, b, func(c *harnessConfig) { c.Node += "-wrong"; c.User, c.PasswordFile = "router", bad })
	wrong.run(t)
	waitFor(t, patience, "3 failed logins", func() bool { return wrong.e.Health().Errors >= 3 })
	if *wrong.e.Health().Connected {
		t.Error("connected with a wrong password")
	}
	logs := wrong.logs.String()
	if !strings.Contains(logs, "not Authorized") || !strings.Contains(logs, "check --mqtt-user") {
		t.Errorf("log does not explain the refused login:\n%s", tail(logs))
	}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{pki: mqtttest.NewPKI(t)})
	h := newHarness(t, b, nil)
	s := subscribe(t, b, nil, h.t.status, h.t.snapshot)
	h.run(t)
	s.next(t, patience, isPayload(h.t.status, statusOnline))
	h.poll(t, s, `{"id":"tls"}`, "tls")

	// Without a client certificate the broker refuses us; we keep trying.
	noCert := newHarness(t, b, func(c *harnessConfig) { c.Node += "-nocert"; c.Cert, c.Key = "", "" })
	noCert.run(t)
	waitFor(t, patience, "failed TLS handshakes", func() bool { return noCert.e.Health().Errors >= 2 })
}

func TestBrokerRestart(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	h := newHarness(t, b, func(c *harnessConfig) { c.Interval = 100 * time.Millisecond })
	h.e.maxEnded, h.e.out.maxEnded = 50, 50
	s := subscribe(t, b, nil, h.t.snapshot, h.t.status)
	h.run(t)
	s.next(t, patience, onTopic(h.t.snapshot))

	// Flows keep ending while the broker is away.
	feed := make(chan struct{})
	var fed sync.WaitGroup
	fed.Go(func() {
		for i := 0; ; i++ {
			select {
			case <-feed:
				return
			case <-time.After(20 * time.Millisecond):
			}
			f := testSnapshot(1).Flows[0]
			f.ID = uint32(1000 + i)
			select {
			case h.ended <- conntrack.Ended{Flow: *f, Stop: time.Now()}:
			default:
			}
		}
	})
	t.Cleanup(func() { close(feed); fed.Wait() })

	b.stop()
	waitFor(t, patience, "disconnected", func() bool { return !*h.e.Health().Connected })
	waitFor(t, patience, "records beyond the bound dropped", func() bool { return h.e.endedFull.Load() > 0 })
	jobs, ended := h.e.out.size()
	st := h.e.Health()
	t.Logf("during the outage: %d jobs, %d ended records queued; %s", jobs, ended, statsLine(st))
	if jobs > 10 || ended > 50 {
		t.Errorf("outbox holds %d jobs, %d ended records: not bounded", jobs, ended)
	}
	if st.Dropped == 0 || st.Errors == 0 {
		t.Errorf("%s: want drops (replaced snapshots, old records) and errors", statsLine(st))
	}

	b.start()
	s.next(t, patience, isPayload(h.t.status, statusOnline))
	s.next(t, patience, onTopic(h.t.snapshot))
	s.next(t, patience, onTopic(h.t.snapshot))
}

func TestGzip(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	h := newHarness(t, b, func(c *harnessConfig) { c.Gzip = true })
	if h.t.snapshot != "flowtop/"+nodeName(t)+"/snapshot/gz" {
		t.Fatalf("gzip snapshot topic = %s", h.t.snapshot)
	}
	s := subscribe(t, b, nil, h.t.snapshot, h.t.ended)
	h.run(t)
	m := s.next(t, patience, onTopic(h.t.snapshot))
	raw, err := gunzip(m.payload)
	if err != nil {
		t.Fatal(err)
	}
	d := decodeDoc(t, received{topic: m.topic, payload: raw})
	if len(d.Flows) != 5 || d.Version != report.Version {
		t.Errorf("gunzipped document: version %d, %d flows", d.Version, len(d.Flows))
	}
	h.ended <- conntrack.Ended{Flow: *testSnapshot(1).Flows[0], Stop: time.Now()}
	m = s.next(t, patience, onTopic(h.t.ended))
	raw, err = gunzip(m.payload)
	if err != nil {
		t.Fatal(err)
	}
	var recs []report.Ended
	if err := json.Unmarshal(raw, &recs); err != nil || len(recs) != 1 {
		t.Errorf("gunzipped ended: %v, %d records", err, len(recs))
	}
}

func TestSplitOversizedSnapshot(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	h := newHarness(t, b, func(c *harnessConfig) { c.MaxPayload = 4096 })
	h.snap.Store(testSnapshot(60))
	s := subscribe(t, b, nil, h.t.snapshot)
	h.run(t)

	parts := map[int]*report.Document{}
	var n int
	for n == 0 || len(parts) < n {
		m := s.next(t, patience, onTopic(h.t.snapshot))
		if len(m.payload) > 4096 {
			t.Errorf("part of %d bytes, limit 4096", len(m.payload))
		}
		d := decodeDoc(t, m)
		if d.Parts < 2 || d.Part < 1 || d.Part > d.Parts {
			t.Fatalf("part %d of %d", d.Part, d.Parts)
		}
		n = d.Parts
		parts[d.Part] = d
	}
	var ids []uint32
	for i := 1; i <= n; i++ {
		d := parts[i]
		if d.Totals.Flows != 60 || d.Totals.Listed != 60 || d.Health.Exporters["mqtt"].Connected == nil {
			t.Errorf("part %d: totals %+v, health %+v", i, d.Totals, d.Health)
		}
		for _, f := range d.Flows {
			ids = append(ids, f.ID)
		}
	}
	slices.Sort(ids)
	want := make([]uint32, 60)
	for i := range want {
		want[i] = uint32(i + 1)
	}
	if !slices.Equal(ids, want) {
		t.Errorf("reassembled %d flows from %d parts: %v", len(ids), n, ids)
	}
}

func TestEndedBatching(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	h := newHarness(t, b, nil)
	s := subscribe(t, b, nil, h.t.ended, h.t.status)
	h.run(t)
	s.next(t, patience, isPayload(h.t.status, statusOnline))

	send := func(from, n int) {
		for i := range n {
			f := testSnapshot(1).Flows[0]
			f.ID = uint32(from + i)
			f.OrigCount.Bytes = uint64(from + i)
			h.ended <- conntrack.Ended{Flow: *f, Stop: f.Start.Time().Add(2 * time.Second)}
		}
	}
	start := time.Now()
	send(1, 25)
	time.Sleep(300 * time.Millisecond)
	send(26, 25)
	time.Sleep(1200 * time.Millisecond)
	send(51, 10)

	var ids []uint32
	var messages int
	for len(ids) < 60 {
		m := s.next(t, patience, onTopic(h.t.ended))
		messages++
		var recs []report.Ended
		if err := json.Unmarshal(m.payload, &recs); err != nil {
			t.Fatal(err)
		}
		for _, r := range recs {
			ids = append(ids, r.ID)
			if *r.Orig.Bytes != uint64(r.ID) || *r.DurationS != 2 || r.Dport != 22 {
				t.Errorf("record %d: orig bytes %d, duration %v, dport %d", r.ID, *r.Orig.Bytes, *r.DurationS, r.Dport)
			}
		}
	}
	// At most one message a second (two or three here on an idle
	// machine).
	if most := int(time.Since(start)/h.e.endedEvery) + 1; messages > most {
		t.Errorf("%d messages for 60 records in %v, want at most one per %v", messages, time.Since(start), h.e.endedEvery)
	}
	if len(ids) != 60 {
		t.Errorf("%d records, want 60", len(ids))
	}
	for i, id := range ids {
		if id != uint32(i+1) {
			t.Fatalf("records out of order or missing: %v", ids)
		}
	}
}

// TestDocumentsHealthFromEnv: the Env's health hook completes the health
// of every document the exporter publishes (a periodic snapshot, a reply,
// a live document), as flowtop's own documents carry it: the lookups'
// work and every exporter's counters, its own with the ended_dropped of
// its subscription. A hook without this exporter's entry gets it added.
func TestDocumentsHealthFromEnv(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	ended := uint64(5)
	full := func(h *report.Health) {
		h.RDNS = &report.RDNSHealth{Lookups: 7}
		h.Procs = &report.ProcsHealth{Resolved: 3}
		h.Exporters = map[string]report.ExporterHealth{
			"file": {Published: 2},
			"mqtt": {Published: 99, EndedDropped: &ended},
		}
	}
	h := newHarness(t, b, func(c *harnessConfig) { c.Health = full })
	s := subscribe(t, b, nil, h.t.snapshot, h.t.live)
	h.run(t)

	check := func(what string, d *report.Document) {
		t.Helper()
		got := d.Health
		if got.RDNS == nil || got.RDNS.Lookups != 7 || got.Procs == nil || got.Procs.Resolved != 3 {
			t.Errorf("%s: health.rdns %+v, procs %+v; want the hook's", what, got.RDNS, got.Procs)
		}
		mq := got.Exporters["mqtt"]
		if got.Exporters["file"].Published != 2 || mq.EndedDropped == nil || *mq.EndedDropped != 5 || mq.Published != 99 {
			t.Errorf("%s: health.exporters %+v; want the hook's file and mqtt entries", what, got.Exporters)
		}
		if got.Events != 0 || len(d.Flows) == 0 {
			t.Errorf("%s: events %d, %d flows; want the snapshot's", what, got.Events, len(d.Flows))
		}
	}
	check("snapshot", decodeDoc(t, s.next(t, patience, onTopic(h.t.snapshot))))
	check("reply", h.poll(t, s, `{"id": "hk"}`, "hk"))
	s.publish(t, h.t.request, false, watchBody("hk", 30, 1))
	check("live document", decodeDoc(t, s.next(t, patience, onTopic(h.t.live))))

	// A hook without this exporter's entry: its own counters are added.
	b2 := startBroker(t, brokerOptions{})
	h2 := newHarness(t, b2, func(c *harnessConfig) {
		c.Health = func(h *report.Health) { h.Exporters = map[string]report.ExporterHealth{"file": {Published: 2}} }
	})
	s2 := subscribe(t, b2, nil, h2.t.snapshot)
	h2.run(t)
	d := decodeDoc(t, s2.next(t, patience, onTopic(h2.t.snapshot)))
	if mq, ok := d.Health.Exporters["mqtt"]; !ok || mq.Connected == nil || !*mq.Connected || d.Health.Exporters["file"].Published != 2 {
		t.Errorf("health.exporters %+v; want the hook's file entry and this exporter's, connected", d.Health.Exporters)
	}
}
