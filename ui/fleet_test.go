package ui

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
	"github.com/flowtop/flowtop/geo"
	"github.com/flowtop/flowtop/procs"
	"github.com/flowtop/flowtop/remote"
	"github.com/flowtop/flowtop/report"
)

// fakeFleet is a broker's worth of nodes, set by the tests; it records
// what the screen asks it to watch.
type fakeFleet struct {
	mu      sync.Mutex
	nodes   []remote.NodeInfo
	views   map[string]*remote.View
	conn    remote.ConnInfo
	watches []string // "-" for Watch(), "+" for WatchAll, "summary" for WatchSummary, else the nodes joined by ","
	changes chan struct{}
}

func newFakeFleet() *fakeFleet {
	return &fakeFleet{views: map[string]*remote.View{}, changes: make(chan struct{}, 1),
		conn: remote.ConnInfo{Broker: "tcp://broker.lan:1883", Connected: true, Since: t0.Add(-time.Hour)}}
}

func (f *fakeFleet) Nodes() []remote.NodeInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.nodes)
}

func (f *fakeFleet) Conn() remote.ConnInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conn
}

func (f *fakeFleet) Latest(node string) *remote.View {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.views[node]
}

// Fleet merges the views as the Client does (flows of every node, the
// newest time, summed totals).
func (f *fakeFleet) Fleet() *remote.FleetView {
	f.mu.Lock()
	defer f.mu.Unlock()
	var views []*remote.View
	for _, v := range f.views {
		views = append(views, v)
	}
	slices.SortFunc(views, func(a, b *remote.View) int { return strings.Compare(a.Node, b.Node) })
	fv := &remote.FleetView{Nodes: views, Complete: true, Snapshot: &conntrack.Snapshot{}}
	s := fv.Snapshot
	for i, v := range views {
		s.Flows = append(s.Flows, v.Snapshot.Flows...)
		if v.Snapshot.Time.After(s.Time) {
			s.Time = v.Snapshot.Time
		}
		s.TableFlows += v.Snapshot.TableFlows
		if i == 0 {
			s.Interval, s.Filter, s.Health = v.Snapshot.Interval, v.Snapshot.Filter, v.Snapshot.Health
		}
		fv.Totals.Flows += v.Totals.Flows
		fv.Complete = fv.Complete && v.Complete
	}
	return fv
}

func (f *fakeFleet) Watch(nodes ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	w := strings.Join(nodes, ",")
	if w == "" {
		w = "-"
	}
	f.watches = append(f.watches, w)
}

func (f *fakeFleet) WatchAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.watches = append(f.watches, "+")
}

func (f *fakeFleet) WatchSummary() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.watches = append(f.watches, "summary")
}

func (f *fakeFleet) Changes() <-chan struct{} { return f.changes }

func (f *fakeFleet) watched() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.watches)
}

// set changes the fleet under the lock and tells the screen.
func (f *fakeFleet) set(change func(f *fakeFleet)) {
	f.mu.Lock()
	change(f)
	f.mu.Unlock()
	select {
	case f.changes <- struct{}{}:
	default:
	}
}

// routerNamer is what the routers know: processes, and some names.
func routerNamer() *fakeNamer {
	us := geo.Info{Country: "US", CountryName: "United States", ASN: 15133, ASOrg: "Edgecast"}
	ff := procs.Info{PID: 4242, Name: "firefox", User: "alice", Cmdline: "/usr/lib/firefox/firefox -P default"}
	return &fakeNamer{names: map[uint32]enrich.Names{
		101: {Service: "https", SrcName: "laptop.lan", DstName: "example.com", DstGeo: us, Process: ff},
		102: {Service: "ssh", Process: procs.Info{PID: 777, Name: "ssh", User: "bob", Cmdline: "ssh -A bastion"}},
		103: {Service: "domain", DstName: "dns.google", DstGeo: us},
		107: {Service: "https", Process: ff},
	}}
}

// laptopNamer is the viewer's own lookups: names the routers did not
// send, one they did (which must lose) and a process (never shown).
func laptopNamer() *fakeNamer {
	de := geo.Info{Country: "DE", CountryName: "Germany", City: "Berlin", ASN: 3320, ASOrg: "Deutsche Telekom AG"}
	return &fakeNamer{names: map[uint32]enrich.Names{
		101: {DstName: "laptop-guess.example", Process: procs.Info{PID: 1, Name: "laptop-proc"}},
		102: {DstName: "[bastion].example.org"},
		104: {Service: "http-alt", SrcName: "client.example.net", SrcGeo: de},
		105: {DstName: "one.one.one.one", DstGeo: geo.Info{Country: "AU", CountryName: "Australia"}},
	}}
}

// recordedDoc returns testdata/fleet-<name>.json, a document as node
// name publishes it; -update writes it anew from make.
func recordedDoc(t testing.TB, name string, make func() *report.Prepared) []byte {
	t.Helper()
	path := filepath.Join("testdata", "fleet-"+name+".json")
	if *update && make != nil {
		var b bytes.Buffer
		if err := make().Encode(&b); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./ui -update)", err)
	}
	return doc
}

// routerSnapshot is a router's table of flows at time at.
func routerSnapshot(flows []conntrack.Flow, at time.Time) *conntrack.Snapshot {
	f := conntrack.DefaultFilter()
	f.AllProtos()
	s := &conntrack.Snapshot{Time: at, Interval: time.Second, TableFlows: len(flows) + 2, Filter: f,
		Health: conntrack.Health{Events: 4321, Overruns: 0, Resyncs: 1, Refresh: 8 * time.Millisecond,
			RefreshEvery: time.Second, KernelFlows: len(flows) + 2, Accounting: true, Timestamps: true}}
	for i := range flows {
		s.Flows = append(s.Flows, &flows[i])
	}
	return s
}

// fleetViews are the recorded documents of the test nodes: r1 (the
// screen tests' flows, named by the router), r2 (two of them) and r3,
// of which one part of two came.
func fleetViews(t testing.TB) map[string]*remote.View {
	t.Helper()
	docs := map[string][]byte{
		"r1": recordedDoc(t, "r1", func() *report.Prepared {
			return report.Prepare(routerSnapshot(testFlows(), t0), report.Options{Host: "r1.lan", Names: routerNamer()})
		}),
		"r2": recordedDoc(t, "r2", func() *report.Prepared {
			return report.Prepare(routerSnapshot(testFlows()[2:4], t0.Add(-2*time.Second)), report.Options{Host: "r2.lan", Names: routerNamer()})
		}),
		"r3": recordedDoc(t, "r3-part1of2", func() *report.Prepared {
			p := report.Prepare(routerSnapshot(testFlows()[4:5], t0), report.Options{Host: "r3.lan"})
			p.Part, p.Parts = 1, 2
			return p
		}),
	}
	views := map[string]*remote.View{}
	for node, doc := range docs {
		v, err := remote.ViewFromDocument(node, doc)
		if err != nil {
			t.Fatal(err)
		}
		views[node] = v
	}
	return views
}

// infoOf is the NodeInfo a Client makes of a node's view.
func infoOf(v *remote.View, status remote.Status) remote.NodeInfo {
	n := remote.NodeInfo{Name: v.Node, Status: status, StatusAt: t0.Add(-time.Minute), Host: v.Host,
		Time: v.Snapshot.Time, Received: v.Received, Flows: v.Totals.Flows, Listed: v.Totals.Listed,
		TableFlows: v.Totals.TableFlows, OrigBytesPerS: v.Totals.OrigBytesPerS, ReplyBytesPerS: v.Totals.ReplyBytesPerS,
		Overruns: v.Health.Overruns, Resyncs: v.Health.Resyncs,
		Complete: v.Complete, Parts: v.Parts, PartsReceived: v.PartsReceived, Documents: 1}
	if e, ok := v.Health.Exporters["mqtt"]; ok {
		n.Dropped = e.Dropped
	}
	return n
}

// testFleet is r1 online, r2 offline (its last will), r3 online with one
// part of two, and r4, which said nothing but a malformed message.
func testFleet(t testing.TB) *fakeFleet {
	f := newFakeFleet()
	f.views = fleetViews(t)
	f.nodes = []remote.NodeInfo{
		infoOf(f.views["r1"], remote.StatusOnline),
		infoOf(f.views["r2"], remote.StatusOffline),
		infoOf(f.views["r3"], remote.StatusOnline),
		{Name: "r4", Rejected: 1, Err: "snapshot: invalid character 'x' looking for beginning of value", ErrAt: t0},
	}
	f.nodes[2].Err, f.nodes[2].ErrAt = "snapshot: 1 of 2 parts arrived; shown incomplete (the missing flows are not known, not ended)", t0
	f.nodes[0].Overruns, f.nodes[0].Dropped = 3, 12
	return f
}

// fleetHarness runs the screen on fleet f, showing node at start.
func fleetHarness(t testing.TB, w, h int, f *fakeFleet, node string, opts ...harnessOpt) *harness {
	t.Helper()
	return newHarness(t, w, h, append([]harnessOpt{func(c *Config) {
		c.Source, c.Fleet, c.Node, c.Names = nil, f, node, laptopNamer()
		c.Status = nil
	}}, opts...)...)
}

// styleOf returns the style of the first cell of text on the screen.
func (h *harness) styleOf(text string) (tcell.Style, bool) {
	var st tcell.Style
	found := false
	h.ui(func() {
		cells, w, ht := h.screen.GetContents()
		for y := range ht {
			var line strings.Builder
			for x := range w {
				c := cells[y*w+x]
				if len(c.Runes) == 0 || c.Runes[0] == 0 {
					line.WriteByte(' ')
				} else {
					line.WriteRune(c.Runes[0])
				}
			}
			if i := strings.Index(line.String(), text); i >= 0 {
				st, found = cells[y*w+len([]rune(line.String()[:i]))].Style, true
				return
			}
		}
	})
	return st, found
}

func (h *harness) isRed(text string) bool {
	h.t.Helper()
	st, ok := h.styleOf(text)
	if !ok {
		h.t.Fatalf("%q not on screen:\n%s", text, h.text())
	}
	fg, _, _ := st.Decompose()
	return fg == tcell.ColorRed
}

// TestFleetGolden: the Nodes tab, a node's Flows tab and every node's
// flows in one table, from recorded documents.
func TestFleetGolden(t *testing.T) {
	for _, size := range [][2]int{{80, 24}, {160, 40}} {
		t.Run(strings.Join([]string{itoa(size[0]), itoa(size[1])}, "x"), func(t *testing.T) {
			suffix := "-" + itoa(size[0]) + "x" + itoa(size[1])
			h := fleetHarness(t, size[0], size[1], testFleet(t), "")
			h.has("r4")
			h.golden("fleet-nodes" + suffix)
			h.key(tcell.KeyEnter) // r1, the first by name
			h.has("firefox")
			h.golden("fleet-flows" + suffix)
			h.runes("A")
			h.has("NODE", "r2")
			h.golden("fleet-all" + suffix)
		})
	}
}

// TestFleetEnterWatches: the Nodes tab asks every node for its totals
// only; Enter on a node shows its flows and watches it; A every node.
func TestFleetEnterWatches(t *testing.T) {
	f := testFleet(t)
	h := fleetHarness(t, 120, 30, f, "")
	h.has("Nodes", "r1", "r2")
	if got := f.watched(); !slices.Equal(got, []string{"summary"}) {
		t.Fatalf("watches on the Nodes tab: %q, want WatchSummary alone", got)
	}
	h.runes("j") // r2
	h.key(tcell.KeyEnter)
	h.has("node r2", "dns.google")
	var tab tabID
	h.ui(func() { tab = h.a.p.tab })
	if tab != tabFlows {
		t.Fatalf("tab %d after Enter, want Flows", tab)
	}
	if got := f.watched(); !slices.Equal(got, []string{"summary", "r2"}) {
		t.Fatalf("watches: %q, want WatchSummary then Watch(r2)", got)
	}
	h.runes("A")
	h.has("all nodes")
	if got := f.watched(); !slices.Equal(got, []string{"summary", "r2", "+"}) {
		t.Fatalf("watches: %q, want WatchAll last", got)
	}
}

// TestFleetStartNode: --mqtt-node NAME opens that node's Flows tab and
// watches it.
func TestFleetStartNode(t *testing.T) {
	f := testFleet(t)
	h := fleetHarness(t, 120, 30, f, "r1")
	h.has("node r1", "example.com")
	if got := f.watched(); !slices.Equal(got, []string{"r1"}) {
		t.Fatalf("watches: %q, want Watch(r1)", got)
	}
}

// TestFleetDeleteRefused: x says why it cannot delete and asks nothing.
func TestFleetDeleteRefused(t *testing.T) {
	h := fleetHarness(t, 160, 30, testFleet(t), "r1")
	h.has("example.com")
	h.runes("x")
	h.has("x: deleting needs the router's kernel; this screen reads r1 from the broker")
	var m mode
	h.ui(func() { m = h.a.mode })
	if m != modeTable {
		t.Fatalf("mode %d after x, want the table (no dialog)", m)
	}
}

// TestFleetHeaderRed: the header turns red for an offline node and for a
// node whose data is stale, and stays plain otherwise.
func TestFleetHeaderRed(t *testing.T) {
	f := testFleet(t)
	h := fleetHarness(t, 160, 30, f, "r2")
	h.has("node r2 OFFLINE")
	if !h.isRed("OFFLINE") {
		t.Error("OFFLINE is not red")
	}

	// Stale is three intervals (the router's -t or the screen's) and 5 s.
	f = testFleet(t)
	h = fleetHarness(t, 160, 30, f, "r1", func(c *Config) { c.Interval = time.Second })
	h.has("data 1s old")
	if h.isRed("data 1s old") {
		t.Error("fresh data in red")
	}
	f.set(func(f *fakeFleet) {
		v, err := remote.ViewFromDocument("r1", recordedDoc(t, "r1", nil))
		if err != nil {
			t.Fatal(err)
		}
		v.Snapshot.Time = t0.Add(-42 * time.Second) // the router went quiet
		f.views["r1"] = v
	})
	h.has("stale 43s")
	if !h.isRed("stale 43s") {
		t.Error("stale data is not red")
	}
}

// TestFleetIncomplete: a document of which a part never came shows the
// flows that did, marked incomplete, on the Nodes tab and in the header.
func TestFleetIncomplete(t *testing.T) {
	f := testFleet(t)
	h := fleetHarness(t, 160, 30, f, "")
	s := h.has("r3")
	if l := line(s, "r3.lan"); !strings.Contains(l, "1/2") {
		t.Errorf("r3's row has no 1/2 parts: %q", l)
	}
	if l := line(s, "r1.lan"); regexp.MustCompile(`\b\d+/\d+\b`).MatchString(l) {
		t.Errorf("r1's row says parts: %q", l)
	}
	h.runes("jj")
	h.key(tcell.KeyEnter)
	s = h.has("node r3", "incomplete: parts 1/2", "one.one.one.one")
	if !h.isRed("incomplete: parts 1/2") {
		t.Error("incomplete is not red")
	}
	if strings.Contains(s, "no flows") {
		t.Errorf("an incomplete document shown as no flows:\n%s", s)
	}
}

// TestFleetNames: the router's names win, the laptop's fill the gaps, the
// process comes from the router only; names a router sends in a later
// document are shown, also where the build looks names up (the / filter
// and the Processes tab).
func TestFleetNames(t *testing.T) {
	f := testFleet(t)
	h := fleetHarness(t, 160, 30, f, "r1")
	s := h.has("example.com", "[bastion].example.org", "one.one.one.one", "firefox")
	for _, bad := range []string{"laptop-guess", "laptop-proc"} {
		if strings.Contains(s, bad) {
			t.Errorf("%s shown: the router's name must win, processes come from the router only:\n%s", bad, s)
		}
	}
	// The detail view names the flow's record, whose names the router
	// sent (a copy of it has none).
	h.runes("j") // firefox to example.com, second by rate
	h.key(tcell.KeyEnter)
	h.has("Flow detail", "firefox", "example.com")
	h.key(tcell.KeyEscape)
	// A / filter (names from the build's memo), then a new document that
	// names the ping flow on the router's side.
	h.runes("/echo")
	h.key(tcell.KeyEnter)
	h.has("no flows match the filter")
	f.set(func(f *fakeFleet) {
		names := routerNamer()
		names.names[105] = enrich.Names{DstName: "echo.router.lan", Process: procs.Info{PID: 99, Name: "pinger"}}
		var b bytes.Buffer
		snap := routerSnapshot(testFlows(), t0.Add(time.Second))
		if err := report.Prepare(snap, report.Options{Host: "r1.lan", Names: names}).Encode(&b); err != nil {
			t.Fatal(err)
		}
		v, err := remote.ViewFromDocument("r1", b.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		f.views["r1"] = v
	})
	h.has("echo.router.lan")
	h.ui(func() { h.a.filter.SetText("") })
	h.key(tcell.KeyTab) // Processes
	h.has("pinger")
}

// TestFleetNodesFilter: / on the Nodes tab keeps the nodes whose name,
// host or status has the words; the selection follows its node.
func TestFleetNodesFilter(t *testing.T) {
	f := testFleet(t)
	h := fleetHarness(t, 160, 30, f, "")
	h.has("r1.lan", "r4")
	h.runes("j") // r2
	h.runes("/offline")
	h.key(tcell.KeyEnter)
	s := h.hasNot("r1.lan")
	if !strings.Contains(s, "r2.lan") || strings.Contains(s, "r3.lan") {
		t.Fatalf("filter offline:\n%s", s)
	}
	h.ui(func() { h.a.filter.SetText("") })
	h.has("r1.lan", "r2.lan")
	// A node that sorts before r2 appears: the selection stays on r2.
	f.set(func(f *fakeFleet) {
		f.nodes = append([]remote.NodeInfo{{Name: "a0", Status: remote.StatusOnline}}, f.nodes...)
	})
	h.has("a0")
	var key rowKey
	h.ui(func() { key = h.a.view.rowKey(h.a.selected()) })
	if key.node != "r2" {
		t.Fatalf("selection on %q, want r2 followed", key.node)
	}
}

// TestFleetProtoKeys: T U D I S hide protocols on the screen (the router
// keeps its filter): the flows are filtered here, and the header says so.
func TestFleetProtoKeys(t *testing.T) {
	h := fleetHarness(t, 160, 30, testFleet(t), "r1")
	h.has("example.com", "one.one.one.one")
	h.runes("T")
	s := h.hasNot("example.com")
	if !strings.Contains(s, "hidden here TCP") || !strings.Contains(s, "one.one.one.one") {
		t.Fatalf("after T:\n%s", s)
	}
	if !strings.Contains(s, "router filter IPv4,IPv6,TCP") {
		t.Fatalf("the router's filter changed:\n%s", s)
	}
	h.runes("T")
	h.has("example.com")
}

// TestFleetBrokerTrouble: before the broker answers the header says so;
// a broker's and a node's error are one header line each, and the rest
// of the screen works.
func TestFleetBrokerTrouble(t *testing.T) {
	f := newFakeFleet()
	f.conn.Connected = false
	h := fleetHarness(t, 160, 30, f, "")
	h.has("connecting to broker…")
	f.set(func(f *fakeFleet) {
		f.conn.Err, f.conn.ErrAt = "connect to tcp://broker.lan:1883: connection refused", t0
	})
	h.has("! broker: connect to tcp://broker.lan:1883: connection refused")
	f.set(func(f *fakeFleet) {
		g := testFleet(t)
		f.conn = g.conn
		f.conn.Err, f.conn.ErrAt = "5 messages dropped: the viewer could not keep up", t0
		f.nodes, f.views = g.nodes, g.views
	})
	h.has("r1.lan", "! broker: 5 messages dropped")
	h.runes("jjj") // r4, whose message was malformed
	h.key(tcell.KeyEnter)
	s := h.has("! r4: snapshot: invalid character", "waiting for r4's first document")
	if strings.Count(s, "! broker") != 1 || strings.Count(s, "! r4") != 1 {
		t.Errorf("want one line for the broker, one for the node:\n%s", s)
	}
}

// TestFleetHelp: the help with a Fleet has the fleet's keys in the place
// of those they replace, every one of them bound; the local help has
// none of them.
func TestFleetHelp(t *testing.T) {
	plain := strings.NewReplacer("[::b]", "", "[::-]", "").Replace(fleetHelpScreen)
	for _, b := range fleetKeys {
		if !strings.Contains(plain, b.keys) || !strings.Contains(plain, strings.SplitN(b.help, "\n", 2)[0]) {
			t.Errorf("fleet help lacks %q", b.keys)
		}
		for _, c := range b.acts {
			for _, r := range c.runes {
				ev := tcell.NewEventKey(tcell.KeyRune, r, tcell.ModNone)
				if got := fleetTableKeys.find(ev); got == nil || got.do == nil {
					t.Errorf("%q is not bound with a Fleet", r)
				}
			}
		}
	}
	if n := strings.Count(plain, "\nx  Delete"); n != 1 {
		t.Errorf("x is in the fleet help %d times, want once (replaced)", n)
	}
	if strings.Contains(helpScreen, "every node") || strings.Contains(helpScreen, "router") {
		t.Error("the local help names the fleet's keys")
	}
	h := fleetHarness(t, 80, 24, testFleet(t), "")
	h.runes("?")
	h.has("flowtop keys")
	h.golden("fleet-help-80x24")
}

// TestFleetRouterWarnings: the screen's own warnings about the kernel
// (accounting, an idle conntrack) are not given about the laptop with a
// Fleet; the router's health gives them, naming the node.
func TestFleetRouterWarnings(t *testing.T) {
	f := testFleet(t)
	h := fleetHarness(t, 160, 30, f, "")
	s := h.has("r1.lan")
	for _, w := range []string{"accounting", "conntrack looks inactive"} {
		if strings.Contains(s, w) {
			t.Errorf("the Nodes tab warns %q:\n%s", w, s)
		}
	}
	f.set(func(f *fakeFleet) {
		snap := routerSnapshot(nil, t0)
		snap.TableFlows, snap.Health.KernelFlows, snap.Health.Accounting = 0, 0, false
		var b bytes.Buffer
		if err := report.Prepare(snap, report.Options{Host: "idle.lan"}).Encode(&b); err != nil {
			t.Fatal(err)
		}
		v, err := remote.ViewFromDocument("idle", b.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		f.views["idle"] = v
		f.nodes = append([]remote.NodeInfo{infoOf(v, remote.StatusOnline)}, f.nodes...)
	})
	h.has("idle.lan")
	h.key(tcell.KeyEnter) // idle, the first by name
	h.has("! accounting (nf_conntrack_acct) is off on idle", "! conntrack looks inactive on idle")
	h.key(tcell.KeyBacktab) // the Nodes tab again
	h.hasNot("accounting (nf_conntrack_acct)")
}

// TestNodesSortByEveryColumn: sorting the Nodes tab by any of its
// columns orders the nodes by that column's key, both ways.
func TestNodesSortByEveryColumn(t *testing.T) {
	f := testFleet(t)
	fd := &fleetData{nodes: f.Nodes()}
	for _, c := range nodesTab.columns {
		for _, desc := range []bool{false, true} {
			p := &params{tab: tabNodes, sort: defaultSort(), nodeSort: sortSpec{col: c, desc: desc}}
			v := &view{p: p, fd: fd}
			buildNodes(v, fd, p, t0.Add(time.Second), time.Second, f.Latest)
			if len(v.nodes) != len(fd.nodes) {
				t.Fatalf("by %s: %d rows of %d nodes", c.title, len(v.nodes), len(fd.nodes))
			}
			o := fmtOpts{now: t0}
			var prev *sortKey
			for i := range v.nodes {
				r := row{node: &v.nodes[i], o: &o}
				_ = c.cell(r)
				k := c.sortKey(r)
				if prev != nil {
					cmp := compareKeys(prev, &k)
					if desc {
						cmp = -cmp
					}
					if cmp > 0 {
						t.Errorf("by %s (desc %v): row %d out of order: %+v after %+v", c.title, desc, i, k, *prev)
					}
				}
				prev = &k
			}
		}
	}
}

// TestFleetPause: p freezes a node's flows while documents keep coming;
// sorting works on the frozen view; p again shows the newest.
func TestFleetPause(t *testing.T) {
	f := testFleet(t)
	h := fleetHarness(t, 160, 30, f, "r1")
	h.has("one.one.one.one")
	h.runes("p")
	h.has("PAUSED")
	f.set(func(f *fakeFleet) {
		names := routerNamer()
		names.names[105] = enrich.Names{DstName: "echo.router.lan"}
		var b bytes.Buffer
		if err := report.Prepare(routerSnapshot(testFlows(), t0.Add(time.Second)), report.Options{Host: "r1.lan", Names: names}).Encode(&b); err != nil {
			t.Fatal(err)
		}
		v, err := remote.ViewFromDocument("r1", b.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		f.views["r1"] = v
	})
	h.runes("r") // a build, of the frozen view
	s := h.has("RATE▲")
	if strings.Contains(s, "echo.router.lan") || !strings.Contains(s, "one.one.one.one") {
		t.Fatalf("a paused screen showed a new document:\n%s", s)
	}
	h.runes("p")
	h.has("echo.router.lan")
}

// TestFleetAllNodes: with every node in one table the / filter matches
// a flow's node too, and the detail view names the node.
func TestFleetAllNodes(t *testing.T) {
	h := fleetHarness(t, 160, 30, testFleet(t), allNodes)
	h.has("NODE", "r3")
	h.runes("/r2")
	h.key(tcell.KeyEnter)
	s := h.hasNot("example.com")
	if !strings.Contains(s, "dns.google") || regexp.MustCompile(`(?m)^r[13] `).MatchString(s) {
		t.Fatalf("/r2 in the all-nodes table:\n%s", s)
	}
	h.runes("/ domain") // a word of the flow beside the node's
	h.key(tcell.KeyEnter)
	s = h.hasNot("http-alt")
	if !strings.Contains(s, "dns.google") {
		t.Fatalf("/r2 domain:\n%s", s)
	}
	h.key(tcell.KeyEnter)
	s = h.has("Flow detail")
	if l := line(s, "║Node "); !strings.Contains(l, "r2") {
		t.Fatalf("the detail view does not name the node:\n%s", s)
	}
	// r1 has a flow of the same key (two routers, one address plan): the
	// detail view and the selection keep to r2's.
	h.key(tcell.KeyEscape)
	h.ui(func() { h.a.filter.SetText("") })
	// The rows of every node (r3 alone also shows in the header).
	s = h.has("\nr1 ", "\nr2 ", "\nr3 ")
	if got := rowOrder(s, "r1   ", "r2   "); !slices.Equal(got, []string{"r1   ", "r2   "}) {
		t.Fatalf("want r1's port forward first, r2's second:\n%s", s)
	}
	h.runes("j") // r2's port forward, the same flow as r1's
	var key rowKey
	h.ui(func() { key = h.a.view.rowKey(h.a.selected()) })
	if key.node != "r2" {
		t.Fatalf("selection on node %q, want r2's flow", key.node)
	}
	h.key(tcell.KeyEnter)
	s = h.has("Flow detail", "198.51.100.7")
	if l := line(s, "║Node "); !strings.Contains(l, "r2") {
		t.Fatalf("the detail view does not name the node:\n%s", s)
	}
}

// TestFleetChangesCoalesced: a fleet that changes all the time (a busy
// broker) rebuilds the screen at most every changeGap, not once per
// change, and the last change still shows.
func TestFleetChangesCoalesced(t *testing.T) {
	var swaps atomic.Int64
	f := testFleet(t)
	h := fleetHarness(t, 160, 30, f, "", func(c *Config) {
		c.Interval = 200 * time.Millisecond // changeGap 100 ms; ticks every 200 ms
		c.afterSwap = func(*view) { swaps.Add(1) }
	})
	h.has("r1")
	start, before := time.Now(), swaps.Load()
	for i := 0; time.Since(start) < time.Second; i++ {
		f.set(func(f *fakeFleet) { f.conn.Dropped = uint64(i) })
		time.Sleep(time.Millisecond)
	}
	elapsed := time.Since(start)
	rebuilds := swaps.Load() - before
	// Ticks (every 200 ms) and changes (every 100 ms at most), over the
	// second or so: about 15; a rebuild per change would be hundreds.
	if limit := int64(elapsed/(200*time.Millisecond)+elapsed/(100*time.Millisecond)) + 3; rebuilds > limit {
		t.Errorf("%d rebuilds in %v of constant changes, want at most %d", rebuilds, elapsed.Round(time.Millisecond), limit)
	}
	t.Logf("%d rebuilds in %v of constant changes", rebuilds, elapsed.Round(time.Millisecond))
}

// TestFleetPauseBeforeFirstView: p pressed before the first view is on
// screen froze no fleet data; the screen shows the Fleet's, paused,
// instead of crashing.
func TestFleetPauseBeforeFirstView(t *testing.T) {
	h := fleetHarness(t, 160, 30, testFleet(t), "")
	h.has("r1")
	// The state togglePause leaves when it runs before the first swap
	// (a.view.fd was nil then).
	h.ui(func() {
		h.a.publish(func(p *params) { p.paused, p.frozen, p.frozenFleet = true, nil, nil })
	})
	h.has("PAUSED", "r1")
}

// TestFleetQuietNodeRed: on the Nodes tab a node nobody watches has its
// AGE in red once it is older than two of its periods (it should have
// published), and plain before.
func TestFleetQuietNodeRed(t *testing.T) {
	f := testFleet(t)
	f.nodes[0].Time, f.nodes[0].PublishEvery = t0.Add(-33*time.Second), time.Minute    // r1: due in 87 s
	f.nodes[2].Time, f.nodes[2].PublishEvery = t0.Add(-47*time.Second), 10*time.Second // r3: 17 s late
	h := fleetHarness(t, 160, 30, f, "")
	h.has("34s", "48s") // the screen's clock is a second past t0
	if !h.isRed("48s") {
		t.Errorf("the quiet node's AGE is not red:\n%s", h.text())
	}
	if h.isRed("34s") {
		t.Errorf("a node within its period has a red AGE:\n%s", h.text())
	}
}
