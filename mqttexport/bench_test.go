package mqttexport

import (
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/report"
)

// BenchmarkDocument encodes the snapshot document of a 100k-flow table
// without a limit into parts of the default payload size, as a periodic
// snapshot is published: every flow encoded once, then packed.
func BenchmarkDocument(b *testing.B) {
	snap := testSnapshot(100_000)
	for _, gz := range []bool{false, true} {
		name := "plain"
		if gz {
			name = "gzip"
		}
		b.Run(name, func(b *testing.B) {
			enc := encoder{max: DefaultMaxPayload, gz: gz}
			b.ReportAllocs()
			for b.Loop() {
				bodies, _, err := enc.document(report.Prepare(snap, report.Options{Host: "bench"}))
				if err != nil || len(bodies) < 2 {
					b.Fatalf("%d bodies, %v", len(bodies), err)
				}
			}
		})
	}
}

// BenchmarkEndedExpiry100k: 100k flows end within ten seconds while the
// exporter publishes snapshots of a 100k-flow table every second (at
// least as fast as it can), as when a router's table expires at once. The
// records go through a channel of 16384 with non-blocking sends, as the
// table's ended subscription does, and are counted at a subscriber. With
// -broker-away the broker is unreachable while they end: they wait in the
// outbox (its bound is 100k), whose size is reported, then go out once it
// is back. Run with -benchtime=1x.
func BenchmarkEndedExpiry100k(b *testing.B) {
	for _, away := range []bool{false, true} {
		name := "connected"
		if away {
			name = "broker-away"
		}
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				endedExpiry(b, away)
			}
		})
	}
}

func endedExpiry(b *testing.B, away bool) {
	const n = 100_000
	br := startBroker(b, brokerOptions{})
	p := startProxy(b, br)
	ch := make(chan conntrack.Ended, 16384)
	h := newHarness(b, br, func(c *harnessConfig) { c.URL = p.url(); c.Interval = time.Second; c.Ended = ch })
	h.e.publishTimeout = 20 * time.Second
	h.snap.Store(testSnapshot(n))
	ids := collectEnded(b, subscribe(b, br, nil, h.t.ended))
	h.run(b)
	waitFor(b, patience, "connected", func() bool { return *h.e.Health().Connected })
	if away {
		p.setRefuse(true)
		p.cut()
		waitFor(b, patience, "disconnected", func() bool { return !*h.e.Health().Connected })
	}

	runtime.GC()
	var before, at runtime.MemStats
	runtime.ReadMemStats(&before)
	rssBefore := vmRSS()
	var chanDropped int
	start := time.Now()
	for i := range n {
		if i%1000 == 0 {
			// 10k a second.
			time.Sleep(time.Until(start.Add(time.Duration(i) * 100 * time.Microsecond)))
		}
		select {
		case ch <- endedFlow(i + 1):
		default:
			chanDropped++
		}
	}
	if away {
		waitFor(b, patience, "all records queued", func() bool {
			_, q := h.e.out.size()
			return q+int(h.e.endedLost.Load())+chanDropped >= n
		})
		runtime.GC()
		runtime.ReadMemStats(&at)
		_, q := h.e.out.size()
		b.Logf("broker away: %d records queued; heap %.1f -> %.1f MB, RSS %.1f -> %.1f MB",
			q, float64(before.HeapAlloc)/(1<<20), float64(at.HeapAlloc)/(1<<20), rssBefore, vmRSS())
		p.setRefuse(false)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		miss, _ := ids.missing(n)
		if miss <= int(h.e.endedLost.Load())+chanDropped || time.Now().After(deadline) {
			b.Logf("%d ended, %d delivered, %d dropped by the exporter, %d at the channel, after %v; %s",
				n, n-miss, h.e.endedLost.Load(), chanDropped, time.Since(start).Round(time.Millisecond), statsLine(h.e.Health()))
			b.ReportMetric(float64(n-miss), "delivered")
			b.ReportMetric(float64(h.e.endedLost.Load())+float64(chanDropped), "dropped")
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// vmRSS is the process's resident set, in MB.
func vmRSS() float64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(b)) {
		if kb, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			v, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(kb), " kB"), 64)
			return v / 1024
		}
	}
	return 0
}
