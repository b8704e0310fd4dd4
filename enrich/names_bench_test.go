package enrich_test

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
	"github.com/flowtop/flowtop/enrich/enrichtest"
)

// namesFlows makes n flows with distinct sources and mostly distinct
// remotes, half IPv4 and half IPv6, like the screen's benchmarks.
func namesFlows(n int) []*conntrack.Flow {
	r := rand.New(rand.NewPCG(1, 2))
	fs := make([]conntrack.Flow, n)
	for i := range fs {
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
		port := uint16(1024 + i%60000)
		fs[i] = conntrack.Flow{
			ID: uint32(i + 1), Family: fam, Proto: conntrack.ProtoTCP, State: 3,
			Orig:  conntrack.Tuple{Src: conntrack.AddrFrom(src), Dst: conntrack.AddrFrom(dst), SrcPort: port, DstPort: 443},
			Reply: conntrack.Tuple{Src: conntrack.AddrFrom(dst), Dst: conntrack.AddrFrom(src), SrcPort: 443, DstPort: port},
		}
	}
	return conntrack.Pointers(fs)
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
