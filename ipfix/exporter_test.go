package ipfix

import (
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/export"
)

// fakeTable stands in for conntrack.Table: a latest snapshot and an
// ended-flow channel.
type fakeTable struct {
	latest atomic.Pointer[conntrack.Snapshot]
	ended  chan conntrack.Ended
}

func newFakeTable() *fakeTable { return &fakeTable{ended: make(chan conntrack.Ended, 1024)} }

func allFilter() conntrack.Filter {
	f := conntrack.Filter{IPv4: true, IPv6: true}
	f.AllProtos()
	return f
}

// publish makes a snapshot of flows at time at.
func (ft *fakeTable) publish(at time.Time, filter conntrack.Filter, flows ...conntrack.Flow) {
	ft.latest.Store(&conntrack.Snapshot{Time: at, Filter: filter, Flows: conntrack.Pointers(flows)})
}

func (ft *fakeTable) Latest() *conntrack.Snapshot { return ft.latest.Load() }

// env is what an exporter reads of ft: its latest snapshot and its
// ended-flow channel.
func (ft *fakeTable) env() export.Env { return export.Env{Latest: ft.Latest, Ended: ft.ended} }

// logicExporter is an exporter whose senders do not run: the records it
// makes wait in the first sender's queue, for drain.
func logicExporter(t *testing.T, ft *fakeTable, mod func(*Config)) *Exporter {
	t.Helper()
	cfg := Config{URLs: []string{"udp://127.0.0.1:9"}}
	if mod != nil {
		mod(&cfg)
	}
	e, err := New(cfg, ft.env())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range e.senders {
		s.prepare()
	}
	return e
}

// drain takes the records queued for the first collector.
func drain(e *Exporter) []record {
	var rs []record
	for {
		select {
		case r := <-e.senders[0].q:
			rs = append(rs, r)
		default:
			return rs
		}
	}
}

// brief is the part of a record the logic tests check.
type brief struct {
	Kind        recordKind
	ID          uint32
	Event       uint8
	Reason      uint8
	Start, End  int64
	Orig, Reply conntrack.Counter
}

func briefs(rs []record) []brief {
	var bs []brief
	for _, r := range rs {
		b := brief{Kind: r.kind, ID: r.id, Event: r.event, Reason: r.reason, Start: r.start, End: r.end, Orig: r.orig, Reply: r.reply}
		if r.kind == kindNATEvent {
			b.End = 0
		}
		bs = append(bs, b)
	}
	return bs
}

func counted(f conntrack.Flow, start time.Time, ob, rb uint64) conntrack.Flow {
	f.HasCounters = true
	f.Start = conntrack.StampOf(start)
	f.OrigCount = conntrack.Counter{Packets: ob / 100, Bytes: ob}
	f.ReplyCount = conntrack.Counter{Packets: rb / 100, Bytes: rb}
	return f
}

func c(b uint64) conntrack.Counter { return conntrack.Counter{Packets: b / 100, Bytes: b} }

func ms(t time.Time) int64 { return t.UnixMilli() }

// TestEndedRecords: a destroyed flow is exported once with the kernel's
// final counters, from its start to its stop; the filter of the table
// applies (every output honours it); a flow the kernel did not count is
// exported with zero counters.
func TestEndedRecords(t *testing.T) {
	ft := newFakeTable()
	tcpOnly := conntrack.DefaultFilter()
	ft.publish(t0, tcpOnly)
	e := logicExporter(t, ft, nil)
	start, stop := t0.Add(-10*time.Second), t0.Add(time.Second)
	uncounted := tcp4
	uncounted.ID, uncounted.Orig.SrcPort, uncounted.Reply.DstPort = 201, 40001, 40001
	e.ended(&conntrack.Ended{Flow: counted(tcp4, start, 1000, 5000), Stop: stop})
	e.ended(&conntrack.Ended{Flow: counted(masq4, start, 300, 300), Stop: stop}) // UDP: filtered out
	e.ended(&conntrack.Ended{Flow: uncounted, Stop: stop})
	want := []brief{
		{Kind: kindIPv4, ID: 101, Reason: endOfFlow, Start: ms(start), End: ms(stop), Orig: c(1000), Reply: c(5000)},
		{Kind: kindIPv4, ID: 201, Reason: endOfFlow, Start: ms(stop), End: ms(stop)},
	}
	if diff := cmp.Diff(want, briefs(drain(e))); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

// TestActiveTimeout follows a long flow: nothing while it is younger than
// the active timeout, then a record every timeout with the counters since
// the last one, none for an idle interval, and at the end the rest: the
// records add up to the kernel's final counters.
func TestActiveTimeout(t *testing.T) {
	ft := newFakeTable()
	e := logicExporter(t, ft, func(c *Config) { c.ActiveTimeout = time.Minute })
	start := t0
	at := func(d time.Duration) time.Time { return start.Add(d) }
	steps := []struct {
		at     time.Duration
		ob, rb uint64
	}{
		{30 * time.Second, 100, 1000},  // too young
		{61 * time.Second, 200, 4000},  // due: all since the start
		{90 * time.Second, 300, 5000},  // not due
		{125 * time.Second, 400, 9000}, // due: since 61 s
		{190 * time.Second, 400, 9000}, // due but idle: no record
		{215 * time.Second, 500, 9100}, // not due (the idle interval moved the mark)
		{251 * time.Second, 600, 9100}, // due: since 190 s
	}
	var got []brief
	for _, s := range steps {
		ft.publish(at(s.at), allFilter(), counted(tcp4, start, s.ob, s.rb))
		e.scan()
		got = append(got, briefs(drain(e))...)
	}
	final := counted(tcp4, start, 650, 9300)
	e.ended(&conntrack.Ended{Flow: final, Stop: at(260 * time.Second)})
	got = append(got, briefs(drain(e))...)
	want := []brief{
		{Kind: kindIPv4, ID: 101, Reason: endActiveTimeout, Start: ms(at(0)), End: ms(at(61 * time.Second)), Orig: c(200), Reply: c(4000)},
		{Kind: kindIPv4, ID: 101, Reason: endActiveTimeout, Start: ms(at(61 * time.Second)), End: ms(at(125 * time.Second)), Orig: c(200), Reply: c(5000)},
		{Kind: kindIPv4, ID: 101, Reason: endActiveTimeout, Start: ms(at(190 * time.Second)), End: ms(at(251 * time.Second)), Orig: c(200), Reply: c(100)},
		{Kind: kindIPv4, ID: 101, Reason: endOfFlow, Start: ms(at(251 * time.Second)), End: ms(at(260 * time.Second)), Orig: c(50), Reply: c(200)},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	var sum conntrack.Counter
	for _, b := range got {
		sum.Bytes += b.Orig.Bytes
	}
	if sum.Bytes != final.OrigCount.Bytes {
		t.Errorf("the records add up to %d bytes, the kernel counted %d", sum.Bytes, final.OrigCount.Bytes)
	}
	// A scan that still reads the last snapshot, made before the table
	// applied the DESTROY, exports nothing more.
	e.scan()
	if rs := drain(e); len(rs) != 0 {
		t.Errorf("a stale snapshot after the end: records %+v, want none", briefs(rs))
	}
	ft.publish(at(260*time.Second+e.forgetAfter+time.Second), allFilter())
	e.scan()
	if len(e.flows) != 0 {
		t.Errorf("%d flows remembered %v after the end, want 0", len(e.flows), e.forgetAfter+time.Second)
	}
}

// TestKeyReused: a new connection with the key of one that ended (the
// same ports) is a flow of its own: its records do not count from the
// old one's.
func TestKeyReused(t *testing.T) {
	ft := newFakeTable()
	e := logicExporter(t, ft, func(c *Config) { c.ActiveTimeout = time.Minute })
	e.ended(&conntrack.Ended{Flow: counted(tcp4, t0, 500, 500), Stop: t0.Add(2 * time.Minute)})
	again := t0.Add(2*time.Minute + time.Second)
	ft.publish(again.Add(time.Minute), allFilter(), counted(tcp4, again, 100, 200))
	e.scan()
	want := []brief{
		{Kind: kindIPv4, ID: 101, Reason: endOfFlow, Start: ms(t0), End: ms(t0.Add(2 * time.Minute)), Orig: c(500), Reply: c(500)},
		{Kind: kindIPv4, ID: 101, Reason: endActiveTimeout, Start: ms(again), End: ms(again.Add(time.Minute)), Orig: c(100), Reply: c(200)},
	}
	if diff := cmp.Diff(want, briefs(drain(e))); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

// TestDestroyAfterVanish: a dump no longer finds a flow that was
// exported on its active timeout (conntrack -D), and its DESTROY event
// comes later. Its ended record still counts from the last record, not
// from the start: nothing is counted twice.
func TestDestroyAfterVanish(t *testing.T) {
	ft := newFakeTable()
	e := logicExporter(t, ft, func(c *Config) { c.ActiveTimeout = time.Minute })
	ft.publish(t0.Add(70*time.Second), allFilter(), counted(tcp4, t0, 1000, 2000))
	e.scan()
	if n := len(drain(e)); n != 1 {
		t.Fatalf("%d records at the active timeout, want 1", n)
	}
	ft.publish(t0.Add(76*time.Second), allFilter())
	e.scan()
	e.ended(&conntrack.Ended{Flow: counted(tcp4, t0, 1100, 2500), Stop: t0.Add(75 * time.Second)})
	want := []brief{{Kind: kindIPv4, ID: 101, Reason: endOfFlow, Start: ms(t0.Add(70 * time.Second)),
		End: ms(t0.Add(75 * time.Second)), Orig: c(100), Reply: c(500)}}
	if diff := cmp.Diff(want, briefs(drain(e))); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

// TestScanForgetsVanishedFlows: a flow that leaves the table without an
// ended record (one dropped by a slow reader) is forgotten once it has
// been missing for forgetAfter, so the memory of exported flows stays
// bounded by the table.
func TestScanForgetsVanishedFlows(t *testing.T) {
	ft := newFakeTable()
	e := logicExporter(t, ft, func(c *Config) { c.ActiveTimeout = time.Minute })
	ft.publish(t0.Add(70*time.Second), allFilter(), counted(tcp4, t0, 1000, 2000), counted(masq4, t0, 10, 10))
	e.scan()
	if len(e.flows) != 2 {
		t.Fatalf("%d flows remembered, want 2", len(e.flows))
	}
	ft.publish(t0.Add(75*time.Second), allFilter(), counted(masq4, t0, 10, 10))
	e.scan()
	if len(e.flows) != 2 {
		t.Fatalf("%d flows remembered 5 s after one left, want 2", len(e.flows))
	}
	ft.publish(t0.Add(70*time.Second+e.forgetAfter+time.Second), allFilter(), counted(masq4, t0, 10, 10))
	e.scan()
	if _, ok := e.flows[masq4.Key()]; len(e.flows) != 1 || !ok {
		t.Errorf("flows remembered %v, want only masq4's", e.flows)
	}
}

// TestMaxFlows: beyond maxFlows long flows, the others get no
// active-timeout record (their ended record carries all their counters),
// and nothing is counted twice.
func TestMaxFlows(t *testing.T) {
	ft := newFakeTable()
	e := logicExporter(t, ft, func(c *Config) { c.ActiveTimeout = time.Minute })
	e.maxFlows = 2
	var flows []conntrack.Flow
	for i := range 5 {
		f := counted(tcp4, t0, 1000, 1000)
		f.ID, f.Orig.SrcPort = uint32(300+i), uint16(30000+i)
		flows = append(flows, f)
	}
	ft.publish(t0.Add(2*time.Minute), allFilter(), flows...)
	e.scan()
	if n := len(drain(e)); n != 2 || len(e.flows) != 2 {
		t.Fatalf("%d records, %d flows remembered; want 2 and 2", n, len(e.flows))
	}
	var total uint64
	for _, f := range flows {
		f.OrigCount = c(1500)
		e.ended(&conntrack.Ended{Flow: f, Stop: t0.Add(3 * time.Minute)})
	}
	for _, r := range drain(e) {
		total += r.orig.Bytes
	}
	if want := uint64(2*500 + 3*1500); total != want {
		t.Errorf("ended records carry %d bytes, want %d (the rest was in the active records)", total, want)
	}
}

// TestNATEvents: with NAT events on, a NAT44 flow gets a session create
// event at the first scan that sees it (stamped with its start) and a
// delete event when it ends; one that ends before any scan gets both then.
// Flows without NAT, and IPv6 ones, get none.
func TestNATEvents(t *testing.T) {
	ft := newFakeTable()
	e := logicExporter(t, ft, func(c *Config) { c.NATEvents = true })
	start := t0.Add(-5 * time.Second)
	long, short := counted(masq4, start, 100, 100), counted(masq4, start, 10, 10)
	short.ID, short.Orig.SrcPort = 999, 5001
	ft.publish(t0, allFilter(), long, counted(tcp4, start, 1, 1), counted(nat6, start, 1, 1))
	e.scan()
	stop := t0.Add(time.Second)
	e.ended(&conntrack.Ended{Flow: long, Stop: stop})
	e.ended(&conntrack.Ended{Flow: short, Stop: stop})
	want := []brief{
		{Kind: kindNATEvent, ID: 102, Event: natSessionCreate, Start: ms(start)},
		{Kind: kindIPv4NAT, ID: 102, Reason: endIdleTimeout, Start: ms(start), End: ms(stop), Orig: c(100), Reply: c(100)},
		{Kind: kindNATEvent, ID: 102, Event: natSessionDelete, Start: ms(stop)},
		{Kind: kindNATEvent, ID: 999, Event: natSessionCreate, Start: ms(start)},
		{Kind: kindIPv4NAT, ID: 999, Reason: endIdleTimeout, Start: ms(start), End: ms(stop), Orig: c(10), Reply: c(10)},
		{Kind: kindNATEvent, ID: 999, Event: natSessionDelete, Start: ms(stop)},
	}
	if diff := cmp.Diff(want, briefs(drain(e))); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
}

// TestQueueFullDrops: records beyond a collector's queue are dropped and
// counted, never waited for.
func TestQueueFullDrops(t *testing.T) {
	ft := newFakeTable()
	e, err := New(Config{URLs: []string{"udp://127.0.0.1:9"}}, export.Env{Latest: ft.Latest})
	if err != nil {
		t.Fatal(err)
	}
	e.queueLen = 3
	e.senders[0].prepare()
	for range 10 {
		e.enqueue(record{})
	}
	if s := e.Stats(); s.Dropped != 7 || s.Published != 0 {
		t.Errorf("stats %+v, want 7 dropped", s)
	}
}

func TestConfig(t *testing.T) {
	env := export.Env{Latest: func() *conntrack.Snapshot { return nil }}
	for _, tc := range []struct {
		cfg  Config
		addr []string // host:port of each collector
		err  string
	}{
		{cfg: Config{URLs: []string{"udp://collector.lan"}}, addr: []string{"collector.lan:4739"}},
		{cfg: Config{URLs: []string{"udp://192.0.2.1:2055", "tcp://[2001:db8::1]"}}, addr: []string{"192.0.2.1:2055", "[2001:db8::1]:4739"}},
		{cfg: Config{URLs: []string{"UDP://h:9995/"}}, addr: []string{"h:9995"}},
		{cfg: Config{}, err: "no collector URL"},
		{cfg: Config{URLs: []string{"http://h"}}, err: `scheme "http" not supported`},
		{cfg: Config{URLs: []string{"h:4739"}}, err: "not supported"},
		{cfg: Config{URLs: []string{"udp://:4739"}}, err: "has no host"},
		{cfg: Config{URLs: []string{"udp://h:99999"}}, err: "bad port"},
		{cfg: Config{URLs: []string{"udp://h/path"}}, err: "want only udp://host:port"},
		{cfg: Config{URLs: []string{"udp://h"}, MTU: 500}, err: "MTU 500: want 576 to 65535"},
		{cfg: Config{URLs: []string{"udp://h"}, MTU: 70000}, err: "MTU 70000"},
		{cfg: Config{URLs: []string{"udp://h"}, ActiveTimeout: time.Millisecond}, err: "active timeout 1ms"},
		{cfg: Config{URLs: []string{"udp://h"}, Format: FormatNF9, NATEvents: true}, err: "IPFIX only"},
	} {
		e, err := New(tc.cfg, env)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%v: error %v, want one with %q", tc.cfg.URLs, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", tc.cfg.URLs, err)
			continue
		}
		var got []string
		for _, s := range e.senders {
			got = append(got, s.col.addr)
		}
		if diff := cmp.Diff(tc.addr, got); diff != "" {
			t.Errorf("%v: collectors (-want +got):\n%s", tc.cfg.URLs, diff)
		}
		if e.cfg.MTU != DefaultMTU || e.cfg.ActiveTimeout != DefaultActiveTimeout {
			t.Errorf("defaults: MTU %d, active timeout %v", e.cfg.MTU, e.cfg.ActiveTimeout)
		}
	}
	if _, err := New(Config{URLs: []string{"udp://h"}}, export.Env{}); err == nil {
		t.Error("no Latest: no error")
	}
	// Check, for the command line, needs no Env.
	if err := (Config{URLs: []string{"udp://h"}}).Check(); err != nil {
		t.Errorf("Check of a good config: %v", err)
	}
	if err := (Config{URLs: []string{"udp://h"}, MTU: 100}).Check(); err == nil || !strings.Contains(err.Error(), "MTU 100") {
		t.Errorf("Check of MTU 100: %v", err)
	}
	for _, f := range []Format{FormatIPFIX, FormatNF9} {
		if need := minMessage(f) + ipv6UDPHeaders; MinMTU < need {
			t.Errorf("%v: MinMTU %d holds no record of %d bytes", f, MinMTU, need)
		}
	}
	for s, want := range map[string]Format{"ipfix": FormatIPFIX, "NF9": FormatNF9, "": FormatIPFIX} {
		if got, err := ParseFormat(s); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %v, %v", s, got, err)
		}
	}
	if _, err := ParseFormat("v5"); err == nil || !strings.Contains(err.Error(), "want ipfix or nf9") {
		t.Errorf("ParseFormat(v5): %v", err)
	}
}
