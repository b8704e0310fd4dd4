package ui

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
	"github.com/flowtop/flowtop/procs"
)

// benchFlows makes n flows with random rates, half IPv4 and half IPv6.
func benchFlows(n int) []conntrack.Flow {
	r := rand.New(rand.NewPCG(1, 2))
	fs := make([]conntrack.Flow, n)
	for i := range fs {
		id := uint32(i + 1)
		var src, dst netip.Addr
		fam := conntrack.IPv4
		if i%2 == 0 {
			src = netip.AddrFrom4([4]byte{192, 168, byte(i >> 8), byte(i)})
			dst = netip.AddrFrom4([4]byte{byte(1 + r.IntN(220)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
		} else {
			fam = conntrack.IPv6
			src = netip.AddrFrom16([16]byte{0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, byte(i >> 8), byte(i)})
			dst = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(r.IntN(256)), 15: byte(r.IntN(256))})
		}
		rate := float64(r.IntN(1000)) * r.Float64() * 1000
		fs[i] = conntrack.Flow{
			ID: id, Family: fam, Proto: conntrack.ProtoTCP, State: 3,
			Orig:        conntrack.Tuple{Src: conntrack.AddrFrom(src), Dst: conntrack.AddrFrom(dst), SrcPort: uint16(1024 + i%60000), DstPort: 443},
			Reply:       conntrack.Tuple{Src: conntrack.AddrFrom(dst), Dst: conntrack.AddrFrom(src), SrcPort: 443, DstPort: uint16(1024 + i%60000)},
			Start:       conntrack.StampOf(t0.Add(-time.Duration(r.IntN(86400)) * time.Second)),
			HasCounters: true,
			OrigCount:   conntrack.Counter{Bytes: uint64(r.IntN(1 << 30)), Packets: uint64(r.IntN(1 << 20))},
			ReplyCount:  conntrack.Counter{Bytes: uint64(r.IntN(1 << 30)), Packets: uint64(r.IntN(1 << 20))},
			OrigRate:    conntrack.Rate{Bytes: rate / 10},
			ReplyRate:   conntrack.Rate{Bytes: rate},
		}
	}
	return fs
}

// benchNamer names some flows, as a warm cache would.
type benchNamer struct{}

func (benchNamer) Names(f *conntrack.Flow) enrich.Names {
	if f.ID%3 == 0 {
		return enrich.Names{Service: "https", DstName: "host.example.com",
			Process: procs.Info{PID: int(f.ID % 500), Name: "firefox"}}
	}
	return enrich.Names{Service: "https"}
}

type staticSource struct {
	snap atomic.Pointer[conntrack.Snapshot]
}

func (s *staticSource) Latest() *conntrack.Snapshot  { return s.snap.Load() }
func (s *staticSource) SetFilter(conntrack.Filter)   {}
func (s *staticSource) Delete(*conntrack.Flow) error { return nil }
func newStaticSource(n int) *staticSource {
	s := &staticSource{}
	s.snap.Store(&conntrack.Snapshot{Time: t0, Interval: time.Second, Flows: conntrack.Pointers(benchFlows(n)), TableFlows: n,
		Filter: conntrack.DefaultFilter(), Health: conntrack.Health{Accounting: true, KernelFlows: n}})
	return s
}

// BenchmarkDraw measures one full draw of the screen (200x60) with the
// Flows tab over n rows: the virtual table formats only the visible rows.
func BenchmarkDraw(b *testing.B) {
	for _, n := range []int{1_000, 100_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			src := newStaticSource(n)
			screen := tcell.NewSimulationScreen("UTF-8")
			a := New(Config{Source: src, Names: benchNamer{}, Version: "bench"}, screen)
			screen.SetSize(200, 60)
			a.now = func() time.Time { return t0 }
			v := &view{p: a.p}
			buildRows(v, src.Latest(), a.p, a.names, t0)
			a.view = v
			a.restoreSelection()
			a.moveTo(n / 2)
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				a.app.ForceDraw()
			}
		})
	}
}

// BenchmarkBuild measures building the rows of one tick (filter, sort,
// aggregate) for 100k flows, off the UI goroutine.
func BenchmarkBuild(b *testing.B) {
	src := newStaticSource(100_000)
	snap := src.Latest()
	for _, c := range []struct {
		name string
		p    params
	}{
		{"flows-by-rate", params{tab: tabFlows, sort: defaultSort()}},
		{"flows-by-destination", params{tab: tabFlows, sort: [numTabs]sortSpec{tabFlows: {col: cDest}}}},
		{"flows-filtered", params{tab: tabFlows, sort: defaultSort(), terms: []string{"2001:db8"}}},
		{"processes", params{tab: tabProcesses, sort: defaultSort()}},
		{"hosts", params{tab: tabHosts, sort: defaultSort()}},
		{"remote", params{tab: tabRemote, sort: defaultSort()}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				v := &view{p: &c.p}
				buildRows(v, snap, &c.p, benchNamer{}, t0)
			}
		})
	}
}

// BenchmarkKeyToScreen measures the time from a key press to the screen
// showing its effect, with 100k flows and the screen refreshing every
// 100 ms meanwhile: "sort" (r: the rows are sorted again off the UI
// goroutine and swapped in), "tab" (TAB: aggregated anew), "filter" (a
// character typed into the / filter), "move" (j: a redraw only).
func BenchmarkKeyToScreen(b *testing.B) {
	const n = 100_000
	src := newStaticSource(n)
	for _, c := range []struct {
		name    string
		key     tcell.Key
		r       rune
		rebuild bool
		setup   string
	}{
		{"sort", tcell.KeyRune, 'r', true, ""},
		{"tab", tcell.KeyTab, 0, true, ""},
		{"filter", tcell.KeyRune, 'x', true, "/"},
		{"move", tcell.KeyRune, 'j', false, ""},
	} {
		b.Run(c.name, func(b *testing.B) {
			screen := tcell.NewSimulationScreen("UTF-8")
			a := New(Config{Source: src, Names: benchNamer{}, Interval: 100 * time.Millisecond}, screen)
			screen.SetSize(200, 60)
			var target atomic.Uint64 // the view generation (or event count) awaited
			drawn := make(chan struct{}, 1)
			a.app.SetAfterDrawFunc(func(tcell.Screen) {
				got := uint64(a.events)
				if c.rebuild {
					got = a.view.p.gen
				}
				if t := target.Load(); t != 0 && got >= t {
					target.Store(0)
					drawn <- struct{}{}
				}
			})
			done := make(chan error, 1)
			go func() { done <- a.Run() }()
			defer func() {
				a.Stop()
				<-done
			}()
			// Wait for the first view.
			for {
				ok := make(chan bool, 1)
				a.app.QueueUpdate(func() { ok <- a.view.snap != nil })
				if <-ok {
					break
				}
				time.Sleep(10 * time.Millisecond)
			}
			for _, r := range c.setup {
				screen.InjectKey(tcell.KeyRune, r, tcell.ModNone)
			}
			time.Sleep(50 * time.Millisecond)
			b.ResetTimer()
			for b.Loop() {
				ch := make(chan uint64, 1)
				a.app.QueueUpdate(func() {
					if c.rebuild {
						ch <- a.p.gen + 1
					} else {
						ch <- uint64(a.events) + 1
					}
				})
				target.Store(<-ch)
				screen.InjectKey(c.key, c.r, tcell.ModNone)
				<-drawn
				if c.name == "filter" {
					b.StopTimer()
					a.app.QueueUpdate(func() { a.filter.SetText("") })
					time.Sleep(20 * time.Millisecond)
					b.StartTimer()
				}
			}
		})
	}
}
