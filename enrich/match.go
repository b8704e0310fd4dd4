package enrich

import (
	"net/netip"
	"strconv"
	"strings"

	"github.com/flowtop/flowtop/conntrack"
)

// Matcher tests flows against a Query: the screen's / filter and the
// "filter" of an MQTT request, so that both find the same flows. Its buffer
// is reused so matching allocates nothing; a Matcher is not safe for
// concurrent use (make one per goroutine: the zero value is ready).
type Matcher struct{ buf []byte }

// Match reports whether every word of q occurs (case-insensitively) in one
// of the flow's fields: addresses of both tuples, protocol, state, service,
// names, process, user, country, city and AS. A word of digits matches a
// port or PID whole ("22" is port 22, not 2222); "=word" matches a field
// whole. n holds the flow's names (the zero Names when none are known).
func (m *Matcher) Match(f *conntrack.Flow, n *Names, q Query) bool {
	for _, t := range q {
		if !m.matchTerm(f, n, t) {
			return false
		}
	}
	return true
}

func (m *Matcher) matchTerm(f *conntrack.Flow, n *Names, t string) bool {
	exact := len(t) > 1 && t[0] == '='
	if exact {
		t = t[1:]
	}
	test := func(s []byte) bool {
		if exact {
			return len(s) == len(t) && containsFold(s, t)
		}
		return containsFold(s, t)
	}
	for _, s := range [...]string{
		f.Proto.String(), f.StateName(), n.Service, n.SrcService, n.SrcName, n.DstName,
		n.Process.Name, n.Process.User, n.SrcGeo.Country, n.SrcGeo.CountryName,
		n.DstGeo.Country, n.DstGeo.CountryName, n.SrcGeo.City, n.DstGeo.City,
		n.SrcGeo.ASOrg, n.DstGeo.ASOrg,
	} {
		if exact && len(s) == len(t) && containsFold(s, t) || !exact && containsFold(s, t) {
			return true
		}
	}
	if !addrText(t) {
		return numeric(t) && m.matchNumbers(f, n, t)
	}
	for i, a := range [...]netip.Addr{f.Orig.Src.IP(), f.Orig.Dst.IP(), f.Reply.Src.IP(), f.Reply.Dst.IP()} {
		// Without NAT the reply tuple holds the same two addresses.
		if i == 2 && a == f.Orig.Dst.IP() || i == 3 && a == f.Orig.Src.IP() {
			continue
		}
		if a.IsValid() {
			m.buf = a.Unmap().AppendTo(m.buf[:0])
			if test(m.buf) {
				return true
			}
		}
	}
	return numeric(t) && m.matchNumbers(f, n, t)
}

// addrText reports whether t may occur in an address's text: hex digits,
// dots and colons only (and not empty). Other terms need not format the
// addresses.
func addrText(t string) bool {
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || c == '.' || c == ':') {
			return false
		}
	}
	return t != ""
}

// numeric reports whether t is digits only: a port or PID may be it.
func numeric(t string) bool {
	for i := 0; i < len(t); i++ {
		if t[i] < '0' || t[i] > '9' {
			return false
		}
	}
	return t != ""
}

// matchNumbers reports whether t is one of the ports or the PID of f:
// numbers match whole, "22" finds port 22, not 2222.
func (m *Matcher) matchNumbers(f *conntrack.Flow, n *Names, t string) bool {
	if f.Proto.HasPorts() {
		for _, p := range [...]uint16{f.Orig.SrcPort, f.Orig.DstPort, f.Reply.SrcPort, f.Reply.DstPort} {
			m.buf = strconv.AppendUint(m.buf[:0], uint64(p), 10)
			if string(m.buf) == t {
				return true
			}
		}
	}
	if pid := n.Process.PID; pid != 0 {
		m.buf = strconv.AppendUint(m.buf[:0], uint64(pid), 10)
		if string(m.buf) == t {
			return true
		}
	}
	return false
}

// containsFold reports whether s contains t, ignoring ASCII case; t is
// lower case.
func containsFold[S ~string | ~[]byte](s S, t string) bool {
	if len(t) == 0 {
		return true
	}
	for i := 0; i+len(t) <= len(s); i++ {
		j := 0
		for ; j < len(t); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != t[j] {
				break
			}
		}
		if j == len(t) {
			return true
		}
	}
	return false
}

// Query is a parsed filter: lower-cased words, all of which must match.
// The empty Query matches every flow.
type Query []string

// ParseQuery splits a filter into its words.
func ParseQuery(s string) Query {
	return strings.Fields(strings.ToLower(s))
}
