// Package enrichtest builds an enrich.Lookups for benchmarks and tests
// that costs what flowtop's does: the service maps flowtop loads, a reverse
// DNS cache, GeoIP databases and, when asked, the process finder. No query
// ever leaves the machine: the DNS cache's resolver fails every lookup
// without dialling, so every address ends up as a negative entry, as on a
// host whose remotes have no PTR records.
package enrichtest

import (
	"context"
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
	"github.com/flowtop/flowtop/geo"
	"github.com/flowtop/flowtop/geo/geotest"
	"github.com/flowtop/flowtop/procs"
	"github.com/flowtop/flowtop/rdns"
	"github.com/flowtop/flowtop/services"
)

// Options says which sources Lookups starts.
type Options struct {
	// Procs starts a procs.Finder in the caller's network namespace (it
	// needs root). Flows made up by a benchmark have no socket: each is
	// looked up and retried, as a real new flow is looked up once.
	Procs bool
}

// Lookups returns the enrichment flowtop runs with by default; everything
// it started is released when tb ends. GeoIP covers 0.0.0.0/0 and
// 2000::/3 (every global address has a country and an AS), with a few
// more specific networks.
func Lookups(tb testing.TB, o Options) *enrich.Lookups {
	tb.Helper()
	l := &enrich.Lookups{}
	l.Services = services.Load("", nil)

	dns := rdns.New(rdns.Config{Resolver: &net.Resolver{
		PreferGo: true,
		Dial: func(context.Context, string, string) (net.Conn, error) {
			return nil, errors.New("enrichtest: no network")
		},
	}})
	tb.Cleanup(dns.Close)
	l.DNS = dns

	dir := tb.TempDir()
	nl := geo.Info{Country: "NL", CountryName: "Netherlands", City: "Amsterdam", ASN: 64500, ASOrg: "Example NL"}
	de := geo.Info{Country: "DE", CountryName: "Germany", City: "Berlin", ASN: 64501, ASOrg: "Example DE"}
	us := geo.Info{Country: "US", CountryName: "United States", City: "Chicago", ASN: 64502, ASOrg: "Example US"}
	recs := map[string]geo.Info{
		"0.0.0.0/0": us, "2000::/3": de,
		"1.0.0.0/8": nl, "100.0.0.0/8": de, "200.0.0.0/8": nl,
		"2001:db8::/32": de, "2001:db8:0:1::/64": nl,
	}
	geotest.WriteCity(tb, filepath.Join(dir, "GeoLite2-City.mmdb"), recs)
	geotest.WriteASN(tb, filepath.Join(dir, "GeoLite2-ASN.mmdb"), recs)
	db, errs := geo.Open([]string{dir})
	if len(errs) > 0 || !db.Available() {
		tb.Fatalf("enrichtest: geo: %v", errs)
	}
	tb.Cleanup(func() { db.Close() })
	l.Geo = db

	if o.Procs {
		f, err := procs.New(procs.Config{})
		if err != nil {
			tb.Fatalf("enrichtest: procs: %v", err)
		}
		tb.Cleanup(func() { f.Close() })
		l.Procs = f
	}
	return l
}

// Flows makes n TCP flows to port 443 with distinct local sources and
// mostly distinct remotes (random, from r), half IPv4 and half IPv6: what
// the screen's and the lookups' benchmarks run on. IDs count from 1.
func Flows(n int, r *rand.Rand) []conntrack.Flow {
	fs := make([]conntrack.Flow, n)
	for i := range fs {
		var src, dst netip.Addr
		fam := conntrack.IPv4
		if i%2 == 0 {
			src = netip.AddrFrom4([4]byte{192, 168, byte(i >> 8), byte(i)})
			dst = netip.AddrFrom4([4]byte{byte(1 + r.IntN(220)), byte(r.IntN(256)), byte(r.IntN(256)), byte(r.IntN(256))})
		} else {
			fam = conntrack.IPv6
			src = netip.AddrFrom16([16]byte{0xfd, 14: byte(i >> 8), 15: byte(i)})
			dst = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(r.IntN(256)), 15: byte(r.IntN(256))})
		}
		port := uint16(1024 + i%60000)
		fs[i] = conntrack.Flow{
			ID: uint32(i + 1), Family: fam, Proto: conntrack.ProtoTCP, State: 3,
			Orig:  conntrack.Tuple{Src: conntrack.AddrFrom(src), Dst: conntrack.AddrFrom(dst), SrcPort: port, DstPort: 443},
			Reply: conntrack.Tuple{Src: conntrack.AddrFrom(dst), Dst: conntrack.AddrFrom(src), SrcPort: 443, DstPort: port},
		}
	}
	return fs
}
