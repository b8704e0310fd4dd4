package remote

import (
	"syscall"
	"testing"
	"time"

	"github.com/flowtop/flowtop/report"
)

// BenchmarkDecode turns the document of a 100k-flow table (every flow
// listed, with names) into a node's view: what a viewer does with a
// router's periodic document without --limit. ns/flow and the
// allocations per flow are the figures to watch.
func BenchmarkDecode(b *testing.B) {
	const n = 100_000
	doc := encodeDoc(b, synthSnapshot(synthFlows(n)), report.Options{Host: "bench", Names: synthNamer{}})
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	cpu0 := cpuTime()
	for b.Loop() {
		p, err := decodeDocument(doc, n)
		if err != nil {
			b.Fatal(err)
		}
		v := newView("bench", &p.header, p.flows, p.names, true, 1, false, time.Now(), 0)
		if len(v.Snapshot.Flows) != n {
			b.Fatalf("%d flows", len(v.Snapshot.Flows))
		}
	}
	// On a shared machine the wall clock counts the other processes'
	// time too: the process's CPU time is the figure (GC included).
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N*n), "cpu-ns/flow")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/flow")
	b.ReportMetric(0, "ns/op")
}

// cpuTime is the user and system time of the process.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
