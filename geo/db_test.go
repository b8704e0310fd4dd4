package geo_test

import (
	"crypto/rand"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/flowtop/flowtop/geo"
	"github.com/flowtop/flowtop/geo/geotest"
)

var (
	v4Info = geo.Info{Country: "DE", CountryName: "Germany", City: "Berlin"}
	v6Info = geo.Info{Country: "JP", CountryName: "Japan", City: "Tokyo"}
	v4b    = geo.Info{Country: "FR", CountryName: "France", City: "Paris"}

	cityRecs = map[string]geo.Info{
		"192.0.2.0/24":    v4Info,
		"198.51.100.0/24": v4b,
		"2001:db8::/32":   v6Info,
	}
	asnRecs = map[string]geo.Info{
		"192.0.2.0/24":    {ASN: 64496, ASOrg: "Example Transit"},
		"198.51.100.0/24": {ASN: 64497, ASOrg: "Example Hosting"},
		"2001:db8::/32":   {ASN: 64498, ASOrg: "Example Six"},
	}
)

func openT(t *testing.T, dirs ...string) (*geo.DB, []error) {
	t.Helper()
	db, errs := geo.Open(dirs)
	if db == nil {
		t.Fatal("Open returned a nil DB")
	}
	t.Cleanup(func() { db.Close() })
	return db, errs
}

func TestLookup(t *testing.T) {
	dir := t.TempDir()
	geotest.WriteCity(t, filepath.Join(dir, "GeoLite2-City.mmdb"), cityRecs)
	geotest.WriteASN(t, filepath.Join(dir, "GeoLite2-ASN.mmdb"), asnRecs)
	db, errs := openT(t, dir)
	if len(errs) != 0 {
		t.Fatalf("Open: %v", errs)
	}
	if !db.Available() {
		t.Fatal("Available() = false")
	}
	wantFiles := []string{filepath.Join(dir, "GeoLite2-City.mmdb"), filepath.Join(dir, "GeoLite2-ASN.mmdb")}
	if diff := cmp.Diff(wantFiles, db.Files()); diff != "" {
		t.Errorf("Files() (-want +got):\n%s", diff)
	}

	tests := []struct {
		addr string
		want geo.Info
	}{
		{"192.0.2.1", geo.Info{"DE", "Germany", "Berlin", 64496, "Example Transit"}},
		{"192.0.2.255", geo.Info{"DE", "Germany", "Berlin", 64496, "Example Transit"}},
		{"198.51.100.7", geo.Info{"FR", "France", "Paris", 64497, "Example Hosting"}},
		{"::ffff:198.51.100.7", geo.Info{"FR", "France", "Paris", 64497, "Example Hosting"}},
		{"2001:db8::1", geo.Info{"JP", "Japan", "Tokyo", 64498, "Example Six"}},
		{"2001:db8:ffff::1%eth0", geo.Info{"JP", "Japan", "Tokyo", 64498, "Example Six"}},
		{"203.0.113.9", geo.Info{}}, // in no database
		{"2001:db9::1", geo.Info{}}, // in no database
		{"10.1.2.3", geo.Info{}},    // private
		{"127.0.0.1", geo.Info{}},   // loopback
		{"fe80::1", geo.Info{}},     // link-local
		{"::", geo.Info{}},          // unspecified
		{"ff02::1", geo.Info{}},     // multicast
		{"::ffff:10.0.0.1", geo.Info{}},
	}
	for _, tt := range tests {
		for pass := range 2 { // the second pass is answered by the cache
			got := db.Lookup(netip.MustParseAddr(tt.addr))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Lookup(%s) pass %d (-want +got):\n%s", tt.addr, pass, diff)
			}
		}
	}
	if got := db.Lookup(netip.Addr{}); got.Known() {
		t.Errorf("Lookup(invalid) = %+v, want zero", got)
	}
}

func TestCityPreferredOverCountry(t *testing.T) {
	first, second := t.TempDir(), t.TempDir()
	// The Country database is in the first directory, the City database in
	// the second: City still wins because it knows more.
	geotest.WriteCountry(t, filepath.Join(first, "GeoLite2-Country.mmdb"), cityRecs)
	geotest.WriteCity(t, filepath.Join(second, "GeoLite2-City.mmdb"), cityRecs)
	db, errs := openT(t, first, second)
	if len(errs) != 0 {
		t.Fatalf("Open: %v", errs)
	}
	if diff := cmp.Diff([]string{filepath.Join(second, "GeoLite2-City.mmdb")}, db.Files()); diff != "" {
		t.Errorf("Files() (-want +got):\n%s", diff)
	}
	if got := db.Lookup(netip.MustParseAddr("192.0.2.1")); got != v4Info {
		t.Errorf("Lookup = %+v, want %+v", got, v4Info)
	}
}

func TestCountryOnly(t *testing.T) {
	dir := t.TempDir()
	geotest.WriteCountry(t, filepath.Join(dir, "GeoLite2-Country.mmdb"), cityRecs)
	db, errs := openT(t, dir)
	if len(errs) != 0 {
		t.Fatalf("Open: %v", errs)
	}
	want := geo.Info{Country: "JP", CountryName: "Japan"}
	if got := db.Lookup(netip.MustParseAddr("2001:db8::2")); got != want {
		t.Errorf("Lookup = %+v, want %+v", got, want)
	}
}

func TestDirOrder(t *testing.T) {
	first, second := t.TempDir(), t.TempDir()
	geotest.WriteCity(t, filepath.Join(first, "GeoLite2-City.mmdb"), map[string]geo.Info{"192.0.2.0/24": v4b})
	geotest.WriteCity(t, filepath.Join(second, "GeoLite2-City.mmdb"), cityRecs)
	db, _ := openT(t, first, second)
	if got := db.Lookup(netip.MustParseAddr("192.0.2.1")); got != v4b {
		t.Errorf("Lookup = %+v, want the first directory's %+v", got, v4b)
	}
}

func TestDBIPNames(t *testing.T) {
	dir := t.TempDir()
	old := map[string]geo.Info{"192.0.2.0/24": v4b}
	geotest.WriteCity(t, filepath.Join(dir, "dbip-city-lite-2024-01.mmdb"), old)
	geotest.WriteCity(t, filepath.Join(dir, "dbip-city-lite-2024-06.mmdb"), cityRecs)
	db, errs := openT(t, dir)
	if len(errs) != 0 {
		t.Fatalf("Open: %v", errs)
	}
	if got := db.Lookup(netip.MustParseAddr("192.0.2.1")); got != v4Info {
		t.Errorf("Lookup = %+v, want the newest file's %+v", got, v4Info)
	}
}

func TestBadFiles(t *testing.T) {
	good := geotest.Build(t, geotest.City, cityRecs)
	junk := make([]byte, 4096)
	rand.Read(junk)
	tests := []struct {
		name    string
		content []byte
		want    string // in the error
	}{
		{"random", junk, "invalid MaxMind DB"},
		{"truncated", good[:len(good)/2], "invalid MaxMind DB"},
		{"empty", nil, "invalid MaxMind DB"},
		{"wrong type", geotest.Build(t, geotest.ASN, asnRecs), `database type "GeoLite2-ASN" is not a City or Country database`},
		{"unknown type", geotest.Build(t, "Acme-Weather", cityRecs), `unsupported database type "Acme-Weather"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			bad := filepath.Join(dir, "GeoLite2-City.mmdb")
			if err := os.WriteFile(bad, tt.content, 0o644); err != nil {
				t.Fatal(err)
			}
			geotest.WriteASN(t, filepath.Join(dir, "GeoLite2-ASN.mmdb"), asnRecs)
			db, errs := openT(t, dir)
			if len(errs) != 1 {
				t.Fatalf("Open: got errors %v, want one", errs)
			}
			msg := errs[0].Error()
			if !strings.HasPrefix(msg, "geoip: "+bad+": ") || !strings.Contains(msg, tt.want) || strings.Contains(msg, "\n") {
				t.Errorf("error = %q, want one line naming %s and saying %q", msg, bad, tt.want)
			}
			// The ASN database still answers.
			want := geo.Info{ASN: 64496, ASOrg: "Example Transit"}
			if got := db.Lookup(netip.MustParseAddr("192.0.2.1")); got != want {
				t.Errorf("Lookup = %+v, want %+v", got, want)
			}
			if diff := cmp.Diff([]string{filepath.Join(dir, "GeoLite2-ASN.mmdb")}, db.Files()); diff != "" {
				t.Errorf("Files() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestBadCityFallsBackToCountry(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "GeoLite2-City.mmdb"), []byte("not a database"), 0o644); err != nil {
		t.Fatal(err)
	}
	geotest.WriteCountry(t, filepath.Join(dir, "GeoLite2-Country.mmdb"), cityRecs)
	db, errs := openT(t, dir)
	if len(errs) != 1 {
		t.Fatalf("Open: got errors %v, want one for the City file", errs)
	}
	if got := db.Lookup(netip.MustParseAddr("192.0.2.1")); got.Country != "DE" {
		t.Errorf("Lookup = %+v, want the Country database's answer", got)
	}
}

func TestNoDatabase(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "nope")
	empty := t.TempDir()
	db, errs := openT(t, missing, empty)
	if len(errs) != 1 || !errors.Is(errs[0], geo.ErrNoDatabase) {
		t.Fatalf("Open: errors %v, want one wrapping ErrNoDatabase", errs)
	}
	want := "geoip: no database in " + missing + ", " + empty + " (flowtop -u downloads them, -G silences this)"
	if got := errs[0].Error(); got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
	if db.Available() || len(db.Files()) != 0 {
		t.Errorf("Available() = %v, Files() = %v; want false, none", db.Available(), db.Files())
	}
	if got := db.Lookup(netip.MustParseAddr("192.0.2.1")); got.Known() {
		t.Errorf("Lookup = %+v, want zero", got)
	}
}

func TestDefaultDirs(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", []string{"/usr/share/GeoIP", "/var/lib/GeoIP"}},
		{"/opt/geo/", []string{"/opt/geo", "/usr/share/GeoIP", "/var/lib/GeoIP"}},
		{"/var/lib/GeoIP", []string{"/var/lib/GeoIP", "/usr/share/GeoIP"}},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, geo.DefaultDirs(tt.in)); diff != "" {
			t.Errorf("DefaultDirs(%q) (-want +got):\n%s", tt.in, diff)
		}
	}
}

func TestConcurrentLookupAndClose(t *testing.T) {
	dir := t.TempDir()
	geotest.WriteCity(t, filepath.Join(dir, "GeoLite2-City.mmdb"), cityRecs)
	geotest.WriteASN(t, filepath.Join(dir, "GeoLite2-ASN.mmdb"), asnRecs)
	db, _ := openT(t, dir)
	addrs := []netip.Addr{
		netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.2"),
		netip.MustParseAddr("2001:db8::3"), netip.MustParseAddr("203.0.113.4"),
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				a := addrs[(g+i)%len(addrs)]
				if got := db.Lookup(a); got.Known() && got.ASN == 0 {
					t.Errorf("Lookup(%s) = %+v: torn result", a, got)
					return
				}
			}
		})
	}
	wg.Go(func() { db.Close() })
	wg.Wait()
	if err := db.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if got := db.Lookup(addrs[0]); got.Known() || db.Available() {
		t.Errorf("after Close: Lookup = %+v, Available = %v", got, db.Available())
	}
}
