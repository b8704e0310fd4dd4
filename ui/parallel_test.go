package ui

import (
	"fmt"
	"math"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
	"github.com/flowtop/flowtop/geo"
	"github.com/flowtop/flowtop/procs"
)

// tieNamer gives many flows the same names, processes and countries, so
// that sorts by them have ties, and leaves others unnamed.
type tieNamer struct{}

// tieNames are tieNamer's names, by flow ID modulo their number.
var tieNames = func() []enrich.Names {
	ns := make([]enrich.Names, 4*37*11*3)
	for id := range ns {
		switch id % 4 {
		case 0:
		case 1:
			ns[id] = enrich.Names{Service: "https", DstName: fmt.Sprintf("h%d.example.com", id%37),
				Process: procs.Info{PID: id % 37, Name: fmt.Sprintf("p%d", id%37%17), User: "u"}}
		default:
			ns[id] = enrich.Names{Service: "https", SrcName: fmt.Sprintf("s%d.lan", id%11),
				DstGeo:  geo.Info{Country: []string{"DE", "FR", ""}[id%3], ASN: uint(id % 2), ASOrg: "x"},
				Process: procs.Info{PID: 100 + id%7, Name: "firefox", User: "me"}}
		}
	}
	return ns
}()

func (tieNamer) Names(f *conntrack.Flow) enrich.Names { return tieNames[int(f.ID)%len(tieNames)] }

// tieFlows is benchFlows(n) with ties: equal rates and counters, idle
// flows, flows whose local end is the destination, the same remote and
// local addresses in flows far apart (in other workers' chunks), and rates
// whose sums are not exact.
func tieFlows(n int) []*conntrack.Flow {
	fs := benchFlows(n)
	for i := range fs {
		f := &fs[i]
		switch i % 9 {
		case 0: // idle
			f.OrigRate, f.ReplyRate = conntrack.Rate{}, conntrack.Rate{}
		case 1: // ties
			f.OrigRate, f.ReplyRate = conntrack.Rate{Bytes: 100}, conntrack.Rate{Bytes: 1000}
			f.OrigCount.Bytes, f.ReplyCount.Bytes = 5000, 7000
		case 2: // the local end is the destination: up is the reply
			f.Orig.Src, f.Orig.Dst = f.Orig.Dst, f.Orig.Src
			f.Reply.Src, f.Reply.Dst = f.Reply.Dst, f.Reply.Src
		case 3: // a few remote hosts shared across the table
			a := conntrack.AddrFrom(netip.AddrFrom4([4]byte{8, 8, 4, byte(i % 5)}))
			f.Orig.Dst, f.Reply.Src = a, a
			f.Family = conntrack.IPv4
			f.HasCounters = i%2 == 0
		case 5: // a few local hosts shared across the table
			a := conntrack.AddrFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i % 50)}))
			f.Orig.Src, f.Reply.Dst = a, a
			f.Family = conntrack.IPv4
		case 4: // rates whose sums depend on the order of the terms
			f.OrigRate = conntrack.Rate{Bytes: 1e-3 * float32(i%101)}
			f.ReplyRate = conntrack.Rate{Bytes: 1e7 + float32(i%7)/3}
		}
	}
	return conntrack.Pointers(fs)
}

func sameGroup(a, b *group) bool {
	if a.rep != b.rep || a.flows != b.flows || a.side != b.side || a.counted != b.counted ||
		a.up != b.up || a.down != b.down ||
		math.Float64bits(a.upRate) != math.Float64bits(b.upRate) ||
		math.Float64bits(a.downRate) != math.Float64bits(b.downRate) {
		return false
	}
	if (a.proc == nil) != (b.proc == nil) || a.proc != nil && *a.proc != *b.proc {
		return false
	}
	return (a.names == nil) == (b.names == nil) && (a.names == nil || *a.names == *b.names)
}

func sameView(t *testing.T, name string, want, got *view) {
	t.Helper()
	if want.shown != got.shown || want.total != got.total ||
		math.Float64bits(want.srcRate) != math.Float64bits(got.srcRate) ||
		math.Float64bits(want.dstRate) != math.Float64bits(got.dstRate) {
		t.Fatalf("%s: totals %d/%d %v %v, want %d/%d %v %v", name, got.shown, got.total, got.srcRate, got.dstRate,
			want.shown, want.total, want.srcRate, want.dstRate)
	}
	if len(want.flows) != len(got.flows) || len(want.groups) != len(got.groups) {
		t.Fatalf("%s: %d flows %d groups, want %d, %d", name, len(got.flows), len(got.groups), len(want.flows), len(want.groups))
	}
	for i := range want.flows {
		if want.flows[i] != got.flows[i] {
			t.Fatalf("%s: row %d is flow %d, want %d", name, i, got.flows[i].ID, want.flows[i].ID)
		}
	}
	for i := range want.groups {
		if !sameGroup(want.groups[i], got.groups[i]) {
			t.Fatalf("%s: group %d is %+v, want %+v", name, i, *got.groups[i], *want.groups[i])
		}
	}
}

// TestParallelBuild checks that a build split between workers makes the
// view one worker makes, on every tab and sort, with a filter and with a,
// with and without the memo of names, whose next generation must be the
// same too. With -race it tries one filter a sort.
func TestParallelBuild(t *testing.T) {
	fs := tieFlows(50_000)
	snap := &conntrack.Snapshot{Time: t0, Flows: fs}
	type sc struct {
		tab tabID
		col colID
	}
	var sorts []sc
	for _, c := range []colID{cRate, cPID, cProcess, cDest, cPort, cAge} {
		sorts = append(sorts, sc{tabFlows, c})
	}
	for _, c := range []colID{cRate, cProcess, cFlows, cBytesUp} {
		sorts = append(sorts, sc{tabProcesses, c})
	}
	for _, tab := range []tabID{tabHosts, tabRemote} {
		for _, c := range []colID{cRate, cFlows, cHost, cName, cCountry} {
			sorts = append(sorts, sc{tab, c})
		}
	}
	filters := []struct {
		terms  []string
		active bool
	}{{nil, false}, {nil, true}, {[]string{"firefox"}, true}, {[]string{"8.8.4"}, false}}
	for i, s := range sorts {
		for j, fl := range filters {
			if raceOn && j != i%len(filters) {
				continue // one filter a sort: each build is slow with -race
			}
			desc := (i+j)%2 == 0
			p := &params{tab: s.tab, sort: defaultSort(), terms: fl.terms, active: fl.active, numeric: s.col == cHost}
			p.sort[s.tab] = sortSpec{col: s.col, desc: desc}
			name := fmt.Sprintf("tab %d col %d desc %v terms %q active %v", s.tab, s.col, desc, fl.terms, fl.active)
			want := &view{p: p}
			if !buildRowsWith(want, snap, p, &namesPass{names: tieNamer{}}, t0, nil, 1) {
				t.Fatal("not built")
			}
			for _, w := range []int{2 + (i+j)%2*5, 4} {
				got := &view{p: p}
				if !buildRowsWith(got, snap, p, &namesPass{names: tieNamer{}}, t0, nil, w) {
					t.Fatal("not built")
				}
				sameView(t, fmt.Sprintf("%s, %d workers", name, w), want, got)
			}
		}
	}

	// With memos: a first build fills them, a second reads them while it
	// looks up a new flow and drops a gone one.
	p := &params{tab: tabProcesses, sort: defaultSort(), terms: []string{"e"}}
	seq, par := newNameMemo(tieNamer{}), newNameMemo(tieNamer{})
	next := append([]*conntrack.Flow(nil), fs[1:]...)
	nf := *fs[0]
	nf.ID = 1 << 30
	next = append(next, &nf)
	for _, s := range []*conntrack.Snapshot{snap, {Time: t0, Flows: next}} {
		want, got := &view{p: p}, &view{p: p}
		nm := seq.pass(time.Hour, time.Hour)
		if !buildRowsWith(want, s, p, nm, t0, nil, 1) {
			t.Fatal("not built")
		}
		nm.done()
		nm = par.pass(time.Hour, time.Hour)
		if !buildRowsWith(got, s, p, nm, t0, nil, 4) {
			t.Fatal("not built")
		}
		nm.done()
		sameView(t, "memo", want, got)
		if len(seq.cur.flows) != len(s.Flows) || len(par.cur.flows) != len(seq.cur.flows) {
			t.Fatalf("memos of %d and %d flows, want %d", len(seq.cur.flows), len(par.cur.flows), len(s.Flows))
		}
		for i := range seq.cur.flows {
			if seq.cur.flows[i] != par.cur.flows[i] || *seq.cur.names[i] != *par.cur.names[i] {
				t.Fatalf("memo %d: flow %d, want %d", i, par.cur.flows[i].ID, seq.cur.flows[i].ID)
			}
		}
	}
}

// TestParallelBuildStale checks that a parallel build given up for a
// newer key ends all its workers.
func TestParallelBuildStale(t *testing.T) {
	fs := tieFlows(50_000)
	snap := &conntrack.Snapshot{Time: t0, Flows: fs}
	before := runtime.NumGoroutine()
	for _, after := range []int64{0, 1, 3, 10, 1000} {
		for _, tab := range []tabID{tabFlows, tabProcesses, tabHosts, tabRemote} {
			var calls atomic.Int64
			stale := func() bool { return calls.Add(1) > after }
			p := &params{tab: tab, sort: defaultSort()}
			built := buildRowsWith(&view{p: p}, snap, p, newNameMemo(tieNamer{}).pass(time.Hour, time.Hour), t0, stale, 4)
			if after <= 3 && built || after >= 1000 && !built {
				t.Errorf("tab %d, stale after %d looks: built %v", tab, after, built)
			}
		}
	}
	if n := runtime.NumGoroutine(); n > before {
		t.Errorf("%d goroutines after the builds, %d before", n, before)
	}
}
