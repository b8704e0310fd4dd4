package ui

import (
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/rivo/tview"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
	"github.com/flowtop/flowtop/geo"
	"github.com/flowtop/flowtop/procs"
)

var update = flag.Bool("update", false, "rewrite the golden screens in testdata/")

// t0 is the fixed clock of the tests.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

// fakeSource serves snapshots of a fixed set of flows, filtered by the
// filter last set, as the real table does.
type fakeSource struct {
	mu      sync.Mutex
	all     []conntrack.Flow
	filter  conntrack.Filter
	snap    *conntrack.Snapshot
	filters []conntrack.Filter
	deleted []uint32
	delErr  error
	watched []uint32 // IDs of the flows last passed to Watch
}

// Watch records what the screen says it shows.
func (s *fakeSource) Watch(flows []*conntrack.Flow) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.watched = s.watched[:0]
	for _, f := range flows {
		s.watched = append(s.watched, f.ID)
	}
}

func (s *fakeSource) watchedIDs() []uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]uint32(nil), s.watched...)
}

func newFakeSource(flows []conntrack.Flow, f conntrack.Filter) *fakeSource {
	s := &fakeSource{all: flows}
	s.SetFilter(f)
	s.filters = nil
	return s
}

func (s *fakeSource) Latest() *conntrack.Snapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.snap
}

func (s *fakeSource) SetFilter(f conntrack.Filter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.filter = f
	s.filters = append(s.filters, f)
	s.publish()
}

func (s *fakeSource) publish() {
	snap := &conntrack.Snapshot{Time: t0, Interval: time.Second, TableFlows: len(s.all), Filter: s.filter,
		Health: conntrack.Health{Events: 1234, Resyncs: 1, Refresh: 12 * time.Millisecond,
			RefreshEvery: time.Second, KernelFlows: len(s.all), Accounting: true, Timestamps: true}}
	for i := range s.all {
		if s.filter.Match(&s.all[i], t0) {
			snap.Flows = append(snap.Flows, &s.all[i])
		}
	}
	s.snap = snap
}

func (s *fakeSource) Delete(f *conntrack.Flow) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.delErr != nil {
		return s.delErr
	}
	s.deleted = append(s.deleted, f.ID)
	for i := range s.all {
		if s.all[i].ID == f.ID {
			s.all = append(s.all[:i:i], s.all[i+1:]...)
			break
		}
	}
	s.publish()
	return nil
}

// setFlows replaces the flows (a later tick sees them).
func (s *fakeSource) setFlows(flows []conntrack.Flow) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.all = flows
	s.publish()
}

// fakeNamer knows the names of flows by ID.
type fakeNamer struct {
	mu    sync.Mutex
	names map[uint32]enrich.Names
}

func (n *fakeNamer) Names(f *conntrack.Flow) enrich.Names {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.names[f.ID]
}

func (n *fakeNamer) set(id uint32, nm enrich.Names) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.names[id] = nm
}

var errDenied = errors.New("operation not permitted")

func ap(s string) netip.Addr { return netip.MustParseAddr(s) }

func tuple(src string, sport uint16, dst string, dport uint16) conntrack.Tuple {
	return conntrack.Tuple{Src: conntrack.AddrFrom(ap(src)), Dst: conntrack.AddrFrom(ap(dst)), SrcPort: sport, DstPort: dport}
}

// testFlows are the flows of the screen tests: IPv4 and IPv6, SNAT and
// DNAT, ICMP, UDP, a flow without counters and one without names.
func testFlows() []conntrack.Flow {
	est := uint8(3)
	flows := []conntrack.Flow{
		{ // a LAN client to the web through the router's SNAT
			ID: 101, Family: conntrack.IPv4, Proto: conntrack.ProtoTCP, State: est,
			Orig:   tuple("192.168.1.10", 51000, "93.184.216.34", 443),
			Reply:  tuple("93.184.216.34", 443, "203.0.113.5", 61000),
			Status: conntrack.StatusAssured | conntrack.StatusSeenReply | conntrack.StatusConfirmed | conntrack.StatusSrcNAT,
			Mark:   0x10, Timeout: 431999, Start: conntrack.StampOf(t0.Add(-3*time.Minute - 7*time.Second)), HasCounters: true,
			OrigCount:  conntrack.Counter{Packets: 1500, Bytes: 1_234_567},
			ReplyCount: conntrack.Counter{Packets: 11000, Bytes: 14_100_000},
			OrigRate:   conntrack.Rate{Bytes: 20_600, Packets: 40, Avg2: 21_000, Avg10: 19_000, Avg40: 15_000},
			ReplyRate:  conntrack.Rate{Bytes: 485_000, Packets: 350, Avg2: 490_000, Avg10: 450_000, Avg40: 300_000},
		},
		{ // IPv6 ssh
			ID: 102, Family: conntrack.IPv6, Proto: conntrack.ProtoTCP, State: est,
			Orig:   tuple("2001:db8::10", 40000, "2001:db8:1::22", 22),
			Reply:  tuple("2001:db8:1::22", 22, "2001:db8::10", 40000),
			Status: conntrack.StatusAssured | conntrack.StatusSeenReply | conntrack.StatusConfirmed,
			Start:  conntrack.StampOf(t0.Add(-2*time.Hour - 5*time.Minute)), HasCounters: true, Timeout: 7200,
			OrigCount:  conntrack.Counter{Packets: 900, Bytes: 88_000},
			ReplyCount: conntrack.Counter{Packets: 1200, Bytes: 1_500_000},
			OrigRate:   conntrack.Rate{Bytes: 120, Packets: 2},
			ReplyRate:  conntrack.Rate{Bytes: 3_400, Packets: 5},
		},
		{ // DNS over UDP, idle
			ID: 103, Family: conntrack.IPv4, Proto: conntrack.ProtoUDP,
			Orig:   tuple("192.168.1.20", 5353, "8.8.8.8", 53),
			Reply:  tuple("8.8.8.8", 53, "203.0.113.5", 5353),
			Status: conntrack.StatusConfirmed | conntrack.StatusSrcNAT, Timeout: 25,
			Start: conntrack.StampOf(t0.Add(-8 * time.Second)), HasCounters: true,
			OrigCount:  conntrack.Counter{Packets: 1, Bytes: 60},
			ReplyCount: conntrack.Counter{Packets: 1, Bytes: 120},
		},
		{ // inbound port forward: DNAT to a LAN server
			ID: 104, Family: conntrack.IPv4, Proto: conntrack.ProtoTCP, State: est,
			Orig:   tuple("198.51.100.7", 60000, "203.0.113.5", 8080),
			Reply:  tuple("192.168.1.30", 80, "198.51.100.7", 60000),
			Status: conntrack.StatusAssured | conntrack.StatusSeenReply | conntrack.StatusConfirmed | conntrack.StatusDstNAT,
			Start:  conntrack.StampOf(t0.Add(-26 * time.Hour)), HasCounters: true, Timeout: 431000,
			OrigCount:  conntrack.Counter{Packets: 5000, Bytes: 2_000_000_000},
			ReplyCount: conntrack.Counter{Packets: 4000, Bytes: 300_000},
			OrigRate:   conntrack.Rate{Bytes: 1_250_000, Packets: 900},
			ReplyRate:  conntrack.Rate{Bytes: 9_000, Packets: 100},
		},
		{ // ping
			ID: 105, Family: conntrack.IPv4, Proto: conntrack.ProtoICMP,
			Orig:   conntrack.Tuple{Src: conntrack.AddrFrom(ap("192.168.1.10")), Dst: conntrack.AddrFrom(ap("1.1.1.1"))},
			Reply:  conntrack.Tuple{Src: conntrack.AddrFrom(ap("1.1.1.1")), Dst: conntrack.AddrFrom(ap("203.0.113.5"))},
			ICMP:   conntrack.ICMP{Type: 8, ID: 77},
			Status: conntrack.StatusConfirmed | conntrack.StatusSrcNAT, Timeout: 29,
			Start: conntrack.StampOf(t0.Add(-30 * time.Second)), HasCounters: true,
			OrigCount:  conntrack.Counter{Packets: 30, Bytes: 2_520},
			ReplyCount: conntrack.Counter{Packets: 30, Bytes: 2_520},
			OrigRate:   conntrack.Rate{Bytes: 84, Packets: 1},
			ReplyRate:  conntrack.Rate{Bytes: 84, Packets: 1},
		},
		{ // older than flowtop: no counters, no start
			ID: 106, Family: conntrack.IPv4, Proto: conntrack.ProtoTCP, State: est,
			Orig:   tuple("10.0.0.2", 41234, "10.0.0.3", 5432),
			Reply:  tuple("10.0.0.3", 5432, "10.0.0.2", 41234),
			Status: conntrack.StatusAssured | conntrack.StatusConfirmed, Timeout: 400000,
		},
		{ // IPv6 link-local to the web, with mark, zone and labels
			ID: 107, Family: conntrack.IPv6, Proto: conntrack.ProtoTCP, State: 1,
			Orig:   tuple("fe80::1", 33333, "2001:db8:2::1", 443),
			Reply:  tuple("2001:db8:2::1", 443, "fe80::1", 33333),
			Status: conntrack.StatusConfirmed, Mark: 7, Zone: 2,
			Start: conntrack.StampOf(t0.Add(-2 * time.Second)), Timeout: 120, HasCounters: true,
			OrigCount: conntrack.Counter{Packets: 1, Bytes: 80},
			OrigRate:  conntrack.Rate{Bytes: 40},
		},
	}
	flows[len(flows)-1].Labels = conntrack.RefLabels(conntrack.Labels{0: 1, 15: 0x80})
	return flows
}

func testNamer() *fakeNamer {
	de := geo.Info{Country: "DE", CountryName: "Germany", City: "Berlin", ASN: 3320, ASOrg: "Deutsche Telekom AG"}
	us := geo.Info{Country: "US", CountryName: "United States", ASN: 15133, ASOrg: "Edgecast"}
	return &fakeNamer{names: map[uint32]enrich.Names{
		101: {Service: "https", SrcName: "laptop.lan", DstName: "example.com", DstGeo: us,
			Process: procs.Info{PID: 4242, Name: "firefox", User: "alice", Cmdline: "/usr/lib/firefox/firefox -P default"}},
		102: {Service: "ssh", DstName: "[bastion].example.org",
			Process: procs.Info{PID: 777, Name: "ssh", User: "bob", Cmdline: "ssh -A bastion"}},
		103: {Service: "domain", SrcService: "mdns", DstName: "dns.google", DstGeo: us},
		104: {Service: "http-alt", SrcName: "client.example.net", SrcGeo: de},
		105: {DstName: "one.one.one.one", DstGeo: geo.Info{Country: "AU", CountryName: "Australia"}},
		107: {Service: "https",
			Process: procs.Info{PID: 4242, Name: "firefox", User: "alice", Cmdline: "/usr/lib/firefox/firefox -P default"}},
	}}
}

// allProtos shows every protocol of the test flows.
func allProtos() conntrack.Filter {
	f := conntrack.DefaultFilter()
	f.Protos.Add(conntrack.ProtoUDP)
	f.Protos.Add(conntrack.ProtoUDPLite)
	f.Protos.Add(conntrack.ProtoICMP)
	f.Protos.Add(conntrack.ProtoICMPv6)
	return f
}

// harness runs an App on a simulation screen.
type harness struct {
	t      testing.TB
	a      *App
	screen tcell.SimulationScreen
	src    *fakeSource
	names  *fakeNamer
	events *int // keys and clicks the app has seen (countEvents)
	done   chan error
}

// countEvents counts the keys and the mouse clicks and wheel turns a
// sees, so that a test knows when an injected event has been handled. It
// must be called before Run; the count belongs to the UI goroutine.
func countEvents(a *App) *int {
	n := new(int)
	keys := a.app.GetInputCapture()
	a.app.SetInputCapture(func(ev *tcell.EventKey) *tcell.EventKey {
		*n++
		return keys(ev)
	})
	a.app.SetMouseCapture(func(ev *tcell.EventMouse, action tview.MouseAction) (*tcell.EventMouse, tview.MouseAction) {
		switch action {
		case tview.MouseLeftUp, tview.MouseScrollUp, tview.MouseScrollDown:
			*n++
		}
		return ev, action
	})
	return n
}

type harnessOpt func(*Config)

func newHarness(t testing.TB, w, h int, opts ...harnessOpt) *harness {
	t.Helper()
	src := newFakeSource(testFlows(), allProtos())
	names := testNamer()
	cfg := Config{Source: src, Names: names, Version: "0.1.0", Interval: time.Hour,
		Warnings: func() []string { return []string{"no GeoIP database: countries are unknown"} },
		Status:   func() string { return "mqtt: 3 published, 0 dropped" }}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.Source != Source(src) {
		src = nil
	}
	cfg.now = func() time.Time { return t0.Add(time.Second) }
	cfg.loc = time.UTC
	screen := tcell.NewSimulationScreen("UTF-8")
	a := New(cfg, screen)
	screen.SetSize(w, h)
	hs := &harness{t: t, a: a, screen: screen, src: src, names: names, events: countEvents(a), done: make(chan error, 1)}
	go func() { hs.done <- a.Run() }()
	t.Cleanup(func() {
		a.Stop()
		select {
		case <-hs.done:
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after Stop")
		}
	})
	hs.settle()
	return hs
}

// ui runs f on the UI goroutine.
func (h *harness) ui(f func()) {
	done := make(chan struct{})
	go func() {
		h.a.app.QueueUpdate(f)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		h.t.Fatal("UI loop does not answer")
	}
}

// settle waits until the view on screen was built from the newest state
// and the screen is drawn.
func (h *harness) settle() {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var ok bool
		h.ui(func() { ok = h.a.view.p.gen == h.a.p.gen && (h.a.view.snap != nil || h.a.view.fd != nil) })
		if ok {
			break
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("screen did not settle:\n%s", h.text())
		}
		time.Sleep(2 * time.Millisecond)
	}
	h.ui(func() { h.a.app.ForceDraw() })
}

// text returns the screen as lines of text, trailing blanks trimmed.
func (h *harness) text() string {
	var out string
	h.ui(func() {
		cells, w, ht := h.screen.GetContents()
		var b strings.Builder
		for y := range ht {
			var line strings.Builder
			for x := range w {
				c := cells[y*w+x]
				if len(c.Runes) == 0 || c.Runes[0] == 0 {
					line.WriteByte(' ')
					continue
				}
				line.WriteString(string(c.Runes))
			}
			b.WriteString(strings.TrimRight(line.String(), " "))
			b.WriteByte('\n')
		}
		out = b.String()
	})
	return out
}

// inject runs inject, which makes n key presses or mouse clicks, waits
// until the app has seen them, then until the screen settles.
func (h *harness) inject(n int, inject func()) {
	h.t.Helper()
	var before int
	h.ui(func() { before = *h.events })
	inject()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var seen int
		h.ui(func() { seen = *h.events })
		if seen >= before+n {
			break
		}
		if time.Now().After(deadline) {
			h.t.Fatal("injected events were not seen")
		}
		time.Sleep(time.Millisecond)
	}
	h.settle()
}

func (h *harness) key(k tcell.Key) {
	h.t.Helper()
	h.inject(1, func() { h.screen.InjectKey(k, 0, tcell.ModNone) })
}

func (h *harness) runes(s string) {
	h.t.Helper()
	for _, r := range s {
		h.inject(1, func() { h.screen.InjectKey(tcell.KeyRune, r, tcell.ModNone) })
	}
}

// click presses and releases the left button at x, y.
func (h *harness) click(x, y int) {
	h.t.Helper()
	h.inject(1, func() {
		h.screen.InjectMouse(x, y, tcell.Button1, tcell.ModNone)
		h.screen.InjectMouse(x, y, tcell.ButtonNone, tcell.ModNone)
	})
}

// wheel turns the mouse wheel at x, y: down when n > 0, up when n < 0.
func (h *harness) wheel(x, y, n int) {
	h.t.Helper()
	b := tcell.WheelDown
	if n < 0 {
		b, n = tcell.WheelUp, -n
	}
	h.inject(n, func() {
		for range n {
			h.screen.InjectMouse(x, y, b, tcell.ModNone)
		}
	})
}

// waitFor waits until the screen satisfies cond.
func (h *harness) waitFor(what string, cond func(screen string) bool) string {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := h.text()
		if cond(s) {
			return s
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("screen never showed %s:\n%s", what, s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (h *harness) has(want ...string) string {
	h.t.Helper()
	return h.waitFor(strings.Join(want, ", "), func(s string) bool {
		for _, w := range want {
			if !strings.Contains(s, w) {
				return false
			}
		}
		return true
	})
}

func (h *harness) hasNot(unwanted ...string) string {
	h.t.Helper()
	return h.waitFor("no "+strings.Join(unwanted, ", "), func(s string) bool {
		for _, w := range unwanted {
			if strings.Contains(s, w) {
				return false
			}
		}
		return true
	})
}

// golden compares the screen with testdata/name.golden (-update rewrites
// it).
func (h *harness) golden(name string) {
	h.t.Helper()
	got := h.text()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			h.t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		h.t.Fatalf("%v (run go test ./ui -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		h.t.Errorf("screen %s differs from %s (-want +got):\n%s", name, path, diff)
	}
}

// line returns the screen line containing s, "" when none does.
func line(screen, s string) string {
	for _, l := range strings.Split(screen, "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return ""
}

// rowOrder returns the order in which the markers appear on screen.
func rowOrder(screen string, markers ...string) []string {
	type pos struct {
		m string
		i int
	}
	var ps []pos
	for _, m := range markers {
		if i := strings.Index(screen, m); i >= 0 {
			ps = append(ps, pos{m, i})
		}
	}
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && ps[j].i < ps[j-1].i; j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.m
	}
	return out
}

func netipFrom4(b [4]byte) netip.Addr { return netip.AddrFrom4(b) }
