// Package geo looks up the country, city and autonomous system of an
// address in MaxMind .mmdb databases (City, Country and ASN).
package geo

// Info is what the databases know about one address. The zero value means
// nothing is known.
type Info struct {
	Country     string // ISO 3166-1 alpha-2 code, "DE"
	CountryName string // English name, "Germany"
	City        string // English name
	ASN         uint   // autonomous system number, 0 when unknown
	ASOrg       string // autonomous system organisation
}

// Known reports whether any field is set.
func (i Info) Known() bool { return i != Info{} }
