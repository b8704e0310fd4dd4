package mqttexport

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/google/go-cmp/cmp"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
	"github.com/flowtop/flowtop/export"
	"github.com/flowtop/flowtop/report"
)

func gunzip(b []byte) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	_, err = out.ReadFrom(zr)
	return out.Bytes(), err
}

func TestParseRequest(t *testing.T) {
	for _, tc := range []struct {
		body string
		want request
		bad  bool
	}{
		{body: "", want: request{}},
		{body: "RETV", want: request{}},
		{body: "1", want: request{}},
		{body: `{}`, want: request{}},
		{body: ` {"id":"a1","limit":10,"filter":" ssh "} `, want: request{ID: "a1", Limit: 10, Filter: "ssh"}},
		{body: `{"id":17}`, want: request{ID: "17"}},
		{body: `{"id":null,"extra":[1,2]}`, want: request{}},
		{body: `{"id":`, bad: true},
		{body: `{"id":true}`, bad: true},
		{body: `{"id":{"x":1}}`, bad: true},
		{body: `{"limit":"10"}`, bad: true},
		{body: `{"limit":-1}`, bad: true},
		{body: `{"limit":1.5}`, bad: true},
		{body: `{"filter":7}`, bad: true},
		{body: `{"id":"` + strings.Repeat("x", maxRequestID+1) + `"}`, bad: true},
		{body: `{"filter":"` + strings.Repeat("x", maxFilter+1) + `"}`, bad: true},
		{body: `{"a":1}{"b":2}`, bad: true},
	} {
		got, err := parseRequest([]byte(tc.body))
		if tc.bad {
			if !errors.Is(err, errMalformed) {
				t.Errorf("parseRequest(%.40q) = %+v, %v; want malformed", tc.body, got, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("parseRequest(%.40q): %v", tc.body, err)
		} else if diff := cmp.Diff(tc.want, got, cmp.AllowUnexported(request{})); diff != "" {
			t.Errorf("parseRequest(%.40q) (-want +got):\n%s", tc.body, diff)
		}
	}
}

func TestFilterFlows(t *testing.T) {
	snap := testSnapshot(5)
	ids := func(s *conntrack.Snapshot) []uint32 {
		var out []uint32
		for _, f := range s.Flows {
			out = append(out, f.ID)
		}
		return out
	}
	for _, tc := range []struct {
		filter string
		want   []uint32
	}{
		{"", []uint32{1, 2, 3, 4, 5}},
		{"ssh", []uint32{1}},                     // service, through the namer
		{"HTTPS", []uint32{2, 3, 4, 5}},          // case-insensitive
		{"203.0.113.4", []uint32{4}},             // original destination
		{"198.51.100", []uint32{1, 2, 3, 4, 5}},  // NAT address in the reply tuple
		{"40002", []uint32{3}},                   // a port
		{"established", []uint32{1, 2, 3, 4, 5}}, // the state
		{"nothing-matches", nil},
	} {
		got := filterFlows(snap, tc.filter, portNamer{})
		if diff := cmp.Diff(tc.want, ids(got)); diff != "" {
			t.Errorf("filter %q (-want +got):\n%s", tc.filter, diff)
		}
	}
	if len(snap.Flows) != 5 {
		t.Error("filterFlows modified the snapshot")
	}
}

func TestPack(t *testing.T) {
	got := pack([]int{3, 3, 3, 10, 1, 1}, 6)
	want := [][2]int{{0, 2}, {2, 3}, {3, 4}, {4, 6}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("pack (-want +got):\n%s", diff)
	}
}

func TestEncoderSplit(t *testing.T) {
	for _, gz := range []bool{false, true} {
		d := report.Prepare(testSnapshot(300), report.Options{Host: "h"})
		d.RequestID = "r"
		enc := encoder{max: 8 << 10, gz: gz}
		bodies, oversize, err := enc.document(d)
		if err != nil || oversize {
			t.Fatalf("gzip %v: %v, oversize %v", gz, err, oversize)
		}
		if len(bodies) < 2 {
			t.Fatalf("gzip %v: %d bodies, want a split", gz, len(bodies))
		}
		seen := map[uint32]bool{}
		flowsBefore := 0
		for i, b := range bodies {
			if len(b) > enc.max {
				t.Errorf("gzip %v: part %d is %d bytes", gz, i+1, len(b))
			}
			if gz {
				if b, err = gunzip(b); err != nil {
					t.Fatal(err)
				}
			}
			var p report.Document
			if err := json.Unmarshal(b, &p); err != nil {
				t.Fatal(err)
			}
			if p.Part != i+1 || p.Parts != len(bodies) || p.RequestID != "r" || p.Totals.Flows != 300 {
				t.Errorf("gzip %v: part %d: part %d/%d request %q totals %d", gz, i+1, p.Part, p.Parts, p.RequestID, p.Totals.Flows)
			}
			// The very bytes encoding/json makes of the part's document.
			want := d.Full()
			want.Part, want.Parts = p.Part, p.Parts
			want.Flows = want.Flows[flowsBefore : flowsBefore+len(p.Flows)]
			if wb, _ := json.Marshal(want); !bytes.Equal(b, wb) {
				t.Errorf("gzip %v: part %d differs from encoding/json of its document", gz, i+1)
			}
			flowsBefore += len(p.Flows)
			for _, f := range p.Flows {
				seen[f.ID] = true
			}
		}
		if len(seen) != 300 {
			t.Errorf("gzip %v: %d distinct flows in the parts, want 300", gz, len(seen))
		}
	}
	// Small enough: one body without part numbers.
	d := report.Prepare(testSnapshot(2), report.Options{})
	bodies, _, _ := encoder{max: 1 << 20}.document(d)
	if len(bodies) != 1 || bytes.Contains(bodies[0], []byte(`"part"`)) {
		t.Errorf("small document: %d bodies: %.100s", len(bodies), bodies[0])
	}
	if want, _ := json.Marshal(d.Full()); !bytes.Equal(bodies[0], want) {
		t.Errorf("small document differs from encoding/json of it:\n got %s\nwant %s", bodies[0], want)
	}
}

func TestEncoderRecordsSplit(t *testing.T) {
	var ended []conntrack.Ended
	for _, f := range testSnapshot(100).Flows {
		ended = append(ended, conntrack.Ended{Flow: *f, Stop: time.Now()})
	}
	bodies, ranges, oversize, err := encoder{max: 4 << 10}.records(report.BuildEnded(ended, nil))
	if err != nil || oversize || len(ranges) != len(bodies) {
		t.Fatal(err, oversize, len(ranges), len(bodies))
	}
	n := 0
	for i, b := range bodies {
		var recs []report.Ended
		if err := json.Unmarshal(b, &recs); err != nil || len(b) > 4<<10 {
			t.Fatalf("%d bytes: %v", len(b), err)
		}
		// Each body holds the records its range says, in order.
		if r := ranges[i]; r[0] != n || r[1] != n+len(recs) || recs[0].ID != ended[r[0]].ID {
			t.Errorf("body %d: range %v, %d records from id %d; want from %d", i, r, len(recs), recs[0].ID, n)
		}
		n += len(recs)
	}
	if n != 100 {
		t.Errorf("%d records in %d bodies, want 100", n, len(bodies))
	}
}

func TestOutbox(t *testing.T) {
	var dropped, endedLost, full atomic.Uint64
	o := newOutbox(10, lossCounters{dropped: &dropped, ended: &endedLost, full: &full})
	s1, s2 := testSnapshot(1), testSnapshot(2)
	o.put(&job{kind: jobSnapshot, snap: s1})
	o.put(&job{kind: jobSnapshot, snap: s2}) // replaces s1
	o.put(&job{kind: jobReply, snap: s1, req: request{ID: "x"}})
	mk := func(n int) []conntrack.Ended { return make([]conntrack.Ended, n) }
	o.put(&job{kind: jobEnded, ended: mk(6)})
	o.put(&job{kind: jobEnded, ended: mk(6)}) // 12 > 10: the 2 oldest go
	o.put(&job{kind: jobLive, snap: s1})
	o.put(&job{kind: jobLive, snap: s2}) // replaces the older live document
	if jobs, recs := o.size(); jobs != 5 || recs != 10 || dropped.Load() != 4 || endedLost.Load() != 2 {
		t.Fatalf("size %d jobs %d records, dropped %d (%d records); want 5, 10, 4 (2)", jobs, recs, dropped.Load(), endedLost.Load())
	}
	var order []jobKind
	for j := o.next(); j != nil; j = o.next() {
		order = append(order, j.kind)
		if (j.kind == jobSnapshot || j.kind == jobLive) && j.snap != s2 {
			t.Errorf("the older %v was kept", j.kind)
		}
	}
	// Ended records never wait behind a snapshot or a live document; the
	// periodic snapshot does not wait behind a live document.
	if diff := cmp.Diff([]jobKind{jobEnded, jobEnded, jobReply, jobSnapshot, jobLive}, order); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
	// A failed job goes back unless a newer one arrived meanwhile.
	old := &job{kind: jobSnapshot, snap: s1}
	o.put(&job{kind: jobSnapshot, snap: s2})
	if o.requeue(old) {
		t.Error("requeue replaced a newer snapshot")
	}
	o.put(&job{kind: jobLive, snap: s2})
	if o.requeue(&job{kind: jobLive, snap: s1}) {
		t.Error("requeue replaced a newer live document")
	}
}

func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("secret\r\nignored\n"), 0o600)
	notPEM := filepath.Join(dir, "ca.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	latest := func() *conntrack.Snapshot { return nil }

	for _, tc := range []struct {
		cfg  Config
		want string // part of the error, "" for none
	}{
		{Config{URL: "tcp://broker"}, ""},
		{Config{URL: "http://broker"}, `scheme "http" not supported`},
		{Config{URL: "tcp://"}, "has no host"},
		{Config{URL: "tcp://u:p@broker"}, "carries a password"},
		{Config{URL: "tcp://broker", User: "u", PasswordFile: filepath.Join(dir, "missing")}, filepath.Join(dir, "missing")},
		{Config{URL: "tcp://broker", PasswordFile: pw}, "without a user"},
		{Config{URL: "ssl://broker", CA: filepath.Join(dir, "noca")}, filepath.Join(dir, "noca")},
		{Config{URL: "ssl://broker", CA: notPEM}, notPEM + ": no PEM certificate"},
		{Config{URL: "ssl://broker", Cert: "c"}, "both --mqtt-cert and --mqtt-key"},
		{Config{URL: "ssl://broker", Cert: filepath.Join(dir, "c"), Key: filepath.Join(dir, "k")}, filepath.Join(dir, "c")},
		{Config{URL: "tcp://broker", CA: notPEM}, "not ssl:// or wss://"},
		{Config{URL: "tcp://broker", Node: "a/b"}, "must not contain"},
		{Config{URL: "tcp://broker", Node: "broadcast"}, "must not contain"},
		{Config{URL: "tcp://broker", Topic: "x/#"}, "wildcard"},
		{Config{URL: "tcp://broker", QoS: 3}, "QoS 3"},
	} {
		_, err := New(tc.cfg, export.Env{Latest: latest})
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%+v: %v", tc.cfg.URL, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: error %v, want one with %q", tc.cfg.URL, err, tc.want)
		case err != nil && strings.Contains(err.Error(), "\n"):
			t.Errorf("error is not one line: %q", err)
		}
	}

	s, err := Config{URL: "ws://broker/mqtt", User: "u", PasswordFile: pw}.validate(export.Env{Latest: latest})
	if err != nil {
		t.Fatal(err)
	}
	if s.password != "secret" || s.broker != "ws://broker:80/mqtt" || s.QoS != 0 || s.Topic != "flowtop" ||
		s.Interval != time.Minute || s.MaxPayload != 256<<10 || !strings.HasPrefix(s.ClientID, "flowtop-") || s.Node == "" {
		t.Errorf("defaults: %+v", s)
	}
}

func TestPasswordFromEnv(t *testing.T) {
	t.Setenv(PasswordEnv, "from-env")
	s, err := Config{URL: "tcp://broker", User: "u"}.validate(export.Env{Latest: func() *conntrack.Snapshot { return nil }})
	if err != nil || s.password != "from-env" {
		t.Errorf("password %q, %v; want from the environment", s.password, err)
	}
}

func TestTopics(t *testing.T) {
	got := newTopics("fleet", "r1", false)
	want := topics{status: "fleet/r1/status", snapshot: "fleet/r1/snapshot", ended: "fleet/r1/ended",
		state: "fleet/r1/state", request: "fleet/r1/request", broadcast: "fleet/broadcast/request",
		live: "fleet/r1/live"}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(topics{})); diff != "" {
		t.Errorf("topics (-want +got):\n%s", diff)
	}
	if gz := newTopics("fleet", "r1", true); gz.snapshot != "fleet/r1/snapshot/gz" || gz.ended != "fleet/r1/ended/gz" || gz.live != "fleet/r1/live/gz" {
		t.Errorf("gzip topics: %+v", gz)
	}
}

// ackLater is a broker connection that acknowledges each publish a
// millisecond after it, and counts how many await acknowledgement at once:
// paho holds a message's payload until then.
type ackLater struct {
	mqtt.Client // only Publish is used
	mu          sync.Mutex
	open, most  int
	published   []string
	// before is called at each publish (with mu held).
	before func()
}

func (c *ackLater) Publish(topic string, _ byte, _ bool, _ any) mqtt.Token {
	c.mu.Lock()
	if c.before != nil {
		c.before()
	}
	c.open++
	c.most = max(c.most, c.open)
	c.published = append(c.published, topic)
	c.mu.Unlock()
	tok := &ackToken{done: make(chan struct{})}
	time.AfterFunc(time.Millisecond, func() {
		c.mu.Lock()
		c.open--
		c.mu.Unlock()
		close(tok.done)
	})
	return tok
}

type ackToken struct{ done chan struct{} }

func (t *ackToken) Wait() bool                       { <-t.done; return true }
func (t *ackToken) WaitTimeout(d time.Duration) bool { return t.Wait() }
func (t *ackToken) Done() <-chan struct{}            { return t.done }
func (t *ackToken) Error() error                     { return nil }

// TestPublishPartsAsTheyGo: a snapshot split into many parts is published
// a few parts at a time, each made when its turn comes, not all at once
// (100k flows without a limit were 73 MB of parts held together), and the
// retained state still comes last.
func TestPublishPartsAsTheyGo(t *testing.T) {
	snap := testSnapshot(3000)
	var lookups atomic.Int64 // names are looked up as a part is made
	e, err := New(Config{URL: "tcp://127.0.0.1:1", Node: "n", MaxPayload: 16 << 10},
		export.Env{Latest: func() *conntrack.Snapshot { return snap }, Names: countingNamer{&lookups}})
	if err != nil {
		t.Fatal(err)
	}
	var atFirst int64 = -1
	c := &ackLater{before: func() {
		if atFirst < 0 {
			atFirst = lookups.Load()
		}
	}}
	j := &job{kind: jobSnapshot, snap: snap}
	e.publish(t.Context(), c, j)
	parts := 0
	for _, topic := range c.published {
		if topic == e.t.snapshot {
			parts++
		}
	}
	if parts < 20 {
		t.Fatalf("%d parts published, want a snapshot split in 20 or more", parts)
	}
	if last := c.published[len(c.published)-1]; last != e.t.state || len(c.published) != parts+1 {
		t.Errorf("published %d messages ending with %q; want the %d parts, then the state", len(c.published), last, parts)
	}
	// The plan looks up every flow once; the first part only its own.
	if atFirst > 3000+3000/4 {
		t.Errorf("%d name lookups before the first publish: the parts were all made before it", atFirst)
	}
	if c.most > inFlight || c.most > 8 {
		t.Errorf("%d of %d messages awaited the broker at once, want at most %d", c.most, parts+1, inFlight)
	}
	if got := e.Health().Published; got != uint64(parts+1) {
		t.Errorf("Published = %d, want %d", got, parts+1)
	}
}

// lateNames answers a flow's first lookup with no names and every later
// one with long names, as a reverse-DNS cache does while answers arrive.
type lateNames struct {
	mu   sync.Mutex
	seen map[uint32]bool
}

func (l *lateNames) Names(f *conntrack.Flow) enrich.Names {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.seen[f.ID] {
		l.seen[f.ID] = true
		return enrich.Names{}
	}
	name := strings.Repeat("x", 60) + ".example.net"
	return enrich.Names{SrcName: name, DstName: name}
}

// TestPartsStayWithinTheirPlan: names that appear between the planning of
// the parts and their making (seconds apart for a big snapshot) must not
// push a part over the payload limit: such a flow goes without its names.
func TestPartsStayWithinTheirPlan(t *testing.T) {
	for _, gz := range []bool{false, true} {
		d := report.Prepare(testSnapshot(3000), report.Options{Host: "h", Names: &lateNames{seen: map[uint32]bool{}}})
		enc := encoder{max: 16 << 10, gz: gz}
		p, err := enc.plan(d)
		if err != nil || p.oversize || len(p.groups) < 2 {
			t.Fatalf("gzip %v: plan: %d parts, oversize %v, %v", gz, len(p.groups), p.oversize, err)
		}
		flows := 0
		for i := range p.groups {
			b, err := enc.part(d, &p, i)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > enc.max {
				t.Errorf("gzip %v: part %d of %d is %d bytes, over the limit of %d", gz, i+1, len(p.groups), len(b), enc.max)
			}
			if gz {
				if b, err = gunzip(b); err != nil {
					t.Fatal(err)
				}
			}
			var doc report.Document
			if err := json.Unmarshal(b, &doc); err != nil {
				t.Fatalf("gzip %v: part %d: %v", gz, i+1, err)
			}
			flows += len(doc.Flows)
		}
		if flows != 3000 {
			t.Errorf("gzip %v: %d flows in the parts, want 3000", gz, flows)
		}
	}
}

type countingNamer struct{ n *atomic.Int64 }

func (c countingNamer) Names(*conntrack.Flow) enrich.Names {
	c.n.Add(1)
	return enrich.Names{Service: "https"}
}

// document encodes d as one body, or, when that is larger than max, as
// numbered parts that each carry a share of the flows and the full totals
// and health (Part and Parts set). oversize is true when even a part of a
// single flow is too big; the parts are returned anyway so nothing is
// dropped silently. The exporter makes the bodies one at a time
// (plan, then part) as it publishes them; tests and benchmarks take them
// all at once.
func (e encoder) document(d *report.Prepared) (bodies [][]byte, oversize bool, err error) {
	p, err := e.plan(d)
	if err != nil {
		return nil, false, err
	}
	for i := range p.groups {
		b, err := e.part(d, &p, i)
		if err != nil {
			return nil, false, err
		}
		bodies = append(bodies, b)
	}
	return bodies, p.oversize, nil
}

// TestEndedBodiesAreTheRecords: an ended body is encoding/json of the
// records (gzipped with --mqtt-gzip), so every field report.Ended has
// reaches the reader, including ones added later.
func TestEndedBodiesAreTheRecords(t *testing.T) {
	var ended []conntrack.Ended
	for _, f := range testSnapshot(3).Flows {
		ended = append(ended, conntrack.Ended{Flow: *f, Stop: time.Now()})
	}
	recs := report.BuildEnded(ended, portNamer{})
	want, err := json.Marshal(recs)
	if err != nil {
		t.Fatal(err)
	}
	for _, gz := range []bool{false, true} {
		bodies, _, _, err := encoder{max: DefaultMaxPayload, gz: gz}.records(recs)
		if err != nil || len(bodies) != 1 {
			t.Fatalf("gzip %v: %d bodies, %v", gz, len(bodies), err)
		}
		got := bodies[0]
		if gz {
			if got, err = gunzip(got); err != nil {
				t.Fatal(err)
			}
		}
		if !bytes.Equal(got, want) {
			t.Errorf("gzip %v: body differs from encoding/json of the records:\n got %.300s\nwant %.300s", gz, got, want)
		}
	}
}
