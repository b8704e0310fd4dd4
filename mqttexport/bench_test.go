package mqttexport

import (
	"testing"

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
