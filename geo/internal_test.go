package geo

import (
	"errors"
	"net/netip"
	"testing"
)

func TestCacheBounded(t *testing.T) {
	c := newCache(100)
	hot := netip.MustParseAddr("192.0.2.1")
	c.put(hot, Info{Country: "DE"})
	for i := range 1000 {
		c.put(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), Info{ASN: uint(i)})
		if _, ok := c.get(hot); !ok {
			t.Fatalf("after %d inserts the address in use was evicted", i)
		}
		if n := c.len(); n > 100 {
			t.Fatalf("after %d inserts the cache holds %d entries, want <= 100", i, n)
		}
	}
	if _, ok := c.get(netip.AddrFrom4([4]byte{10, 0, 0, 1})); ok {
		t.Error("an address unused for 999 inserts is still cached")
	}
	c.clear()
	if c.len() != 0 {
		t.Errorf("len after clear = %d", c.len())
	}
}

func TestRedactedError(t *testing.T) {
	inner := errors.New("GET https://x/?k=abc%2B1 and abc+1")
	err := redactedError{inner, []string{"abc+1", "abc%2B1"}}
	if got, want := err.Error(), "GET https://x/?k=REDACTED and REDACTED"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, inner) {
		t.Error("the chain is lost")
	}
}

func TestKindOf(t *testing.T) {
	tests := map[string]kind{
		"GeoLite2-City": kindCity, "GeoIP2-City-Europe": kindCity, "DBIP-City-Lite": kindCity,
		"GeoLite2-Country": kindCountry, "DBIP-Country-Lite": kindCountry,
		"GeoLite2-ASN": kindASN, "GeoIP2-ISP": kindASN, "DBIP-ASN-Lite (compat=GeoLite2-ASN)": kindASN,
		"GeoIP2-Domain": kindUnknown, "": kindUnknown,
	}
	for in, want := range tests {
		if got := kindOf(in); got != want {
			t.Errorf("kindOf(%q) = %v, want %v", in, got, want)
		}
	}
}
