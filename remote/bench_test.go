package remote

import (
	"encoding/json"
	"syscall"
	"testing"
	"time"

	"github.com/flowtop/flowtop/report"
)

// BenchmarkDecode turns the document of a 100k-flow table (every flow
// listed, with names) into a node's view: what a viewer does with a
// router's periodic document without --limit. cpu-ns/flow and the
// allocations are the figures to watch; encoding-json, the document read
// into report.Document (flows not even converted), is the reference.
func BenchmarkDecode(b *testing.B) {
	const n = 100_000
	doc := encodeDoc(b, synthSnapshot(synthFlows(n)), report.Options{Host: "bench", Names: synthNamer{}})
	perFlow := func(b *testing.B, decode func()) {
		b.SetBytes(int64(len(doc)))
		b.ReportAllocs()
		cpu0 := cpuTime()
		for b.Loop() {
			decode()
		}
		// On a shared machine the wall clock counts the other processes'
		// time too: the process's CPU time is the figure (GC included).
		b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N*n), "cpu-ns/flow")
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/flow")
		b.ReportMetric(0, "ns/op")
	}
	b.Run("view", func(b *testing.B) {
		perFlow(b, func() {
			p, err := decodeDocument(doc, n)
			if err != nil {
				b.Fatal(err)
			}
			v := newView("bench", &p.header, p.flows, p.names, true, 1, false, time.Now(), 0)
			if len(v.Snapshot.Flows) != n {
				b.Fatalf("%d flows", len(v.Snapshot.Flows))
			}
		})
	})
	b.Run("encoding-json", func(b *testing.B) {
		perFlow(b, func() {
			var d report.Document
			if err := json.Unmarshal(doc, &d); err != nil || len(d.Flows) != n {
				b.Fatal(err)
			}
		})
	})
}

// cpuTime is the user and system time of the process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
