package remote

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
	"github.com/flowtop/flowtop/report"
)

// TestDecodeRoundTrip: the document flowtop writes of a snapshot decodes
// back to the same flows (every field the screen reads) and the names the
// router sent, and the header to the same totals and health.
func TestDecodeRoundTrip(t *testing.T) {
	flows := synthFlows(40)
	snap := synthSnapshot(flows)
	doc := encodeDoc(t, snap, report.Options{Host: "router1", Names: synthNamer{}})

	p, err := decodeDocument(doc, 1000)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if p.Host != "router1" || !p.Time.Equal(docTime) || p.IntervalS != 1 || p.Parts != 0 {
		t.Errorf("header: host %q time %v interval %v parts %d", p.Host, p.Time, p.IntervalS, p.Parts)
	}
	want := report.Prepare(snap, report.Options{})
	if diff := cmp.Diff(want.Totals, p.Totals); diff != "" {
		t.Errorf("totals (-want +got):\n%s", diff)
	}
	if p.Health.Overruns != 2 || p.Health.UncountedFlows != 10 || !p.Health.Accounting {
		t.Errorf("health: %+v", p.Health)
	}
	if len(p.flows) != len(flows) || len(p.names) != len(flows) || p.skipped != 0 {
		t.Fatalf("%d flows, %d names, %d skipped (%s); want %d", len(p.flows), len(p.names), p.skipped, p.skipNote, len(flows))
	}
	byID := map[uint32]int{}
	for i, f := range p.flows {
		byID[f.ID] = i
	}
	for i := range flows {
		j, ok := byID[flows[i].ID]
		if !ok {
			t.Fatalf("flow %d missing", flows[i].ID)
		}
		if diff := cmp.Diff(flows[i], p.flows[j]); diff != "" {
			t.Fatalf("flow %d (-want +got):\n%s", flows[i].ID, diff)
		}
		if diff := cmp.Diff(synthNamer{}.Names(&flows[i]), p.names[j]); diff != "" {
			t.Fatalf("names of flow %d (-want +got):\n%s", flows[i].ID, diff)
		}
	}
}

// TestDecodeTolerant: keys in another order, whitespace, unknown keys,
// a missing reply tuple, proto by name only, a state this side does not
// know and unknown status names are read; a flow that cannot be read is
// skipped and said, not the document.
func TestDecodeTolerant(t *testing.T) {
	doc := `{ "flows": [
	  {"future": {"a": [1, "]"]}, "proto": "tcp", "family": "ipv4", "src": "192.0.2.1", "dst": "198.51.100.7",
	   "sport": 1, "dport": 443, "state": "STATE_42", "status": ["ASSURED", "NEW_BIT_2030"], "counted": true,
	   "orig": {"bytes": 5, "packets": 1, "bytes_per_s": 2.5}, "reply": {"bytes": null, "packets": null}, "start": null, "id": 9},
	  {"id": 10, "family": "ipx", "proto": "tcp", "src": "1.2.3.4", "dst": "1.2.3.5"},
	  {"id": 11, "family": "ipv4", "proto_num": 6, "src": "01.2.3.4", "dst": "1.2.3.5"},
	  {"id": 12, "family": "ipv6", "proto_num": 17, "src": "1.2.3.4", "dst": "::1"}
	 ],
	 "time": "2026-11-22T09:05:23Z", "version": 1, "newkey": true }`
	p, err := decodeDocument([]byte(doc), 100)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if len(p.flows) != 1 || p.skipped != 3 || !strings.Contains(p.skipNote, `flow 1: family "ipx" unknown`) {
		t.Fatalf("%d flows, %d skipped (%q); want 1 flow, 3 skipped, flow 1 named", len(p.flows), p.skipped, p.skipNote)
	}
	f := p.flows[0]
	if f.ID != 9 || f.Proto != conntrack.ProtoTCP || f.State != 42 || f.Status != conntrack.StatusAssured ||
		f.OrigCount.Bytes != 5 || f.OrigRate.Bytes != 2.5 || !f.Start.IsZero() || f.NAT() != conntrack.NATNone {
		t.Errorf("flow: %+v", f)
	}
	if p.names != nil {
		t.Errorf("names of unnamed flows: %v", p.names)
	}
}

// TestDecodeRefused: what makes a document unusable gives a one-line
// error that says what is wrong.
func TestDecodeRefused(t *testing.T) {
	many := `{"version":1,"time":"2026-11-22T09:05:23Z","flows":[` +
		strings.Repeat(`{"id":1,"family":"ipv4","proto":"udp","src":"10.0.0.1","dst":"10.0.0.2"},`, 20) +
		`{"id":1,"family":"ipv4","proto":"udp","src":"10.0.0.1","dst":"10.0.0.2"}]}`
	junk := `{"version":1,"time":"2026-11-22T09:05:23Z","flows":[` + strings.Repeat(`{},`, maxBadFlows+5) + `{}]}`
	for _, tc := range []struct {
		name, doc, want string
		budget          int
	}{
		{"not JSON", `{"version":1,`, "invalid JSON", 10},
		{"garbage", "\x00\x01binary", "invalid JSON at byte 1", 10},
		{"not an object", `[1,2]`, `JSON array`, 10},
		{"no version", `{"time":"2026-11-22T09:05:23Z","flows":[]}`, "no version key", 10},
		{"version 2", `{"version":2,"time":"2026-11-22T09:05:23Z","flows":[]}`, "document version 2, this flowtop reads version 1", 10},
		{"no time", `{"version":1,"flows":[]}`, "without a time", 10},
		{"wrong type", `{"version":1,"time":"2026-11-22T09:05:23Z","totals":{"flows":"many"}}`, `"totals.flows" holds a JSON string`, 10},
		{"flows not array", `{"version":1,"time":"2026-11-22T09:05:23Z","flows":{}}`, `"flows"`, 10},
		{"part 0 of 3", `{"version":1,"time":"2026-11-22T09:05:23Z","part":0,"parts":3,"flows":[]}`, "part 0 of 3", 10},
		{"part 5 of 3", `{"version":1,"time":"2026-11-22T09:05:23Z","part":5,"parts":3,"flows":[]}`, "part 5 of 3", 10},
		{"too many parts", `{"version":1,"time":"2026-11-22T09:05:23Z","part":1,"parts":100000,"flows":[]}`, "parts <= 4096", 10},
		{"over budget", many, "more flows than the viewer holds: room for 20 more", 20},
		{"junk flows", junk, "unreadable flows (first: flow 0:", 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeDocument([]byte(tc.doc), tc.budget)
			if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %v, want one line with %q", err, tc.want)
			}
		})
	}
}

// TestGunzipCap: a gzip body that inflates past the cap is refused
// without being inflated whole.
func TestGunzipCap(t *testing.T) {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(bytes.Repeat([]byte{' '}, 8<<20))
	zw.Close()
	if _, err := gunzip(buf.Bytes(), 1<<20); err == nil || !strings.Contains(err.Error(), "inflates past the 1 MiB limit") {
		t.Errorf("error %v, want the 1 MiB limit", err)
	}
	out, err := gunzip(buf.Bytes(), 8<<20)
	if err != nil || len(out) != 8<<20 {
		t.Errorf("at the limit: %d bytes, %v", len(out), err)
	}
	if _, err := gunzip([]byte("not gzip"), 1<<20); err == nil || !strings.HasPrefix(err.Error(), "gzip:") {
		t.Errorf("error %v, want gzip:", err)
	}
}

// TestParseAddr: the fast IPv4 path agrees with netip on what it takes
// and what it refuses.
func TestParseAddr(t *testing.T) {
	for _, s := range []string{"0.0.0.0", "192.0.2.1", "255.255.255.255", "256.1.1.1", "1.2.3", "1.2.3.4.5",
		"01.2.3.4", "1..2.3", "1.2.3.", "::1", "2001:db8::1", "::ffff:1.2.3.4", "fe80::1%eth0", "x", "1.2.3.4 "} {
		got, gerr := parseAddr([]byte(s))
		want, werr := netipParse(s)
		if got != want || (gerr == nil) != (werr == nil) {
			t.Errorf("%q: got %v, %v; netip %v, %v", s, got, gerr, want, werr)
		}
	}
}

var _ enrich.Namer = (*View)(nil)

func netipParse(s string) (netip.Addr, error) { return netip.ParseAddr(s) }

// TestNodeNames: what a topic level may hold but no router is called.
func TestNodeNames(t *testing.T) {
	for name, ok := range map[string]bool{
		"router1": true, "rüter 1 (lab)": true, "a.b-c_d": true, "🚀": true,
		"": false, "ctl\x01name": false, "nel\u0085": false, "del\x7f": false,
		strings.Repeat("n", 255): true, strings.Repeat("n", 256): false, "\xff": false,
	} {
		if err := checkNodeName(name); (err == nil) != ok {
			t.Errorf("%q: %v, want ok %v", name, err, ok)
		}
	}
}

// TestFastFlowAgrees: the hand-written reader fills a flow exactly as
// encoding/json does, on real documents' flows and on the shapes it must
// hand over (escapes, nulls, keys of a newer version, odd spacing).
func TestFastFlowAgrees(t *testing.T) {
	doc := encodeDoc(t, synthSnapshot(synthFlows(60)), report.Options{Names: synthNamer{}})
	var d struct{ Flows []json.RawMessage }
	if err := json.Unmarshal(doc, &d); err != nil {
		t.Fatal(err)
	}
	elems := d.Flows
	for _, e := range []string{
		`{"id":7,"family":"ipv4","proto":"tcp","src":"10.0.0.1","dst":"10.0.0.2","start":null,"orig":{"bytes":null,"packets":null,"bytes_per_s":1e-7},"labels":null}`,
		` { "id" : 8 , "family" : "ipv6" , "src" : "::1" , "dst" : "::2" , "future" : {"a":[1,{"b":"}"}]} , "status" : [ "ASSURED" , "DYING" ] , "counted" : true } `,
		`{"id":9,"family":"ipv4","src":"1.2.3.4","dst":"1.2.3.5","dst_name":"caf\u00e9.example","service":"a\"b"}`,
		`{"id":10,"sport":-1}`, `{"id":11,"sport":70000}`, `{"id":12,"mark":1.5}`, `{"id":13,"counted":"yes"}`,
		`{"id":14,"start":"not a time"}`, `{"id":15,"dst_geo":{"asn":64500,"country":"NL","x":null},"process":{"pid":1,"name":"init"}}`,
		`{"id":16,"process":{"pid":-1}}`, `{"id":17,"start":"2026-11-22T09:05:21.5+02:00","timeout_s":4294967295}`,
	} {
		elems = append(elems, json.RawMessage(e))
	}
	fast := 0
	for _, e := range elems {
		want := wireFlow{ProtoNum: noProtoNum}
		werr := json.Unmarshal(e, &want)
		got := wireFlow{ProtoNum: noProtoNum}
		gerr := fastFlow(e, &got, map[string]string{})
		if errors.Is(gerr, errSlow) {
			continue
		}
		fast++
		if (gerr == nil) != (werr == nil) || gerr == nil && !reflect.DeepEqual(got, want) {
			t.Errorf("%.120s:\nfast %+v, %v\njson %+v, %v", e, got, gerr, want, werr)
		}
	}
	if fast < 60 {
		t.Errorf("only %d of %d flows read the fast way", fast, len(elems))
	}
}
