package enrich_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
	"github.com/flowtop/flowtop/enrich/enrichtest"
)

// namesFlows makes n flows with distinct sources and mostly distinct
// remotes, half IPv4 and half IPv6, like the screen's benchmarks.
func namesFlows(n int) []*conntrack.Flow {
	return conntrack.Pointers(enrichtest.Flows(n, rand.New(rand.NewPCG(1, 2))))
}

// BenchmarkNames measures one Names call for each of 100k flows, which is
// what the screen does on every refresh while a / filter is typed or the
// rows are sorted by a name: the cost of one build's lookups (ms/build).
// Each source alone, then all of them as flowtop runs by default; the DNS
// cache never resolves anything (no network) and GeoIP knows every
// global address. The first pass fills the caches, and it is not timed.
func BenchmarkNames(b *testing.B) {
	const n = 100_000
	flows := namesFlows(n)
	for _, c := range []struct {
		name  string
		procs bool
		pick  func(l *enrich.Lookups) *enrich.Lookups
	}{
		{"services", false, func(l *enrich.Lookups) *enrich.Lookups { return &enrich.Lookups{Services: l.Services} }},
		{"dns", false, func(l *enrich.Lookups) *enrich.Lookups { return &enrich.Lookups{DNS: l.DNS} }},
		{"geo", false, func(l *enrich.Lookups) *enrich.Lookups { return &enrich.Lookups{Geo: l.Geo} }},
		{"procs", true, func(l *enrich.Lookups) *enrich.Lookups { return &enrich.Lookups{Procs: l.Procs} }},
		{"all", true, func(l *enrich.Lookups) *enrich.Lookups { return l }},
		{"all-but-procs", false, func(l *enrich.Lookups) *enrich.Lookups { return l }},
	} {
		b.Run(c.name, func(b *testing.B) {
			l := c.pick(enrichtest.Lookups(b, enrichtest.Options{Procs: c.procs}))
			for _, f := range flows {
				l.Names(f)
			}
			time.Sleep(100 * time.Millisecond) // let the DNS failures land
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				for _, f := range flows {
					l.Names(f)
				}
			}
			b.ReportMetric(float64(b.Elapsed())/float64(b.N)/1e6, "ms/build")
			b.ReportMetric(float64(b.Elapsed())/float64(b.N)/n, "ns/flow")
		})
	}
}
