package mqttexport

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
)

// Bounds on the fields of a request, so a hostile body cannot make a reply
// or a filter expensive.
const (
	maxRequestID = 128
	maxFilter    = 256
)

// request is a parsed poll. The zero value is a plain poll: a snapshot as
// the periodic one.
type request struct {
	ID     string
	Limit  int
	Filter string
}

var errMalformed = errors.New("malformed request")

// parseRequest reads a poll body. An empty or non-JSON-object body (say
// "RETV") is a plain poll; a body that starts with '{' must be a JSON
// object whose known keys have the right types:
//
//	{"id": "abc" or 42, "limit": 10, "filter": "ssh"}
//
// Unknown keys are ignored so clients may send more than this version
// reads.
func parseRequest(body []byte) (request, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return request{}, nil
	}
	var raw struct {
		ID     json.RawMessage `json:"id"`
		Limit  *int            `json:"limit"`
		Filter *string         `json:"filter"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return request{}, fmt.Errorf("%w: %v", errMalformed, err)
	}
	var r request
	if len(raw.ID) > 0 && string(raw.ID) != "null" {
		var s string
		if err := json.Unmarshal(raw.ID, &s); err == nil {
			r.ID = s
		} else if _, err := strconv.ParseFloat(string(raw.ID), 64); err == nil {
			r.ID = string(raw.ID) // a number, echoed as written
		} else {
			return request{}, fmt.Errorf("%w: id must be a string or a number", errMalformed)
		}
		if len(r.ID) > maxRequestID || !utf8.ValidString(r.ID) {
			return request{}, fmt.Errorf("%w: id longer than %d bytes", errMalformed, maxRequestID)
		}
	}
	if raw.Limit != nil {
		if *raw.Limit < 0 {
			return request{}, fmt.Errorf("%w: negative limit", errMalformed)
		}
		r.Limit = *raw.Limit
	}
	if raw.Filter != nil {
		if len(*raw.Filter) > maxFilter {
			return request{}, fmt.Errorf("%w: filter longer than %d bytes", errMalformed, maxFilter)
		}
		r.Filter = strings.TrimSpace(*raw.Filter)
	}
	return r, nil
}

// filterFlows returns the flows of s that match the request's filter: a
// case-insensitive substring of an address, a name, a port, a service, a
// process, a country, the state or the protocol of the flow. The result
// shares nothing mutable with s.
func filterFlows(s *conntrack.Snapshot, filter string, names enrich.Namer) *conntrack.Snapshot {
	if filter == "" {
		return s
	}
	needle := strings.ToLower(filter)
	out := *s
	out.Flows = nil
	for _, f := range s.Flows {
		if flowMatches(f, needle, names) {
			out.Flows = append(out.Flows, f)
		}
	}
	return &out
}

func flowMatches(f *conntrack.Flow, needle string, names enrich.Namer) bool {
	has := func(s string) bool { return s != "" && strings.Contains(strings.ToLower(s), needle) }
	for _, a := range [...]string{
		addr(f.Orig.Src.IP()), addr(f.Orig.Dst.IP()), addr(f.Reply.Src.IP()), addr(f.Reply.Dst.IP()),
		f.StateName(), f.Proto.String(),
	} {
		if has(a) {
			return true
		}
	}
	if f.Proto.HasPorts() {
		for _, p := range [...]uint16{f.Orig.SrcPort, f.Orig.DstPort, f.Reply.SrcPort, f.Reply.DstPort} {
			if has(strconv.Itoa(int(p))) {
				return true
			}
		}
	}
	if names == nil {
		return false
	}
	n := names.Names(f)
	for _, s := range [...]string{
		n.Service, n.SrcService, n.SrcName, n.DstName,
		n.SrcGeo.Country, n.SrcGeo.CountryName, n.SrcGeo.City, n.SrcGeo.ASOrg,
		n.DstGeo.Country, n.DstGeo.CountryName, n.DstGeo.City, n.DstGeo.ASOrg,
		n.Process.Name, n.Process.User,
	} {
		if has(s) {
			return true
		}
	}
	return n.Process.PID != 0 && has(strconv.Itoa(n.Process.PID))
}

func addr(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.Unmap().String()
}
