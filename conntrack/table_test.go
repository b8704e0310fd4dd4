package conntrack

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack/nstest"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"golang.org/x/sys/unix"
)

// fakeKernel is a conntrack table in memory. The test changes its flows and
// clock, and pushes events; the Table under test dumps and listens.
type fakeKernel struct {
	mu          sync.Mutex
	flows       map[uint32]Flow
	clock       time.Time
	interrupted bool
	dumpErr     error
	dumps       int
	gate        chan struct{} // when set, each Dump waits for a token

	events     chan Event
	listenErr  chan error
	listenDone chan struct{}
}

var fakeBase = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

func newFakeKernel(flows ...Flow) *fakeKernel {
	k := &fakeKernel{
		flows:      map[uint32]Flow{},
		clock:      fakeBase,
		events:     make(chan Event),
		listenErr:  make(chan error, 1),
		listenDone: make(chan struct{}),
	}
	for _, f := range flows {
		k.flows[f.ID] = f
	}
	return k
}

func (k *fakeKernel) Dump(fn func(*Flow)) (bool, error) {
	k.mu.Lock()
	gate := k.gate
	k.mu.Unlock()
	if gate != nil {
		<-gate
	}
	k.mu.Lock()
	k.dumps++
	flows := slices.Sorted(maps.Keys(k.flows))
	var list []Flow
	for _, id := range flows {
		list = append(list, k.flows[id])
	}
	interrupted, err := k.interrupted, k.dumpErr
	k.mu.Unlock()
	if err != nil {
		return false, err
	}
	for _, f := range list {
		fn(&f)
	}
	return interrupted, nil
}

func (k *fakeKernel) Listen(ctx context.Context, out chan<- Event) error {
	defer close(k.listenDone)
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-k.listenErr:
			return err
		case ev := <-k.events:
			select {
			case out <- ev:
			case <-ctx.Done():
				return nil
			}
		}
	}
}

func (k *fakeKernel) now() time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.clock
}

func (k *fakeKernel) count() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.flows)
}

// change runs fn on the kernel's state under its lock.
func (k *fakeKernel) change(fn func(k *fakeKernel)) {
	k.mu.Lock()
	defer k.mu.Unlock()
	fn(k)
}

func (k *fakeKernel) dumpCount() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.dumps
}

func (k *fakeKernel) send(t *testing.T, ev Event) {
	t.Helper()
	select {
	case k.events <- ev:
	case <-time.After(5 * time.Second):
		t.Fatalf("table did not take event %v", ev.Type)
	}
}

// resync makes the table dump now: an overrun is the one event that
// triggers a refresh, which keeps the tests free of timing. It returns
// the snapshot of that refresh.
func (k *fakeKernel) resync(t *testing.T, sub <-chan *Snapshot, tbl *Table) *Snapshot {
	t.Helper()
	want := tbl.Latest().Health.Resyncs + 1
	k.send(t, Event{Type: EventOverrun, Err: unix.ENOBUFS})
	return waitSnap(t, sub, "resync", func(s *Snapshot) bool { return s.Health.Resyncs >= want })
}

// startTable runs a table on k until the test ends, and checks that Run
// returns and the listener stops when it does.
func startTable(t *testing.T, k *fakeKernel, cfg TableConfig) (*Table, <-chan *Snapshot) {
	t.Helper()
	tbl := newFakeTable(t, k, cfg)
	return tbl, runTable(t, tbl)
}

// newFakeTable makes a table on k, not yet running, and checks at the end
// of the test that its listener stopped with it.
func newFakeTable(t *testing.T, k *fakeKernel, cfg TableConfig) *Table {
	t.Helper()
	cfg.Kernel = k
	if cfg.Now == nil {
		cfg.Now = k.now
	}
	tbl := NewTable(cfg)
	// Registered first, so it runs after runTable has stopped the table.
	t.Cleanup(func() {
		select {
		case <-k.listenDone:
		default:
			t.Error("Run returned while Listen still runs")
		}
	})
	return tbl
}

// runTable runs tb until the test ends and returns its snapshots. At the
// end Run must return, without error, within 5 s of the cancel.
func runTable(t *testing.T, tb *Table) <-chan *Snapshot {
	t.Helper()
	snaps, cancelSub := tb.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tb.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after cancel")
		}
		cancelSub()
	})
	return snaps
}

// waitSnap returns the first snapshot from sub for which ok holds. The
// deadline is long: tests on the real kernel share a busy machine, where a
// dump of 30,000 flows under -race took 2.8 s and refreshes then come
// every 11 s.
func waitSnap(t *testing.T, sub <-chan *Snapshot, what string, ok func(*Snapshot) bool) *Snapshot {
	t.Helper()
	deadline := time.After(30 * time.Second)
	var last *Snapshot
	for {
		select {
		case s := <-sub:
			if ok(s) {
				return s
			}
			last = s
		case <-deadline:
			t.Fatalf("no snapshot with %s within 30 s; last: %s", what, snapSummary(last))
		}
	}
}

// snapSummary describes a snapshot in one short line for a failure
// message: a big one's flows would fill screens.
func snapSummary(s *Snapshot) string {
	if s == nil {
		return "none"
	}
	return fmt.Sprintf("%d of %d flows listed, health %+v", len(s.Flows), s.TableFlows, s.Health)
}

// cmpOpts compares the types of Flow that cmp cannot look into.
var cmpOpts = cmp.Options{
	// Seen is when the table read the flow, not something the kernel says.
	cmpopts.IgnoreFields(Flow{}, "Seen"),
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
}

// settle republishes (SetFilter with the same filter) until a snapshot
// shows what the events sent so far should have done.
func settle(t *testing.T, tbl *Table, sub <-chan *Snapshot, f Filter, what string, ok func(*Snapshot) bool) *Snapshot {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		tbl.SetFilter(f)
		select {
		case s := <-sub:
			if ok(s) {
				return s
			}
		case <-time.After(20 * time.Millisecond):
		}
	}
	t.Fatalf("no snapshot with %s within 5 s", what)
	return nil
}

func byID(s *Snapshot) map[uint32]Flow {
	m := map[uint32]Flow{}
	for _, f := range s.Flows {
		m[f.ID] = *f
	}
	return m
}

func ids(s *Snapshot) []uint32 {
	return slices.Sorted(maps.Keys(byID(s)))
}

func withID(f Flow, id uint32) Flow {
	f.ID = id
	return f
}

func counted(f Flow, orig, reply Counter, start time.Time) Flow {
	f.HasCounters, f.OrigCount, f.ReplyCount, f.Start = true, orig, reply, StampOf(start)
	return f
}

func TestTableDumpAndEvents(t *testing.T) {
	start1 := fakeBase.Add(-2 * time.Hour) // older than Interval: no rate from its age
	f1 := counted(withID(tcp4, 1), Counter{10, 1000}, Counter{8, 5000}, start1)
	f1.State = 3
	f2 := counted(withID(udp6, 2), Counter{1, 100}, Counter{1, 200}, start1)
	k := newFakeKernel(f1, f2)
	tbl, sub := startTable(t, k, TableConfig{Interval: time.Hour, Filter: allFilter()})
	ended := tbl.SubscribeEnded(10)

	s := waitSnap(t, sub, "the initial dump", func(s *Snapshot) bool { return true })
	if diff := cmp.Diff([]uint32{1, 2}, ids(s)); diff != "" {
		t.Fatalf("initial flows (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(f1, byID(s)[1], cmpOpts); diff != "" {
		t.Errorf("flow 1 after the dump (-want +got):\n%s", diff)
	}
	if tbl.Latest() != s || s.TableFlows != 2 || !s.Health.Accounting || s.Interval != time.Hour {
		t.Errorf("snapshot: Latest %p vs %p, TableFlows %d, health %+v", tbl.Latest(), s, s.TableFlows, s.Health)
	}

	// NEW: a flow the dump did not have. UPDATE: flow 1 moves to TIME_WAIT.
	// DESTROY: flow 2 ends with final counters.
	k.change(func(k *fakeKernel) { k.clock = fakeBase.Add(10 * time.Second) })
	f3 := withID(icmp4, 3)
	f3.ICMP.Type, f3.ICMP.ID, f3.Timeout = 8, 77, 30
	k.send(t, Event{Type: EventNew, Flow: f3})
	up := f1
	up.HasCounters, up.OrigCount, up.ReplyCount, up.Start = false, Counter{}, Counter{}, 0
	up.State, up.Status, up.Timeout = 7, StatusAssured|StatusConfirmed|StatusSeenReply, 120
	k.send(t, Event{Type: EventUpdate, Flow: up})
	fin := f2
	fin.OrigCount, fin.ReplyCount, fin.Start = Counter{4, 400}, Counter{3, 900}, 0
	stop := fakeBase.Add(5 * time.Second)
	k.send(t, Event{Type: EventDestroy, Flow: fin, Stop: stop})

	s = settle(t, tbl, sub, allFilter(), "events applied", func(s *Snapshot) bool { return s.Health.Events == 3 })
	if diff := cmp.Diff([]uint32{1, 3}, ids(s)); diff != "" {
		t.Fatalf("flows after events (-want +got):\n%s", diff)
	}
	got1 := byID(s)[1]
	if got1.StateName() != "TIME_WAIT" || got1.Status != up.Status || got1.Timeout != 120 {
		t.Errorf("UPDATE not applied: state %s status %v timeout %d", got1.StateName(), got1.Status.Names(), got1.Timeout)
	}
	// Events carry no counters: the dump's must survive an UPDATE.
	if !got1.HasCounters || got1.OrigCount != f1.OrigCount || !got1.Start.Time().Equal(start1) {
		t.Errorf("UPDATE lost what the dump knew: %+v", got1)
	}
	got3 := byID(s)[3]
	if !got3.HasCounters || got3.TotalBytes() != 0 || !got3.Start.Time().Equal(fakeBase.Add(10*time.Second)) ||
		got3.Orig != f3.Orig {
		t.Errorf("NEW flow: %+v; want counted from 0, started at the event", got3)
	}

	select {
	case e := <-ended:
		if e.ID != 2 || e.OrigCount != fin.OrigCount || e.ReplyCount != fin.ReplyCount || !e.HasCounters {
			t.Errorf("ended record %+v, want flow 2 with the DESTROY's counters", e)
		}
		if !e.Stop.Equal(stop) || !e.Start.Time().Equal(start1) {
			t.Errorf("ended times: start %v stop %v, want %v and %v (start from the table, stop from the event)",
				e.Start, e.Stop, start1, stop)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no Ended record for the DESTROY")
	}

	// A DESTROY without counters (accounting switched off meanwhile) and
	// without stop time falls back on what the table knew and the clock.
	bare := f1
	bare.HasCounters, bare.OrigCount, bare.ReplyCount, bare.Start = false, Counter{}, Counter{}, 0
	k.send(t, Event{Type: EventDestroy, Flow: bare})
	select {
	case e := <-ended:
		if e.ID != 1 || !e.HasCounters || e.OrigCount != f1.OrigCount || !e.Stop.Equal(fakeBase.Add(10*time.Second)) {
			t.Errorf("ended record %+v: want flow 1 with the table's counters, stopped now", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no Ended record for the second DESTROY")
	}
	settle(t, tbl, sub, allFilter(), "flow 1 gone", func(s *Snapshot) bool { return len(s.Flows) == 1 })
}

func TestTableNewEventWithoutAccounting(t *testing.T) {
	k := newFakeKernel()
	tbl, sub := startTable(t, k, TableConfig{Interval: time.Hour, Filter: allFilter(),
		Accounting: func() (bool, bool) { return false, false }})
	waitSnap(t, sub, "the initial dump", func(*Snapshot) bool { return true })
	k.send(t, Event{Type: EventNew, Flow: withID(tcp4, 9)})
	s := settle(t, tbl, sub, allFilter(), "the NEW flow", func(s *Snapshot) bool { return len(s.Flows) == 1 })
	if f := s.Flows[0]; f.HasCounters || !f.Start.IsZero() {
		t.Errorf("flow created with accounting off: HasCounters %v, Start %v; want unknown counters and age", f.HasCounters, f.Start)
	}
	if s.Health.Accounting || s.Health.Timestamps {
		t.Errorf("health says accounting on: %+v", s.Health)
	}
}

func TestTableEndedDrops(t *testing.T) {
	k := newFakeKernel()
	tbl, sub := startTable(t, k, TableConfig{Interval: time.Hour, Filter: allFilter()})
	ended := tbl.SubscribeEnded(1)
	waitSnap(t, sub, "the initial dump", func(*Snapshot) bool { return true })
	for id := uint32(1); id <= 3; id++ {
		k.send(t, Event{Type: EventDestroy, Flow: withID(udp4, id)})
	}
	settle(t, tbl, sub, allFilter(), "three events", func(s *Snapshot) bool { return s.Health.Events == 3 })
	if got := tbl.EndedDrops(); got != 2 {
		t.Errorf("EndedDrops = %d, want 2 (buffer of 1, nobody reading)", got)
	}
	if e := <-ended; e.ID != 1 {
		t.Errorf("kept record of flow %d, want the first", e.ID)
	}
}

// Each ended-flow subscription counts its own losses: a slow consumer's
// drops are not charged to a fast one.
func TestTableEndedDropsPerSubscription(t *testing.T) {
	k := newFakeKernel()
	tbl, sub := startTable(t, k, TableConfig{Interval: time.Hour, Filter: allFilter()})
	slow, slowDropped := tbl.SubscribeEndedCounted(1)
	roomy, roomyDropped := tbl.SubscribeEndedCounted(10)
	waitSnap(t, sub, "the initial dump", func(*Snapshot) bool { return true })
	for id := uint32(1); id <= 3; id++ {
		k.send(t, Event{Type: EventDestroy, Flow: withID(udp4, id)})
	}
	settle(t, tbl, sub, allFilter(), "three events", func(s *Snapshot) bool { return s.Health.Events == 3 })
	if got := slowDropped(); got != 2 {
		t.Errorf("the subscription with a buffer of 1 dropped %d records, want 2", got)
	}
	if got := roomyDropped(); got != 0 {
		t.Errorf("the subscription with a buffer of 10 dropped %d records, want 0", got)
	}
	if got := tbl.EndedDrops(); got != 2 {
		t.Errorf("EndedDrops = %d, want 2, the sum over the subscriptions", got)
	}
	if len(slow) != 1 || len(roomy) != 3 {
		t.Errorf("records kept: %d and %d, want 1 and 3", len(slow), len(roomy))
	}
}

func TestTableRates(t *testing.T) {
	old := fakeBase.Add(-2 * time.Hour)
	f1 := counted(withID(tcp4, 1), Counter{10, 1000}, Counter{5, 500}, old)
	k := newFakeKernel(f1)
	tbl, sub := startTable(t, k, TableConfig{Interval: time.Hour, Filter: allFilter()})
	s := waitSnap(t, sub, "the initial dump", func(*Snapshot) bool { return true })
	if r := byID(s)[1].OrigRate; r != (Rate{}) {
		t.Errorf("rate from a single reading of an old flow: %+v", r)
	}

	// Each step: 1 s later, 2000 more bytes (2 packets) out and 500 back.
	step := func(n int) {
		k.change(func(k *fakeKernel) {
			k.clock = fakeBase.Add(time.Duration(n) * time.Second)
			f := k.flows[1]
			f.OrigCount = Counter{10 + 2*uint64(n), 1000 + 2000*uint64(n)}
			f.ReplyCount = Counter{5 + uint64(n), 500 + 500*uint64(n)}
			k.flows[1] = f
		})
	}
	step(1)
	// A flow born half a second ago with 1000 bytes: its first rate comes
	// from its age at once.
	k.change(func(k *fakeKernel) {
		k.flows[5] = counted(withID(udp4, 5), Counter{4, 1000}, Counter{}, k.clock.Add(-500*time.Millisecond))
	})
	s = k.resync(t, sub, tbl)
	want := Rate{Bytes: 2000, Packets: 2, Avg2: 2000, Avg10: 2000, Avg40: 2000}
	if diff := cmp.Diff(want, byID(s)[1].OrigRate); diff != "" {
		t.Errorf("first measured rate seeds the averages (-want +got):\n%s", diff)
	}
	if got := byID(s)[1].ReplyRate.Bytes; got != 500 {
		t.Errorf("reply rate = %v, want 500", got)
	}
	if diff := cmp.Diff(Rate{Bytes: 2000, Packets: 8, Avg2: 2000, Avg10: 2000, Avg40: 2000}, byID(s)[5].OrigRate); diff != "" {
		t.Errorf("new flow's rate from its age (-want +got):\n%s", diff)
	}

	step(2)
	s = k.resync(t, sub, tbl)
	if diff := cmp.Diff(want, byID(s)[1].OrigRate); diff != "" {
		t.Errorf("steady rate (-want +got):\n%s", diff)
	}
	if got := byID(s)[5].OrigRate.Bytes; got != 0 {
		t.Errorf("idle flow rate = %v, want 0", got)
	}

	// A NEW event counts from zero at the event; the next dump rates the
	// bytes since then.
	k.change(func(k *fakeKernel) { k.clock = k.clock.Add(250 * time.Millisecond) })
	k.send(t, Event{Type: EventNew, Flow: withID(udp6, 6)})
	settle(t, tbl, sub, allFilter(), "flow 6", func(s *Snapshot) bool { return byID(s)[6].ID == 6 })
	k.change(func(k *fakeKernel) {
		k.clock = fakeBase.Add(3 * time.Second)
		k.flows[6] = counted(withID(udp6, 6), Counter{3, 3000}, Counter{}, fakeBase.Add(2250*time.Millisecond))
	})
	step(3)
	s = k.resync(t, sub, tbl)
	if got := byID(s)[6].OrigRate.Bytes; got != 4000 {
		t.Errorf("rate after NEW = %v, want 3000 B in 0.75 s = 4000", got)
	}

	// Counters going backwards (zeroed) give 0, never a huge rate.
	k.change(func(k *fakeKernel) {
		k.clock = fakeBase.Add(4 * time.Second)
		f := k.flows[1]
		f.OrigCount = Counter{1, 100}
		k.flows[1] = f
	})
	s = k.resync(t, sub, tbl)
	r := byID(s)[1].OrigRate
	if r.Bytes != 0 || r.Packets != 0 || !(r.Avg2 > 0 && r.Avg2 < 2000) {
		t.Errorf("after counters went backwards: %+v; want 0 now and a decaying average", r)
	}
	// The counter restarts from the new reading.
	k.change(func(k *fakeKernel) {
		k.clock = fakeBase.Add(5 * time.Second)
		f := k.flows[1]
		f.OrigCount = Counter{2, 1100}
		k.flows[1] = f
	})
	s = k.resync(t, sub, tbl)
	if got := byID(s)[1].OrigRate.Bytes; got != 1000 {
		t.Errorf("rate after the reset = %v, want 1000", got)
	}
}

func TestTableSweep(t *testing.T) {
	k := newFakeKernel(withID(tcp4, 1), withID(tcp6, 2))
	tbl, sub := startTable(t, k, TableConfig{Interval: time.Hour, Filter: allFilter()})
	waitSnap(t, sub, "both flows", func(s *Snapshot) bool { return len(s.Flows) == 2 })

	// An interrupted dump may have missed flows: nothing is removed.
	k.change(func(k *fakeKernel) { delete(k.flows, 2); k.interrupted = true })
	s := k.resync(t, sub, tbl)
	if diff := cmp.Diff([]uint32{1, 2}, ids(s)); diff != "" {
		t.Errorf("flows after an interrupted dump (-want +got):\n%s", diff)
	}

	// A complete dump without flow 2 removes it.
	k.change(func(k *fakeKernel) { k.interrupted = false })
	s = k.resync(t, sub, tbl)
	if diff := cmp.Diff([]uint32{1}, ids(s)); diff != "" {
		t.Errorf("flows after a complete dump (-want +got):\n%s", diff)
	}

	// A reused ID with another tuple replaces the flow.
	k.change(func(k *fakeKernel) { k.flows[1] = withID(udp4, 1) })
	s = k.resync(t, sub, tbl)
	if len(s.Flows) != 1 || s.Flows[0].Proto != ProtoUDP || s.Flows[0].Orig != udp4.Orig {
		t.Errorf("flow 1 not replaced by the reused ID: %+v", s.Flows)
	}
}

// TestTableVanishedFlowEnds: a flow that a complete dump no longer finds,
// and whose DESTROY never comes (lost in an overrun), still gets an ended
// record, marked vanished, with the last counters the table read; and it is
// counted.
func TestTableVanishedFlowEnds(t *testing.T) {
	start := fakeBase.Add(-time.Hour)
	f1 := counted(withID(tcp4, 1), Counter{10, 1000}, Counter{8, 5000}, start)
	f2 := counted(withID(udp4, 2), Counter{3, 300}, Counter{2, 200}, start)
	k := newFakeKernel(f1, f2)
	tbl := newFakeTable(t, k, TableConfig{Interval: time.Hour, Filter: allFilter()})
	tbl.vanishGrace = 10 * time.Millisecond
	ended := tbl.SubscribeEnded(10)
	sub := runTable(t, tbl)
	waitSnap(t, sub, "the initial dump", func(*Snapshot) bool { return true })

	// The kernel ends flow 2; its DESTROY is lost in an overrun.
	dumped := fakeBase.Add(30 * time.Second)
	k.change(func(k *fakeKernel) { delete(k.flows, 2); k.clock = dumped })
	s := k.resync(t, sub, tbl)
	if diff := cmp.Diff([]uint32{1}, ids(s)); diff != "" {
		t.Errorf("flows after the resync (-want +got):\n%s", diff)
	}
	select {
	case e := <-ended:
		if e.ID != 2 || e.Reason != EndVanished || e.Reason.String() != "vanished" {
			t.Fatalf("ended record of flow %d, reason %v; want flow 2, vanished", e.ID, e.Reason)
		}
		if !e.HasCounters || e.OrigCount != f2.OrigCount || e.ReplyCount != f2.ReplyCount ||
			!e.Start.Time().Equal(start) || !e.Stop.Equal(dumped) {
			t.Errorf("vanished record %+v: want the dump's counters and start, stopped when the dump ended (%v)", e, dumped)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no ended record for the flow that vanished")
	}
	settle(t, tbl, sub, allFilter(), "Vanished counted", func(s *Snapshot) bool { return s.Health.Vanished == 1 })
	select {
	case e := <-ended:
		t.Errorf("a second ended record: flow %d, %v", e.ID, e.Reason)
	default:
	}
}

// TestTableVanishedBurstWaits: a burst of vanished flows (the first dumps
// after a start find the flows made before it gone without a DESTROY)
// waits in the table for room in a subscriber's buffer instead of being
// dropped: a reader slower than the burst still gets every record.
func TestTableVanishedBurstWaits(t *testing.T) {
	const n = 200
	var flows []Flow
	for i := range n {
		flows = append(flows, withID(udp4, uint32(i+1)))
		flows[i].Orig.SrcPort = uint16(10000 + i)
	}
	k := newFakeKernel(flows...)
	tbl := newFakeTable(t, k, TableConfig{Interval: time.Hour, Filter: allFilter()})
	tbl.vanishGrace = 10 * time.Millisecond
	ended, dropped := tbl.SubscribeEndedCounted(8)
	sub := runTable(t, tbl)
	waitSnap(t, sub, "the initial dump", func(*Snapshot) bool { return true })

	k.change(func(k *fakeKernel) { clear(k.flows) }) // all ended, no DESTROY
	k.resync(t, sub, tbl)
	got := map[uint32]bool{}
	deadline := time.After(nstest.Patience)
	for len(got) < n {
		select {
		case e := <-ended:
			if e.Reason != EndVanished || got[e.ID] {
				t.Fatalf("record of flow %d, %v: want each flow once, vanished", e.ID, e.Reason)
			}
			got[e.ID] = true
			if len(got)%8 == 0 {
				runtime.Gosched() // a reader slower than the table
			}
		case <-deadline:
			t.Fatalf("%d of %d vanished records, %d dropped", len(got), n, dropped())
		}
	}
	if d := dropped(); d != 0 {
		t.Errorf("%d records dropped, want none", d)
	}
}

// stopTable runs tbl until the returned stop is called, which returns once
// Run has.
func stopTable(t *testing.T, tbl *Table) (<-chan *Snapshot, func()) {
	t.Helper()
	snaps, cancelSub := tbl.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tbl.Run(ctx) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return after cancel")
		}
		cancelSub()
	}
	t.Cleanup(stop)
	return snaps, stop
}

// TestTableDestroyAfterSweepIsNotVanished: a flow destroyed while a dump
// ran has its DESTROY arrive after the sweep removed it. That event ends
// it (once, as destroyed, with what the table knew of it), not a vanished
// record; nor does a flow that a dump missed and the next one finds again
// get one. Flows still waiting when the table stops are reported then.
func TestTableDestroyAfterSweepIsNotVanished(t *testing.T) {
	start := fakeBase.Add(-time.Hour)
	f1 := counted(withID(tcp4, 1), Counter{10, 1000}, Counter{8, 5000}, start)
	f2 := counted(withID(udp4, 2), Counter{3, 300}, Counter{2, 200}, start)
	f3 := counted(withID(tcp6, 3), Counter{1, 60}, Counter{1, 60}, start)
	k := newFakeKernel(f1, f2, f3)
	tbl := newFakeTable(t, k, TableConfig{Interval: time.Hour, Filter: allFilter()})
	tbl.vanishGrace = time.Hour // nothing is reported before the end
	ended := tbl.SubscribeEnded(10)
	sub, stop := stopTable(t, tbl)
	waitSnap(t, sub, "the initial dump", func(*Snapshot) bool { return true })

	// All three are missing from a dump: 1 and 2 ended, 3 is a glitch.
	k.change(func(k *fakeKernel) { clear(k.flows) })
	if s := k.resync(t, sub, tbl); len(s.Flows) != 0 {
		t.Fatalf("flows after the resync: %v", ids(s))
	}
	// Flow 1's DESTROY arrives late, without counters or start
	// (accounting and timestamps switched off meanwhile).
	bare := f1
	bare.HasCounters, bare.OrigCount, bare.ReplyCount, bare.Start = false, Counter{}, Counter{}, 0
	k.send(t, Event{Type: EventDestroy, Flow: bare})
	select {
	case e := <-ended:
		if e.ID != 1 || e.Reason != EndDestroyed || e.Reason.String() != "destroyed" {
			t.Fatalf("ended record of flow %d, %v; want flow 1, destroyed", e.ID, e.Reason)
		}
		if !e.HasCounters || e.OrigCount != f1.OrigCount || !e.Start.Time().Equal(start) {
			t.Errorf("late DESTROY record %+v: want the counters and start the table knew", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no ended record for the late DESTROY")
	}
	// Flow 3 is found again, the same kernel entry (same start).
	k.change(func(k *fakeKernel) { k.flows[3] = f3 })
	if s := k.resync(t, sub, tbl); !slices.Equal(ids(s), []uint32{3}) {
		t.Fatalf("flows after the second resync: %v", ids(s))
	}

	stop()
	var got []string
	for len(ended) > 0 {
		e := <-ended
		got = append(got, fmt.Sprintf("%d %v", e.ID, e.Reason))
	}
	if diff := cmp.Diff([]string{"2 vanished"}, got); diff != "" {
		t.Errorf("ended records at the stop (-want +got):\n%s", diff)
	}
}

// TestTableRefreshesOnTick checks the periodic refresh: flows the events
// never told about appear, flows gone disappear.
func TestTableRefreshesOnTick(t *testing.T) {
	k := newFakeKernel(withID(tcp4, 1))
	_, sub := startTable(t, k, TableConfig{Interval: 5 * time.Millisecond, Filter: allFilter(), Now: time.Now})
	waitSnap(t, sub, "flow 1", func(s *Snapshot) bool { return slices.Equal(ids(s), []uint32{1}) })
	k.change(func(k *fakeKernel) { delete(k.flows, 1); k.flows[2] = withID(udp4, 2) })
	s := waitSnap(t, sub, "flow 2 only", func(s *Snapshot) bool { return slices.Equal(ids(s), []uint32{2}) })
	if s.Health.RefreshEvery != 5*time.Millisecond || s.Health.Resyncs != 0 {
		t.Errorf("health %+v", s.Health)
	}
}

func TestTableOverrunResync(t *testing.T) {
	k := newFakeKernel(withID(tcp4, 1), withID(tcp6, 2))
	tbl, sub := startTable(t, k, TableConfig{Interval: time.Hour, Filter: allFilter(), KernelFlows: k.count})
	s := waitSnap(t, sub, "the initial dump", func(*Snapshot) bool { return true })
	if s.Health.KernelFlows != 2 {
		t.Errorf("KernelFlows = %d, want 2", s.Health.KernelFlows)
	}
	// The kernel changes and the events are lost: flow 1 ended, 3 and 4 began.
	k.change(func(k *fakeKernel) {
		delete(k.flows, 1)
		k.flows[3], k.flows[4] = withID(udp4, 3), withID(udp6, 4)
	})
	s = settle(t, tbl, sub, allFilter(), "a republish", func(*Snapshot) bool { return true })
	if diff := cmp.Diff([]uint32{1, 2}, ids(s)); diff != "" {
		t.Fatalf("table changed without events or refresh (-want +got):\n%s", diff)
	}
	k.send(t, Event{Type: EventOverrun, Err: unix.ENOBUFS})
	s = waitSnap(t, sub, "the resync", func(s *Snapshot) bool { return s.Health.Resyncs == 1 })
	if s.Health.Overruns != 1 {
		t.Errorf("Overruns = %d, want 1", s.Health.Overruns)
	}
	if diff := cmp.Diff([]uint32{2, 3, 4}, ids(s)); diff != "" {
		t.Errorf("flows after the resync (-want +got):\n%s", diff)
	}
	if s.Health.KernelFlows != 3 || s.TableFlows != 3 {
		t.Errorf("KernelFlows %d, TableFlows %d; want 3 and 3", s.Health.KernelFlows, s.TableFlows)
	}
}

func TestTableSetFilter(t *testing.T) {
	k := newFakeKernel(withID(tcp4, 1), withID(udp4, 2), withID(udp6, 3))
	tbl, sub := startTable(t, k, TableConfig{Interval: time.Hour, Filter: DefaultFilter()})
	s := waitSnap(t, sub, "the initial dump", func(*Snapshot) bool { return true })
	if diff := cmp.Diff([]uint32{1}, ids(s)); diff != "" || s.TableFlows != 3 {
		t.Errorf("default filter: TableFlows %d, flows (-want +got):\n%s", s.TableFlows, diff)
	}
	f := Filter{IPv6: true, Protos: protos(ProtoUDP)}
	tbl.SetFilter(f)
	s = waitSnap(t, sub, "the new filter", func(s *Snapshot) bool { return s.Filter.IPv6 && !s.Filter.IPv4 })
	if diff := cmp.Diff([]uint32{3}, ids(s)); diff != "" {
		t.Errorf("flows after SetFilter (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(f, s.Filter); diff != "" || tbl.Latest() != s {
		t.Errorf("snapshot filter (-want +got):\n%s", diff)
	}
	// The filter stays for later refreshes.
	s = k.resync(t, sub, tbl)
	if diff := cmp.Diff([]uint32{3}, ids(s)); diff != "" {
		t.Errorf("flows after a refresh (-want +got):\n%s", diff)
	}
}

func TestTableLatest(t *testing.T) {
	k := newFakeKernel(withID(tcp4, 1))
	k.gate = make(chan struct{})
	tbl, sub := startTable(t, k, TableConfig{Interval: time.Hour, Filter: allFilter()})
	time.Sleep(20 * time.Millisecond)
	if tbl.Latest() != nil {
		t.Fatal("Latest before the first dump ended")
	}
	k.gate <- struct{}{}
	waitSnap(t, sub, "the initial dump", func(*Snapshot) bool { return true })
	k.change(func(k *fakeKernel) { k.gate = nil; k.dumpErr = errors.New("netlink: boom") })
	// A failed refresh keeps the last table and says why.
	k.send(t, Event{Type: EventOverrun, Err: unix.ENOBUFS})
	s := waitSnap(t, sub, "the failed refresh", func(s *Snapshot) bool { return s.Health.Resyncs == 1 })
	if s.Health.LastError == "" || len(s.Flows) != 1 || tbl.Latest() == nil {
		t.Errorf("after a failed refresh: LastError %q, %d flows, Latest %v", s.Health.LastError, len(s.Flows), tbl.Latest())
	}
	k.change(func(k *fakeKernel) { k.dumpErr = nil })
	s = k.resync(t, sub, tbl)
	if s.Health.LastError != "" {
		t.Errorf("LastError stays after a good refresh: %q", s.Health.LastError)
	}
}

func TestTableRunOnce(t *testing.T) {
	k := newFakeKernel(withID(tcp4, 1))
	tbl := NewTable(TableConfig{Kernel: k, Filter: allFilter()})
	errc := make(chan error, 1)
	go func() { errc <- tbl.Run(context.Background()) }()
	select {
	case err := <-errc:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run with Interval 0 did not return after the dump")
	}
	if s := tbl.Latest(); s == nil || len(s.Flows) != 1 {
		t.Errorf("Latest after Run with Interval 0: %+v", s)
	}
	select {
	case <-k.listenDone:
	default:
		t.Error("Listen still runs after Run returned")
	}
}

func TestTableRunErrors(t *testing.T) {
	k := newFakeKernel()
	errPermission := errors.New("no permission to dump")
	k.dumpErr = errPermission
	err := NewTable(TableConfig{Kernel: k, Interval: time.Hour}).Run(context.Background())
	if !errors.Is(err, errPermission) {
		t.Errorf("Run with a failing first dump = %v, want the dump's error", err)
	}
	<-k.listenDone

	k = newFakeKernel()
	tbl := NewTable(TableConfig{Kernel: k, Interval: time.Hour})
	errc := make(chan error, 1)
	go func() { errc <- tbl.Run(context.Background()) }()
	dead := errors.New("event socket died")
	k.listenErr <- dead
	select {
	case err := <-errc:
		if !errors.Is(err, dead) {
			t.Errorf("Run = %v, want the Listen error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return when Listen failed")
	}
}

func TestTableSubscribeCancel(t *testing.T) {
	k := newFakeKernel()
	tbl, sub := startTable(t, k, TableConfig{Interval: time.Hour, Filter: allFilter()})
	waitSnap(t, sub, "the initial dump", func(*Snapshot) bool { return true })
	other, cancel := tbl.Subscribe()
	cancel()
	tbl.SetFilter(DefaultFilter())
	waitSnap(t, sub, "the new filter", func(s *Snapshot) bool { return !s.Filter.Protos.Has(ProtoUDP) })
	select {
	case s := <-other:
		t.Errorf("cancelled subscription got %+v", s)
	default:
	}
}

// TestTableUpdateWithoutProtoinfo: the kernel sends the TCP state and the
// labels in an UPDATE only when they changed. A connmark change (nft
// `ct mark set`, common on routers) carries neither, and must not reset an
// ESTABLISHED flow to NONE or clear its labels.
func TestTableUpdateWithoutProtoinfo(t *testing.T) {
	f1 := withID(tcp4, 1)
	f1.State, f1.Status = 3, StatusAssured|StatusConfirmed
	f1.Labels = RefLabels(Labels{0: 1})
	k := newFakeKernel(f1)
	tbl, sub := startTable(t, k, TableConfig{Interval: time.Hour, Filter: allFilter()})
	waitSnap(t, sub, "the initial dump", func(*Snapshot) bool { return true })

	marked := f1
	marked.Mark, marked.Timeout = 60, 300
	// What the kernel adapter makes of such an UPDATE (kernel's
	// TestDecodeUpdateWithoutProtoinfo): no state, no labels, and marks
	// saying they were absent.
	bare := marked
	bare.State, bare.Labels = 0, LabelsRef{}
	k.send(t, Event{Type: EventUpdate, Flow: bare, NoState: true, NoLabels: true})
	s := settle(t, tbl, sub, allFilter(), "the UPDATE", func(s *Snapshot) bool { return s.Health.Events == 1 })
	got := byID(s)[1]
	if got.Mark != 60 || got.Timeout != 300 {
		t.Errorf("UPDATE not applied: mark %d timeout %d", got.Mark, got.Timeout)
	}
	if got.StateName() != "ESTABLISHED" || got.Labels != f1.Labels {
		t.Errorf("an UPDATE without protoinfo and labels changed them: state %s, labels %x", got.StateName(), got.Labels.Get())
	}

	// An UPDATE that carries them still applies them.
	closing := marked
	closing.State = 4
	k.send(t, Event{Type: EventUpdate, Flow: closing})
	s = settle(t, tbl, sub, allFilter(), "the second UPDATE", func(s *Snapshot) bool { return s.Health.Events == 2 })
	if got := byID(s)[1]; got.StateName() != "FIN_WAIT" {
		t.Errorf("state after an UPDATE with protoinfo = %s, want FIN_WAIT", got.StateName())
	}
}

// orderKernel dumps its flows in a given order, each dump with new counters.
type orderKernel struct{ flows []Flow }

func (k *orderKernel) Dump(fn func(*Flow)) (bool, error) {
	for i := range k.flows {
		k.flows[i].OrigCount.Bytes += 100
		f := k.flows[i]
		fn(&f)
	}
	return false, nil
}

func (k *orderKernel) Listen(ctx context.Context, _ chan<- Event) error {
	<-ctx.Done()
	return nil
}

// TestRefreshFollowsAnyDumpOrder: a refresh looks first at the entry after
// the last one found (the kernel's order rarely changes), and must still
// find every flow when the order changes, when flows appear anywhere in
// the dump or are gone, and when a new flow shares the kernel ID of the
// entry it meets (the ID is a hash).
func TestRefreshFollowsAnyDumpOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(21, 22))
	all := benchFlows(3000)
	k := &orderKernel{flows: slices.Clone(all[:2000])}
	now := time.Unix(1_700_000_100, 0)
	filter := DefaultFilter()
	filter.Protos.Add(ProtoUDP)
	tb := NewTable(TableConfig{Kernel: k, Interval: time.Second, Filter: filter, Now: func() time.Time { return now }})
	seen := map[Tuple]bool{} // flows of the previous dump
	check := func(step string) {
		t.Helper()
		if err := tb.refresh(); err != nil {
			t.Fatal(err)
		}
		tb.publish()
		want := map[Tuple]uint64{}
		for _, f := range k.flows {
			want[f.Orig] = f.OrigCount.Bytes
		}
		got := map[Tuple]uint64{}
		for _, f := range tb.Latest().Flows {
			if _, dup := got[f.Orig]; dup {
				t.Fatalf("%s: flow %v twice in the table", step, f.Orig)
			}
			got[f.Orig] = f.OrigCount.Bytes
			// A flow the last dump had kept its entry: its rate comes
			// from the counters of both dumps (100 bytes a second).
			if seen[f.Orig] && f.OrigRate.Bytes != 100 {
				t.Fatalf("%s: flow %v has rate %v, want 100 B/s from its last two dumps", step, f.Orig, f.OrigRate.Bytes)
			}
		}
		if !maps.Equal(got, want) {
			t.Fatalf("%s: the table has %d flows, the kernel %d, or their counters differ", step, len(got), len(want))
		}
		clear(seen)
		for o := range want {
			seen[o] = true
		}
	}
	check("first dump")
	now = now.Add(time.Second)
	check("same order")

	// New flows at many places, some gone, and new flows with the ID of
	// the flow after them in the dump (a hash collision), just where the
	// refresh looks first.
	next := slices.Clone(k.flows[:0:0])
	for i, f := range k.flows {
		if i%10 == 3 {
			continue // gone
		}
		if i%7 == 0 {
			n := all[2000+i/7]
			if i%21 == 0 {
				n.ID = f.ID
			}
			next = append(next, n)
		}
		next = append(next, f)
	}
	k.flows = next
	now = now.Add(time.Second)
	check("flows new and gone")

	r.Shuffle(len(k.flows), func(i, j int) { k.flows[i], k.flows[j] = k.flows[j], k.flows[i] })
	now = now.Add(time.Second)
	check("shuffled")
	now = now.Add(time.Second)
	check("shuffled, again")
}
