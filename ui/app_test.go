package ui

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/rivo/tview"

	"github.com/flowtop/flowtop/conntrack"
)

// selectedLine is the screen line drawn in the selection style.
func (h *harness) selectedLine() string {
	var out string
	h.ui(func() {
		cells, w, ht := h.screen.GetContents()
		for y := range ht {
			_, _, attr := cells[y*w].Style.Decompose()
			if attr&tcell.AttrReverse == 0 {
				continue
			}
			var b strings.Builder
			for x := range w {
				if r := cells[y*w+x].Runes; len(r) > 0 {
					b.WriteString(string(r))
				} else {
					b.WriteByte(' ')
				}
			}
			if !strings.Contains(b.String(), "TAB switch") { // the tab bar
				out = b.String()
				return
			}
		}
	})
	return out
}

func (h *harness) wantSelected(t *testing.T, want string) {
	t.Helper()
	if got := h.selectedLine(); !strings.Contains(got, want) {
		t.Errorf("selected line = %q, want it to contain %q\n%s", got, want, h.text())
	}
}

func TestQuit(t *testing.T) {
	for _, k := range []struct {
		name string
		key  tcell.Key
		r    rune
	}{{"q", tcell.KeyRune, 'q'}, {"ctrl-c", tcell.KeyCtrlC, 0}} {
		t.Run(k.name, func(t *testing.T) {
			h := newHarness(t, 80, 24)
			h.screen.InjectKey(k.key, k.r, tcell.ModNone)
			select {
			case err := <-h.done:
				if err != nil {
					t.Fatal(err)
				}
				h.done <- nil // for the cleanup
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not return")
			}
		})
	}
}

func TestRunStopsWhenStopped(t *testing.T) {
	h := newHarness(t, 80, 24)
	h.a.Stop()
	h.a.Stop() // twice is fine
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatal(err)
		}
		h.done <- nil
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}

func TestMoveKeys(t *testing.T) {
	h := newHarness(t, 160, 40)
	h.wantSelected(t, "203.0.113.5") // the fastest flow first
	for _, k := range []struct {
		press func()
		want  string
	}{
		{func() { h.key(tcell.KeyDown) }, "example.com"},
		{func() { h.runes("j") }, "[bastion].example.org"},
		{func() { h.runes("d") }, "one.one.one.one"},
		{func() { h.key(tcell.KeyUp) }, "[bastion].example.org"},
		{func() { h.runes("k") }, "example.com"},
		{func() { h.runes("u") }, "203.0.113.5"},
		{func() { h.runes("u") }, "203.0.113.5"}, // stays on the first row
		{func() { h.key(tcell.KeyEnd) }, "10.0.0.3"},
		{func() { h.key(tcell.KeyHome) }, "203.0.113.5"},
		{func() { h.runes("G") }, "10.0.0.3"},
		{func() { h.runes("g") }, "203.0.113.5"},
	} {
		k.press()
		h.wantSelected(t, k.want)
	}
}

// manyFlows makes n TCP flows with distinct rates, fastest first by ID.
func manyFlows(n int) []conntrack.Flow {
	fs := make([]conntrack.Flow, n)
	for i := range fs {
		a := ap("10.1.0.0").As4()
		a[2], a[3] = byte((i+1)>>8), byte(i+1)
		fs[i] = conntrack.Flow{
			ID: uint32(i + 1), Family: conntrack.IPv4, Proto: conntrack.ProtoTCP, State: 3,
			Orig:        conntrack.Tuple{Src: conntrack.AddrFrom(ap("192.168.0.2")), Dst: conntrack.AddrFrom(netipFrom4(a)), SrcPort: uint16(10000 + i), DstPort: 443},
			Reply:       conntrack.Tuple{Src: conntrack.AddrFrom(netipFrom4(a)), Dst: conntrack.AddrFrom(ap("192.168.0.2")), SrcPort: 443, DstPort: uint16(10000 + i)},
			Start:       conntrack.StampOf(t0.Add(-time.Minute)),
			HasCounters: true,
			OrigCount:   conntrack.Counter{Bytes: uint64(1000 * (n - i)), Packets: 10},
			ReplyCount:  conntrack.Counter{Bytes: uint64(2000 * (n - i)), Packets: 10},
			OrigRate:    conntrack.Rate{Bytes: float32(n - i)},
			ReplyRate:   conntrack.Rate{Bytes: float32(n - i)},
		}
	}
	return fs
}

func TestPageKeys(t *testing.T) {
	h := newHarness(t, 80, 24)
	h.src.setFlows(manyFlows(100))
	h.runes("bb") // any rebuild picks the new flows up
	h.has("1/100")
	h.key(tcell.KeyPgDn)
	s := h.has("/100")
	page := line(s, "/100")
	if strings.HasSuffix(page, " 1/100") {
		t.Fatalf("PgDn did not move: %q", page)
	}
	h.key(tcell.KeyPgDn)
	h.key(tcell.KeyPgUp)
	if got := line(h.text(), "/100"); got != page {
		t.Errorf("PgDn PgDn PgUp: %q, want %q", got, page)
	}
	h.key(tcell.KeyEnd)
	h.has(" 100/100")
	h.wantSelected(t, "10.1.0.100")
	h.key(tcell.KeyHome)
	h.has(" 1/100")
	h.wantSelected(t, "10.1.0.1 ")
}

// The screen tells a Watcher source which flows it shows, and again when
// scrolling shows others: a huge table reads those between full refreshes.
func TestWatchesRowsOnScreen(t *testing.T) {
	h := newHarness(t, 80, 24)
	h.src.setFlows(manyFlows(100)) // IDs 1..100, fastest first
	h.runes("bb")
	h.has("1/100")
	first := h.src.watchedIDs()
	if len(first) < 10 || len(first) > 24 || first[0] != 1 || first[len(first)-1] != uint32(len(first)) {
		t.Fatalf("watched %v, want the rows on screen: 1..n", first)
	}
	h.key(tcell.KeyEnd)
	h.has(" 100/100")
	last := h.src.watchedIDs()
	if len(last) != len(first) || last[len(last)-1] != 100 {
		t.Fatalf("after End watched %v, want the last %d flows", last, len(first))
	}
}

func TestHorizontalScroll(t *testing.T) {
	h := newHarness(t, 80, 24)
	h.has("PROCESS")
	h.runes("l")
	s := h.has("cols +1")
	if strings.Contains(s, "PROCESS") {
		t.Errorf("l did not scroll PROCESS away:\n%s", s)
	}
	h.key(tcell.KeyRight)
	h.has("cols +2")
	h.runes("h")
	h.key(tcell.KeyLeft)
	h.hasNot("cols +")
	h.has("PROCESS")
}

func TestToggles(t *testing.T) {
	h := newHarness(t, 160, 40)
	h.has("485.0kB/s", "example.com")

	h.runes("b")
	h.has("3.9Mbit/s", "bit/s") // 485 kB/s
	h.runes("b")
	h.has("485.0kB/s")

	h.runes("n")
	s := h.has("93.184.216.34", "numeric")
	if strings.Contains(s, "example.com") {
		t.Error("n still shows names")
	}
	h.runes("n")
	h.has("example.com")

	h.runes("s")
	h.has("SOURCE", "laptop.lan", "2001:db8::10")
	h.runes("s")
	h.hasNot("SOURCE")

	h.runes("a")
	s = h.has("active only", "flows 5/7")
	if strings.Contains(s, "dns.google") || strings.Contains(s, "10.0.0.3") {
		t.Errorf("a still shows idle flows:\n%s", s)
	}
	h.runes("a")
	h.has("dns.google", "flows 7/7")
}

func TestProtocolKeys(t *testing.T) {
	h := newHarness(t, 160, 40)
	h.has("dns.google", "filter IPv4,IPv6,TCP,UDP,ICMP ")
	h.runes("U")
	s := h.has("filter IPv4,IPv6,TCP,ICMP ")
	if strings.Contains(s, "dns.google") {
		t.Errorf("U did not hide UDP:\n%s", s)
	}
	h.runes("T")
	s = h.has("filter IPv4,IPv6,ICMP ")
	if strings.Contains(s, "example.com") {
		t.Errorf("T did not hide TCP:\n%s", s)
	}
	h.runes("TDSI")
	h.has("filter IPv4,IPv6,TCP,DCCP,SCTP ")
	// Pressing U many times must not break anything (flowtop issue #183).
	h.runes("UUUUUUU")
	h.has("filter IPv4,IPv6,TCP,UDP,DCCP,SCTP ", "dns.google")

	h.src.mu.Lock()
	last := h.src.filters[len(h.src.filters)-1]
	h.src.mu.Unlock()
	for _, p := range []conntrack.Proto{conntrack.ProtoTCP, conntrack.ProtoUDP, conntrack.ProtoUDPLite,
		conntrack.ProtoDCCP, conntrack.ProtoSCTP} {
		if !last.Protos.Has(p) {
			t.Errorf("filter lacks %v", p)
		}
	}
	if last.Protos.Has(conntrack.ProtoICMP) || last.Protos.Has(conntrack.ProtoICMPv6) {
		t.Error("filter still has ICMP")
	}
}

func TestHelp(t *testing.T) {
	h := newHarness(t, 80, 24)
	h.runes("?")
	h.has("flowtop keys", "T U D I S", "g Home  G End  first row (stays on top")
	h.key(tcell.KeyEscape)
	h.hasNot("flowtop keys")
	h.runes("?")
	h.has("flowtop keys")
	h.runes("?")
	h.hasNot("flowtop keys")
}

func TestTabs(t *testing.T) {
	fastClicks(t)
	h := newHarness(t, 160, 40)
	h.has("DESTINATION")
	h.key(tcell.KeyTab)
	h.has("USER", "alice")
	h.key(tcell.KeyTab)
	h.has("BYTES_UP", "192.168.1.30")
	h.key(tcell.KeyTab)
	h.has("COUNTRY", "Germany")
	h.key(tcell.KeyTab)
	h.has("DESTINATION")
	h.key(tcell.KeyBacktab)
	h.has("COUNTRY")
	// A click on a tab's name switches to it.
	h.click(15, 4) // " Processes " on the tab bar
	h.has("USER")
}

func TestSortKeys(t *testing.T) {
	h := newHarness(t, 160, 40)
	h.has("RATE▼")
	order := func() []string {
		return rowOrder(h.text(), "203.0.113.5 ", "example.com", "[bastion]", "one.one.one.one",
			"2001:db8:2::1", "dns.google", "10.0.0.3")
	}
	want := []string{"203.0.113.5 ", "example.com", "[bastion]", "one.one.one.one", "2001:db8:2::1",
		"dns.google", "10.0.0.3"}
	if diff := cmp.Diff(want, order()); diff != "" {
		t.Errorf("default order (-want +got):\n%s", diff)
	}

	h.runes("r")
	h.has("RATE▲")
	// Ascending total rate; equal rates (0) keep ID order.
	want = []string{"dns.google", "10.0.0.3", "2001:db8:2::1", "one.one.one.one", "[bastion]",
		"example.com", "203.0.113.5 "}
	if diff := cmp.Diff(want, order()); diff != "" {
		t.Errorf("reversed order (-want +got):\n%s", diff)
	}

	h.runes("<")
	h.has("RATE_DST▼", "sort RATE_DST▼")
	h.runes(">>")
	h.has("PROCESS▲") // wraps around to the first column
	// No process sorts first; equal names keep ID order.
	want = []string{"dns.google", "203.0.113.5 ", "one.one.one.one", "10.0.0.3", "example.com",
		"2001:db8:2::1", "[bastion]"}
	if diff := cmp.Diff(want, order()); diff != "" {
		t.Errorf("by process (-want +got):\n%s", diff)
	}
	h.runes(">>")
	h.has("PROTO▲")
	h.runes(">>>")
	h.has("DESTINATION▲")
	want = []string{"[bastion]", "dns.google", "example.com", "one.one.one.one", "10.0.0.3",
		"203.0.113.5 ", "2001:db8:2::1"}
	if diff := cmp.Diff(want, order()); diff != "" {
		t.Errorf("by destination (-want +got):\n%s", diff)
	}
}

// fastClicks makes every click a single click, however fast the test.
func fastClicks(t *testing.T) { doubleClickWithin(t, time.Nanosecond) }

// slowClicks makes two clicks a double click, however busy the machine:
// the harness waits for each click to be drawn, which under load took
// longer than tview's 500 ms.
func slowClicks(t *testing.T) { doubleClickWithin(t, time.Minute) }

// doubleClickWithin sets tview's double-click interval for the test. Call
// it before newHarness: the app is stopped before it is restored.
func doubleClickWithin(t *testing.T, d time.Duration) {
	old := tview.DoubleClickInterval
	tview.DoubleClickInterval = d
	t.Cleanup(func() { tview.DoubleClickInterval = old })
}

func TestMouse(t *testing.T) {
	fastClicks(t)
	h := newHarness(t, 160, 40)
	s := h.has("PROTO")
	// Header row: a click on PROTO sorts by it, a second reverses.
	y := strings.Count(s[:strings.Index(s, "PROTO")], "\n")
	x := strings.Index(line(s, "PROTO"), "PROTO")
	h.click(x+1, y)
	h.has("PROTO▲")
	h.click(x+1, y)
	h.has("PROTO▼")
	h.click(x+1, y)
	h.has("PROTO▲")

	// A click on a row selects it.
	s = h.text()
	y = strings.Count(s[:strings.Index(s, "one.one.one.one")], "\n")
	h.click(5, y)
	h.wantSelected(t, "one.one.one.one")

	// The wheel moves the selection three rows.
	h.runes("g")
	h.wheel(5, y, 1)
	h.has(" 4/7")
	h.wheel(5, y, -1)
	h.has(" 1/7")
}

func TestDoubleClickOpensDetail(t *testing.T) {
	slowClicks(t)
	h := newHarness(t, 160, 40)
	s := h.has("example.com")
	y := strings.Count(s[:strings.Index(s, "example.com")], "\n")
	h.click(5, y)
	h.click(5, y)
	h.has("Flow detail", "Flow 101")
}

func TestFilter(t *testing.T) {
	h := newHarness(t, 160, 40)
	h.runes("/")
	h.runes("ssh")
	s := h.has("[bastion].example.org", "flows 1/7", "/ssh")
	if strings.Contains(s, "example.com ") {
		t.Errorf("filter ssh shows other flows:\n%s", s)
	}
	h.key(tcell.KeyEnter) // keep it
	h.has("/ssh", "flows 1/7")
	h.runes("j") // keys work on the table again
	h.key(tcell.KeyEscape)
	h.has("flows 7/7")
	h.hasNot("/ssh")

	// Esc in the input clears it at once; the filter matches many fields.
	for _, c := range []struct {
		q     string
		shown string
	}{
		{"2001:db8", "flows 2/7"},         // IPv6 address
		{"firefox", "flows 2/7"},          // process
		{"germany", "flows 1/7"},          // country
		{"443", "flows 2/7"},              // port
		{"https", "flows 2/7"},            // service
		{"=203.0.113.5", "flows 4/7"},     // whole address, NAT tuples too
		{"syn_sent", "flows 1/7"},         // state
		{"udp dns.google", "flows 1/7"},   // words must all match
		{"4242", "flows 2/7"},             // PID
		{"nomatch", "no flows match the"}, // nothing
	} {
		h.runes("/" + c.q)
		h.has(c.shown)
		h.key(tcell.KeyEscape)
		h.has("flows 7/7")
	}
}

func TestPause(t *testing.T) {
	h := newHarness(t, 160, 40)
	h.has("example.com")
	h.runes("p")
	h.has("PAUSED")
	fs := testFlows()[1:] // the source loses a flow
	h.src.setFlows(fs)
	h.runes("bb") // force a rebuild: the frozen snapshot stays
	h.has("example.com", "flows 7/7", "PAUSED")
	h.runes(" ")
	s := h.hasNot("PAUSED")
	h.has("flows 6/6")
	if strings.Contains(s, "example.com") {
		t.Errorf("resumed view still shows the ended flow:\n%s", s)
	}
}

func TestDetail(t *testing.T) {
	h := newHarness(t, 160, 40)
	h.key(tcell.KeyDown) // example.com, the SNAT flow
	h.key(tcell.KeyEnter)
	s := h.has("Flow detail", "Flow 101", "ESTABLISHED",
		"192.168.1.10:51000 → 93.184.216.34:443",
		"93.184.216.34:443 → 203.0.113.5:61000",
		"SNAT: source 192.168.1.10:51000 appears as 203.0.113.5:61000",
		"SEEN_REPLY ASSURED CONFIRMED SRC_NAT",
		"0x00000010", "Timeout      431999s", "2025-03-14 15:06:19 UTC  (age 3m)",
		"firefox  PID 4242  user alice", "/usr/lib/firefox/firefox -P default",
		"laptop.lan", "example.com", "US United States, AS15133 Edgecast",
		"20.6kB/s", "21.0kB/s", "19.0kB/s", "15.0kB/s", "485.0kB/s", "490.0kB/s", "1,500", "11,000")
	_ = s
	h.runes("b")
	h.has("3.9Mbit/s")
	h.key(tcell.KeyEscape)
	h.hasNot("Flow detail")
	h.wantSelected(t, "example.com")

	// IPv6 with labels, zone and mark; the view follows the flow and says
	// when it has ended.
	h.runes("/fe80")
	h.key(tcell.KeyEnter)
	h.key(tcell.KeyEnter)
	h.has("Flow 107", "[fe80::1]:33333 → [2001:db8:2::1]:443", "Zone 2",
		"01000000000000000000000000000080", "SYN_SENT")
	fs := testFlows()
	h.src.setFlows(append(fs[:6:6], fs[0]))
	h.runes("b")
	h.has("(ended)")
}

func TestDelete(t *testing.T) {
	h := newHarness(t, 160, 40)
	h.key(tcell.KeyDown)
	h.wantSelected(t, "example.com")
	h.runes("x")
	h.has("Delete this conntrack entry?", "tcp 192.168.1.10:51000 → 93.184.216.34:443")
	h.runes("n")
	h.hasNot("Delete this conntrack entry?")
	h.key(tcell.KeyDelete)
	h.has("Delete this conntrack entry?")
	h.key(tcell.KeyEscape)
	h.hasNot("Delete this conntrack entry?")
	h.src.mu.Lock()
	n := len(h.src.deleted)
	h.src.mu.Unlock()
	if n != 0 {
		t.Fatal("deleted without confirmation")
	}

	h.runes("x")
	h.runes("y")
	h.has("deleted tcp 192.168.1.10:51000 → 93.184.216.34:443")
	h.src.mu.Lock()
	got := h.src.deleted
	h.src.mu.Unlock()
	if diff := cmp.Diff([]uint32{101}, got); diff != "" {
		t.Errorf("deleted (-want +got):\n%s", diff)
	}

	// Enter alone keeps the entry (the Keep button has the focus).
	h.runes("x")
	h.has("Delete this conntrack entry?")
	h.key(tcell.KeyEnter)
	h.hasNot("Delete this conntrack entry?")

	// Failure goes to the status line; Enter on the Delete button works too.
	h.src.mu.Lock()
	h.src.delErr = errDenied
	h.src.mu.Unlock()
	h.runes("x")
	h.has("Delete this conntrack entry?")
	h.key(tcell.KeyLeft)
	h.key(tcell.KeyEnter)
	h.has("delete failed: operation not permitted")
	h.src.mu.Lock()
	n = len(h.src.deleted)
	h.src.mu.Unlock()
	if n != 1 {
		t.Errorf("%d deletes, want 1", n)
	}

	// Not on the other tabs.
	h.key(tcell.KeyTab)
	h.runes("x")
	h.has("select a flow on the Flows tab")
}

func TestSelectionFollowsFlow(t *testing.T) {
	h := newHarness(t, 160, 40)
	h.runes("jj")
	h.wantSelected(t, "[bastion].example.org")
	fs := testFlows()
	fs[1].ReplyRate.Bytes = 50_000_000 // the ssh flow becomes the fastest
	h.src.setFlows(fs)
	h.runes("bb")
	h.has(" 1/7")
	h.wantSelected(t, "[bastion].example.org")
	// When the selected flow ends, the selection stays in place.
	h.src.setFlows(fs[2:])
	h.runes("bb")
	h.has(" 1/5")
}

var unitRE = regexp.MustCompile(`^(-|\d+(\.\d)?(B|kB|MB|GB|TB)(/s)?)$`)

func TestNarrowAndResize(t *testing.T) {
	h := newHarness(t, 160, 40)
	for _, size := range [][2]int{{60, 20}, {40, 12}, {100, 30}} {
		h.ui(func() {
			h.screen.SetSize(size[0], size[1])
		})
		h.screen.PostEvent(tcell.NewEventResize(size[0], size[1]))
		s := h.waitFor("the new size", func(s string) bool {
			return strings.Count(s, "\n") == size[1] && strings.Contains(s, "RATE▼")
		})
		// Every field that looks like a number with a unit is whole.
		for _, l := range strings.Split(s, "\n")[6:] {
			for _, f := range strings.Fields(l) {
				if strings.ContainsAny(f[:1], "0123456789") && strings.HasSuffix(f, "/s") && !unitRE.MatchString(f) {
					t.Errorf("%dx%d: cut unit %q in %q", size[0], size[1], f, l)
				}
			}
		}
		if !strings.Contains(s, "203.0.113.5") {
			t.Errorf("%dx%d: destination dropped:\n%s", size[0], size[1], s)
		}
	}
}

func TestEscapesUserData(t *testing.T) {
	h := newHarness(t, 160, 40)
	h.has("[bastion].example.org")
	h.runes("n")
	h.has("2001:db8:1::22")
	h.runes("/[::")
	h.has("/[::")
}

func TestWaitingForFirstSnapshot(t *testing.T) {
	src := &fakeSource{}
	screen := tcell.NewSimulationScreen("UTF-8")
	a := New(Config{Source: src, Interval: 10 * time.Millisecond}, screen)
	screen.SetSize(80, 24)
	done := make(chan error, 1)
	go func() { done <- a.Run() }()
	h := &harness{t: t, a: a, screen: screen}
	h.has("waiting for the first snapshot")
	src.mu.Lock()
	src.all = testFlows()
	src.filter = allProtos()
	src.publish()
	src.mu.Unlock()
	h.has("203.0.113.5") // the next tick shows it
	a.Stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestLongWarningsWrap(t *testing.T) {
	long := strings.Repeat("conntrack tracks no flow in this namespace although it carries traffic ", 4)
	h := newHarness(t, 80, 24, func(c *Config) {
		c.Warnings = func() []string { return []string{long, "second", "third"} }
	})
	s := h.has("! conntrack tracks no flow", "… more warnings", "203.0.113.5")
	for _, l := range strings.Split(s, "\n") {
		if n := len([]rune(l)); n > 80 {
			t.Errorf("line wider than the screen: %q", l)
		}
	}
	if strings.Count(s, "tracks no flow") < 2 {
		t.Errorf("warning not wrapped:\n%s", s)
	}
}

func TestStopBeforeRun(t *testing.T) {
	src := newFakeSource(testFlows(), allProtos())
	a := New(Config{Source: src}, tcell.NewSimulationScreen("UTF-8"))
	a.Stop()
	done := make(chan error, 1)
	go func() { done <- a.Run() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run after Stop did not return")
	}
}

func TestRunStopsWithContext(t *testing.T) {
	// Run(ctx) on a terminal is not possible here; App.Run with a context
	// stop is what Run does.
	h := newHarness(t, 80, 24)
	ctx, cancel := context.WithCancel(context.Background())
	stop := context.AfterFunc(ctx, h.a.Stop)
	defer stop()
	cancel()
	select {
	case err := <-h.done:
		if err != nil {
			t.Fatal(err)
		}
		h.done <- nil
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return when the context was done")
	}
}

// TestRowsUseTerminalColors: data rows are drawn in the terminal's own
// colours, like the rest of the screen (not white on black).
func TestRowsUseTerminalColors(t *testing.T) {
	h := newHarness(t, 160, 40)
	s := h.has("firefox")
	y := strings.Count(s[:strings.Index(s, "firefox")], "\n")
	h.ui(func() {
		cells, w, _ := h.screen.GetContents()
		fg, bg, _ := cells[y*w].Style.Decompose()
		if fg != tcell.ColorDefault || bg != tcell.ColorDefault {
			t.Errorf("a data row is drawn with fg %v bg %v, want the terminal's defaults", fg, bg)
		}
	})
}
