package report

import "net/netip"

// addrString prints an address without a zone or IPv4-mapped form, and ""
// for the invalid address.
func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.Unmap().String()
}
