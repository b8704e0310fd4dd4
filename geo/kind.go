package geo

import "strings"

// kind is what a database can answer, read from its database_type metadata.
type kind int

const (
	kindUnknown kind = iota
	kindCity         // country and city
	kindCountry      // country only
	kindASN          // autonomous system number and organisation
)

func (k kind) String() string {
	switch k {
	case kindCity:
		return "City"
	case kindCountry:
		return "Country"
	case kindASN:
		return "ASN"
	}
	return "unknown"
}

// kindOf classifies a database_type (or an edition name, which MaxMind
// uses as the database_type). The lists follow what geoip2-golang accepts for
// its City, Country and ASN methods.
func kindOf(dbType string) kind {
	switch dbType {
	case "GeoLite2-City", "GeoIP2-City", "GeoIP2-Precision-City", "GeoIP-City-Redacted-US",
		"DBIP-City-Lite", "DBIP-Location (compat=City)",
		"GeoIP2-Enterprise", "GeoIP-Enterprise-Redacted-US",
		"DBIP-ISP (compat=Enterprise)", "DBIP-Location-ISP (compat=Enterprise)":
		return kindCity
	case "GeoLite2-Country", "GeoIP2-Country", "DBIP-Country-Lite", "DBIP-Country":
		return kindCountry
	case "GeoLite2-ASN", "GeoIP2-ISP", "GeoIP2-Precision-ISP", "DBIP-ASN-Lite (compat=GeoLite2-ASN)":
		return kindASN
	}
	if strings.HasPrefix(dbType, "GeoIP2-City-") { // regional editions: GeoIP2-City-Europe, ...
		return kindCity
	}
	return kindUnknown
}
