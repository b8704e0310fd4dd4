package ui

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/google/go-cmp/cmp"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
)

func TestHumanize(t *testing.T) {
	for _, c := range []struct {
		v    float64
		want string
	}{
		{0, "0B"}, {999, "999B"}, {999.4, "999B"}, {999.5, "1.0kB"}, {1000, "1.0kB"},
		{14_100_000, "14.1MB"}, {485_000, "485.0kB"}, {999_949, "999.9kB"}, {999_950, "1.0MB"},
		{2e9, "2.0GB"}, {-5, "0B"},
	} {
		if got := humanize(c.v, byteUnits[:]); got != c.want {
			t.Errorf("humanize(%v) = %q, want %q", c.v, got, c.want)
		}
	}
	if got := fmtRate(20_600, false); got != "20.6kB/s" {
		t.Errorf("fmtRate = %q", got)
	}
	if got := fmtRate(20_600, true); got != "164.8kbit/s" {
		t.Errorf("fmtRate bits = %q", got)
	}
	// The widest rates fit the minimum column widths.
	for _, v := range []float64{999_949, 999_949_000, 124_993} {
		for _, bits := range []bool{false, true} {
			if s := fmtRate(v, bits); len(s) > rateWidth(bits) {
				t.Errorf("fmtRate(%v, %v) = %q, wider than %d", v, bits, s, rateWidth(bits))
			}
		}
	}
}

func TestFmtAge(t *testing.T) {
	for _, c := range []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {8 * time.Second, "8s"}, {59 * time.Second, "59s"}, {time.Minute, "1m"},
		{3*time.Minute + 59*time.Second, "3m"}, {2 * time.Hour, "2h"}, {25 * time.Hour, "1d"},
		{400 * 24 * time.Hour, "400d"},
	} {
		if got := fmtAge(c.d); got != c.want {
			t.Errorf("fmtAge(%v) = %q, want %q", c.d, got, c.want)
		}
	}
}

func TestFormatHelpers(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{fmtCount(0), "0"}, {fmtCount(999), "999"}, {fmtCount(1000), "1,000"},
		{fmtCount(1234567), "1,234,567"},
		{endpoint(ap("2001:db8::1"), 443, true), "[2001:db8::1]:443"},
		{endpoint(ap("::ffff:10.0.0.1"), 80, true), "10.0.0.1:80"},
		{endpoint(ap("10.0.0.1"), 0, false), "10.0.0.1"},
		{addrString(netip.Addr{}), "-"},
		{fmtDuration(0), "-"}, {fmtDuration(500 * time.Microsecond), "500µs"},
		{fmtDuration(12 * time.Millisecond), "12ms"}, {fmtDuration(1500 * time.Millisecond), "1.5s"},
		{esc("[::1]"), "[::1[]"}, {esc("plain"), "plain"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}

func TestLocalEnd(t *testing.T) {
	fs := testFlows()
	for _, c := range []struct {
		id          uint32
		local, peer string
		up          uint64
	}{
		{101, "192.168.1.10", "93.184.216.34", 1_234_567}, // SNAT'd client
		{102, "2001:db8::10", "2001:db8:1::22", 88_000},   // both public: the initiator
		{104, "192.168.1.30", "198.51.100.7", 300_000},    // DNAT: the LAN server
		{106, "10.0.0.2", "10.0.0.3", 0},                  // LAN to LAN: the source
		{107, "fe80::1", "2001:db8:2::1", 80},             // link-local
	} {
		var f *conntrack.Flow
		for i := range fs {
			if fs[i].ID == c.id {
				f = &fs[i]
			}
		}
		local, ls := localEnd(f)
		peer, _ := remoteEnd(f, ls)
		up, _, _, _ := upDown(f, ls)
		if local.String() != c.local || peer.String() != c.peer || up.Bytes != c.up {
			t.Errorf("flow %d: local %v remote %v up %d, want %s %s %d", c.id, local, peer, up.Bytes,
				c.local, c.peer, c.up)
		}
	}
	// An inbound flow to a private address without NAT.
	f := conntrack.Flow{Orig: tuple("198.51.100.9", 5000, "10.1.1.1", 22), Reply: tuple("10.1.1.1", 22, "198.51.100.9", 5000),
		OrigCount: conntrack.Counter{Bytes: 10}, ReplyCount: conntrack.Counter{Bytes: 20}}
	local, ls := localEnd(&f)
	up, down, _, _ := upDown(&f, ls)
	if local.String() != "10.1.1.1" || ls != sideDst || up.Bytes != 20 || down.Bytes != 10 {
		t.Errorf("inbound: local %v side %v up %d down %d", local, ls, up.Bytes, down.Bytes)
	}
}

func TestLayoutColumns(t *testing.T) {
	cands := []colID{cProcess, cPID, cProto, cDest, cRate}
	w := []int{7, 4, 5, 20, 9}
	for _, c := range []struct {
		width int
		want  []int
	}{
		{100, []int{7, 4, 5, 20, 9}},
		{49, []int{7, 4, 5, 20, 9}}, // exactly: 45 + 4 separators
		{48, []int{7, 0, 5, 20, 9}}, // PID goes first
		{36, []int{0, 0, 5, 20, 9}}, // then PROCESS
		{30, []int{0, 0, 0, 20, 9}},
		{12, []int{0, 0, 0, 12, 0}}, // the destination alone, cut
	} {
		got := layoutColumns(cands, w, w, c.width, cRate)
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("width %d (-want +got):\n%s", c.width, diff)
		}
	}
	// The sort column is kept before lower-priority ones.
	got := layoutColumns(cands, w, w, 36, cPID)
	if diff := cmp.Diff([]int{0, 4, 0, 20, 9}, got); diff != "" {
		t.Errorf("sort by PID (-want +got):\n%s", diff)
	}
	// Space left over widens capped columns up to their text.
	got = layoutColumns([]colID{cDest, cRate}, []int{40, 9}, []int{60, 9}, 60, cRate)
	if diff := cmp.Diff([]int{50, 9}, got); diff != "" {
		t.Errorf("grow (-want +got):\n%s", diff)
	}
}

func TestMatcher(t *testing.T) {
	fs := testFlows()
	names := testNamer()
	var m enrich.Matcher
	match := func(q string) []uint32 {
		var ids []uint32
		for i := range fs {
			n := names.Names(&fs[i])
			if m.Match(&fs[i], &n, enrich.ParseQuery(q)) {
				ids = append(ids, fs[i].ID)
			}
		}
		return ids
	}
	for _, c := range []struct {
		q    string
		want []uint32
	}{
		{"", []uint32{101, 102, 103, 104, 105, 106, 107}},
		{"FIREFOX", []uint32{101, 107}},
		{"22", []uint32{102}},                 // whole port, not 2222 or 2001:db8:...:22 partly
		{"=192.168.1.1", nil},                 // whole address only
		{"192.168.1.1", []uint32{101, 105}},   // substring
		{"=192.168.1.10", []uint32{101, 105}}, // exact
		{"tcp established", []uint32{101, 102, 104, 106}},
		{"dst_nat", nil},                 // status flags are not searched
		{"edgecast", []uint32{101, 103}}, // AS organisation
		{"berlin", []uint32{104}},        // city
		{"192.168.1.30", []uint32{104}},  // the DNAT target in the reply tuple
	} {
		got := match(c.q)
		if diff := cmp.Diff(c.want, got); diff != "" {
			t.Errorf("%q (-want +got):\n%s", c.q, diff)
		}
	}
}

func TestSortNumsIsStable(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, 10, 33, 63, 64, 1000, 5000, 100_000} {
		rows := make([]numRow, n)
		spread := 50 + r.IntN(2)*1_000_000 // few keys (many ties) or many
		for i := range rows {
			rows[i] = makeNumRow(orderedBits(float64(r.IntN(spread))-10), uint32(i))
		}
		want := slices.Clone(rows)
		slices.SortStableFunc(want, func(a, b numRow) int {
			if a.key() < b.key() {
				return -1
			} else if a.key() > b.key() {
				return 1
			}
			return 0
		})
		sortNums(rows)
		if !slices.Equal(rows, want) {
			t.Errorf("n=%d: sortNums differs from a stable sort", n)
		}
		for i, row := range rows {
			if i > 0 && row.key() == rows[i-1].key() && row.seq() < rows[i-1].seq() {
				t.Fatalf("n=%d: ties out of the order they were added in", n)
			}
		}
	}
	if !(orderedBits(-1) < orderedBits(0) && orderedBits(0) < orderedBits(0.5) && orderedBits(0.5) < orderedBits(1e9)) {
		t.Error("orderedBits does not keep the order")
	}
}

// TestSorterOrder: the numeric sorter is a stable sort by key, in both
// directions, for keys as the columns make them (rates, byte counts up
// to 2^40, ages), and so is its fallback for more rows than a numRow
// numbers (keys compared as sortKeys).
func TestSorterOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	keys := make([]float64, 5000)
	for i := range keys {
		switch i % 4 {
		case 0:
			keys[i] = float64(float32(r.Float64() * 1e6)) // a rate
		case 1:
			keys[i] = float64(r.Uint64() >> (24 + r.IntN(40))) // a byte count
		case 2:
			keys[i] = float64(r.IntN(5)) // many ties
		default:
			keys[i] = r.Float64() * 86400 // an age in seconds
		}
	}
	for _, rows := range []int{len(keys), 1 << seqBits} {
		for _, desc := range []bool{false, true} {
			var s sorter
			s.init(rows, sortSpec{desc: desc}, true, &buildScratch{})
			for _, k := range keys {
				s.push(&sortKey{num: k})
			}
			s.sort()
			got := slices.Collect(s.seqs)
			want := make([]uint32, len(keys))
			for i := range want {
				want[i] = uint32(i)
			}
			slices.SortStableFunc(want, func(a, b uint32) int {
				x, y := keys[a], keys[b]
				if desc {
					x, y = y, x
				}
				switch {
				case x < y:
					return -1
				case x > y:
					return 1
				}
				return 0
			})
			if !slices.Equal(got, want) {
				t.Errorf("rows %d, desc %v: the sorter's order differs from a stable sort", rows, desc)
			}
		}
	}
}

func TestBuildRowsStableTies(t *testing.T) {
	// Many flows with the same rate: the order is by ID, whatever the
	// sort direction, and the same on every build.
	fs := manyFlows(300)
	for i := range fs {
		fs[i].OrigRate.Bytes, fs[i].ReplyRate.Bytes = 5, 5
	}
	rand.Shuffle(len(fs), func(i, j int) { fs[i], fs[j] = fs[j], fs[i] })
	slices.SortFunc(fs, func(a, b conntrack.Flow) int { return int(a.ID) - int(b.ID) })
	snap := &conntrack.Snapshot{Time: t0, Flows: conntrack.Pointers(fs)}
	for _, desc := range []bool{true, false} {
		p := &params{tab: tabFlows, sort: defaultSort()}
		p.sort[tabFlows].desc = desc
		v := &view{p: p}
		buildRows(v, snap, p, enrich.None{}, t0)
		for i := range v.rowCount() {
			if f := v.flow(i); f.ID != uint32(i+1) {
				t.Fatalf("desc=%v: row %d is flow %d", desc, i, f.ID)
			}
		}
	}
}

func TestBuildRowsGroups(t *testing.T) {
	src := newFakeSource(testFlows(), allProtos())
	snap := src.Latest()
	names := testNamer()
	p := &params{tab: tabProcesses, sort: defaultSort()}
	v := &view{p: p}
	buildRows(v, snap, p, names, t0)
	var got []string
	for _, g := range v.groups {
		got = append(got, g.proc.Name+"/"+fmtCount(uint64(g.flows)))
	}
	if diff := cmp.Diff([]string{"/4", "firefox/2", "ssh/1"}, got); diff != "" {
		t.Errorf("processes (-want +got):\n%s", diff)
	}
	if v.shown != 7 || v.total != 7 {
		t.Errorf("shown %d total %d", v.shown, v.total)
	}

	p = &params{tab: tabHosts, sort: defaultSort(), terms: []string{"192.168.1"}}
	v = &view{p: p}
	buildRows(v, snap, p, names, t0)
	got = got[:0]
	for _, g := range v.groups {
		got = append(got, g.addr().String())
	}
	if diff := cmp.Diff([]string{"192.168.1.30", "192.168.1.10", "192.168.1.20"}, got); diff != "" {
		t.Errorf("hosts (-want +got):\n%s", diff)
	}
}

func TestSortAddrsIsStable(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for _, n := range []int{10, 100, 3000} {
		rows := make([]addrRow, n)
		for i := range rows {
			rows[i] = addrRow{hi: uint64(r.IntN(3)) << 60, lo: uint64(r.IntN(20)) << (8 * r.IntN(8)), seq: uint32(i)}
		}
		want := slices.Clone(rows)
		slices.SortStableFunc(want, func(a, b addrRow) int {
			if a.hi != b.hi {
				return cmpU64(a.hi, b.hi)
			}
			return cmpU64(a.lo, b.lo)
		})
		sortAddrs(rows)
		if !slices.Equal(rows, want) {
			t.Errorf("n=%d: sortAddrs differs from a stable sort", n)
		}
	}
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Builds that reuse memory (the refresher's scratch) never touch the
// groups of the view on screen, and give the same rows as fresh builds.
func TestBuildScratchKeepsShownGroups(t *testing.T) {
	fs := benchFlows(5000)
	snapOf := func(fs []conntrack.Flow) *conntrack.Snapshot {
		return &conntrack.Snapshot{Time: t0, Flows: conntrack.Pointers(fs)}
	}
	describe := func(v *view) []string {
		var out []string
		for _, g := range v.groups {
			out = append(out, fmt.Sprintf("%v %d %d %d", g.addr(), g.flows, g.up, g.down))
		}
		return out
	}
	var scratch buildScratch
	build := func(tab tabID, snap *conntrack.Snapshot) *view {
		p := &params{tab: tab, sort: defaultSort()}
		v := &view{p: p}
		if !buildRowsUnless(v, snap, p, &namesPass{names: enrich.None{}}, &scratch, t0, nil) {
			t.Fatal("build abandoned")
		}
		fresh := &view{p: p}
		buildRows(fresh, snap, p, enrich.None{}, t0)
		if diff := cmp.Diff(describe(fresh), describe(v)); diff != "" {
			t.Fatalf("tab %d: reusing memory changed the rows (-fresh +reused):\n%s", tab, diff)
		}
		return v
	}
	shown := build(tabRemote, snapOf(fs))
	want := describe(shown)
	other := append([]conntrack.Flow(nil), fs[1000:]...)
	for i := range other {
		other[i].OrigCount.Bytes += 12345
	}
	for _, tab := range []tabID{tabHosts, tabRemote, tabFlows, tabHosts} {
		build(tab, snapOf(other)) // built, never shown
		if diff := cmp.Diff(want, describe(shown)); diff != "" {
			t.Fatalf("a later build changed the groups on screen (-before +after):\n%s", diff)
		}
	}
}

// TestPutCell: the table's cells are padded, aligned and, when too wide,
// cut with "…", wide characters counted as two columns.
func TestPutCell(t *testing.T) {
	for _, c := range []struct {
		text  string
		w     int
		right bool
		want  string
	}{
		{"hello", 7, false, "hello  "},
		{"42", 5, true, "   42"},
		{"hello", 3, false, "he…"},
		{"hello", 3, true, "he…"},
		{"日本語", 6, false, "日本語"},
		{"日本語", 5, false, "日本…"},
		{"ab日", 3, false, "ab…"},
		{"日本語", 4, false, "日 …"}, // 本 does not fit before the "…"

		{"[x]y", 4, false, "[x]y"},        // no tview style tags here
		{"a\x1b[2Jb", 6, false, "a[2Jb "}, // control characters take no column
	} {
		screen := tcell.NewSimulationScreen("UTF-8")
		if err := screen.Init(); err != nil {
			t.Fatal(err)
		}
		screen.SetSize(20, 1)
		screen.Fill('.', tcell.StyleDefault)
		putCell(screen, 1, 0, c.w, c.text, c.right, selectedStyle)
		var got strings.Builder
		for x := 1; x < 1+c.w; x++ {
			str, _, w := screen.Get(x, 0)
			got.WriteString(str)
			x += max(w, 1) - 1
		}
		if got.String() != c.want {
			t.Errorf("putCell(%q, width %d, right %v) = %q, want %q", c.text, c.w, c.right, got.String(), c.want)
		}
		if s, _, _ := screen.Get(1+c.w, 0); s != "." {
			t.Errorf("putCell(%q, width %d) wrote past its width: %q", c.text, c.w, s)
		}
		// Every column of the cell has its style: no hole in a selected
		// row where a wide character did not fit.
		for x := 1; x < 1+c.w; {
			_, style, w := screen.Get(x, 0)
			if _, _, attr := style.Decompose(); attr&tcell.AttrReverse == 0 {
				t.Errorf("putCell(%q, width %d): column %d is not in the cell's style", c.text, c.w, x-1)
			}
			x += max(w, 1)
		}
		screen.Fini()
	}
}
