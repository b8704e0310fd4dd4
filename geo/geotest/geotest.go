// Package geotest builds small MaxMind .mmdb databases for tests, so that
// tests of geo and of the packages using it never need a real GeoLite2 file.
//
// Records are given as a map from a network ("192.0.2.0/24", "2001:db8::/32",
// or a single address) to the geo.Info the database should return for it.
// Documentation and reserved networks are allowed.
package geotest

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"sort"
	"testing"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"

	"github.com/flowtop/flowtop/geo"
)

// Database types written by the helpers; they are the ones MaxMind uses.
const (
	City    = "GeoLite2-City"
	Country = "GeoLite2-Country"
	ASN     = "GeoLite2-ASN"
)

// WriteCity writes a GeoLite2-City database with the country, country name
// and city of each record to path.
func WriteCity(t testing.TB, path string, recs map[string]geo.Info) {
	t.Helper()
	write(t, path, Build(t, City, recs))
}

// WriteCountry writes a GeoLite2-Country database (country and country name,
// no city) to path.
func WriteCountry(t testing.TB, path string, recs map[string]geo.Info) {
	t.Helper()
	write(t, path, Build(t, Country, recs))
}

// WriteASN writes a GeoLite2-ASN database (ASN and organisation) to path.
func WriteASN(t testing.TB, path string, recs map[string]geo.Info) {
	t.Helper()
	write(t, path, Build(t, ASN, recs))
}

// Build returns the bytes of a database of type dbType (City, Country, ASN or
// any other type name, which is then written with the City layout). Fields
// that do not belong to the type are left out, as in the real databases.
func Build(t testing.TB, dbType string, recs map[string]geo.Info) []byte {
	t.Helper()
	tree, err := mmdbwriter.New(mmdbwriter.Options{
		DatabaseType:            dbType,
		Description:             map[string]string{"en": "flowtop test database"},
		Languages:               []string{"en"},
		IncludeReservedNetworks: true,
		RecordSize:              24,
	})
	if err != nil {
		t.Fatalf("geotest: new %s tree: %v", dbType, err)
	}
	// Insert in a fixed order so that overlapping networks behave the same
	// on every run (a later, more specific insert wins).
	keys := make([]string, 0, len(recs))
	for k := range recs {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		return prefix(t, keys[i]).Bits() < prefix(t, keys[j]).Bits()
	})
	for _, k := range keys {
		p := prefix(t, k)
		ipnet := &net.IPNet{
			IP:   p.Addr().AsSlice(),
			Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen()),
		}
		if err := tree.Insert(ipnet, record(dbType, recs[k])); err != nil {
			t.Fatalf("geotest: insert %s into %s: %v", k, dbType, err)
		}
	}
	var buf bytes.Buffer
	if _, err := tree.WriteTo(&buf); err != nil {
		t.Fatalf("geotest: write %s: %v", dbType, err)
	}
	return buf.Bytes()
}

func record(dbType string, in geo.Info) mmdbtype.Map {
	m := mmdbtype.Map{}
	if dbType == ASN || dbType == "GeoIP2-ISP" {
		if in.ASN != 0 {
			m["autonomous_system_number"] = mmdbtype.Uint32(in.ASN)
		}
		if in.ASOrg != "" {
			m["autonomous_system_organization"] = mmdbtype.String(in.ASOrg)
		}
		return m
	}
	country := mmdbtype.Map{}
	if in.Country != "" {
		country["iso_code"] = mmdbtype.String(in.Country)
	}
	if in.CountryName != "" {
		country["names"] = mmdbtype.Map{"en": mmdbtype.String(in.CountryName)}
	}
	if len(country) > 0 {
		m["country"] = country
	}
	if in.City != "" && dbType != Country {
		m["city"] = mmdbtype.Map{"names": mmdbtype.Map{"en": mmdbtype.String(in.City)}}
	}
	return m
}

func prefix(t testing.TB, s string) netip.Prefix {
	t.Helper()
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked()
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatalf("geotest: %q is neither a network nor an address", s)
	}
	return netip.PrefixFrom(a, a.BitLen())
}

func write(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatalf("geotest: %v", err)
	}
}
