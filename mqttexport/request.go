package mqttexport

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
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

// filterFlows returns the flows of s that match the request's filter, as
// the screen's / filter would find them (enrich.Matcher). The result shares
// nothing mutable with s.
func filterFlows(s *conntrack.Snapshot, filter string, names enrich.Namer) *conntrack.Snapshot {
	q := enrich.ParseQuery(filter)
	if len(q) == 0 {
		return s
	}
	if names == nil {
		names = enrich.None{}
	}
	var m enrich.Matcher
	out := *s
	out.Flows = nil
	for _, f := range s.Flows {
		n := names.Names(f)
		if m.Match(f, &n, q) {
			out.Flows = append(out.Flows, f)
		}
	}
	return &out
}
