package mqttexport

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/conntrack/nstest"
)

// Watch leases against a real broker (docs/mqtt.md, "Watching a node
// live"). The node publishes periodic snapshots every liveTestPeriod, far
// slower than the live stream, and its table makes a snapshot at every
// look (the harness) with a 100 ms refresh, so that the stream's pace is
// the leases' and not the table's.

const liveTestPeriod = 8 * time.Second

// liveHarness runs a node and subscribes to its snapshot, state and live
// topics; it returns once the snapshot made at connect arrived (its state, last). period is
// the periodic snapshots'.
func liveHarness(t *testing.T, period time.Duration) (*harness, *subscriber) {
	t.Helper()
	b := startBroker(t, brokerOptions{})
	h := newHarness(t, b, func(c *harnessConfig) { c.Interval = period })
	snap := testSnapshot(5)
	snap.Interval = 100 * time.Millisecond
	h.snap.Store(snap)
	s := subscribe(t, b, nil, h.t.snapshot, h.t.state, h.t.live)
	h.run(t)
	s.next(t, patience, onTopic(h.t.state)) // the last message of a snapshot
	return h, s
}

func watchBody(viewer string, lease, interval float64) string {
	return fmt.Sprintf(`{"id":%q,"watch":%g,"interval":%g}`, viewer, lease, interval)
}

// countTopics counts what arrives on each topic during d.
func countTopics(s *subscriber, d time.Duration) map[string]int {
	n := map[string]int{}
	for _, m := range s.collect(d, nil) {
		n[m.topic]++
	}
	return n
}

// waitLiveQuiet waits, at most within, for quiet with nothing on the live
// topic, and returns how many live documents came before.
func waitLiveQuiet(t *testing.T, h *harness, s *subscriber, quiet, within time.Duration) int {
	t.Helper()
	n := 0
	nstest.WaitFor(t, within, "the live stream to stop", func() (bool, string) {
		got := len(s.collect(quiet, onTopic(h.t.live)))
		n += got
		return got == 0, fmt.Sprintf("%d live documents in the last %v, %d in all", got, quiet, n)
	})
	return n
}

// TestLiveOneViewer: a lease asking 0.2 s gets live documents at the floor
// (0.5 s), with its limit and order and no request_id, on .../live; the
// snapshot and state topics keep their own period.
func TestLiveOneViewer(t *testing.T) {
	t.Parallel()
	h, s := liveHarness(t, liveTestPeriod)
	s.publish(t, h.t.request, false, `{"id":"v1","watch":30,"interval":0.2,"limit":3,"sort":"bytes"}`)
	m := s.next(t, patience, func(m received) bool { return m.topic == h.t.live })
	d := decodeDoc(t, m)
	if len(d.Flows) != 3 || d.Totals.Flows != 5 || d.RequestID != "" || m.retained {
		t.Errorf("live document: %d flows of %d, request_id %q, retained %v; want 3 of 5, none, not retained",
			len(d.Flows), d.Totals.Flows, d.RequestID, m.retained)
	}
	// Sorted by bytes: flow 5 moved the most.
	if len(d.Flows) > 0 && d.Flows[0].ID != 5 {
		t.Errorf("live document sorted by bytes starts with flow %d, want 5", d.Flows[0].ID)
	}

	const window = 4 * time.Second
	n := countTopics(s, window)
	// 8 at the 0.5 s floor (20 at 0.2 s); a busy machine may lose some.
	if live := n[h.t.live]; live < 3 || live > 10 {
		t.Errorf("%d live documents in %v; want about 8 (one per 0.5 s)", live, window)
	}
	// One periodic snapshot at most in a window half its period.
	if n[h.t.snapshot] > 1 || n[h.t.state] > 1 {
		t.Errorf("%d snapshots and %d states in %v while watched; the period is %v",
			n[h.t.snapshot], n[h.t.state], window, liveTestPeriod)
	}
}

// TestLiveViewersShareOneStream: three viewers, one by broadcast, get one
// stream, not three.
func TestLiveViewersShareOneStream(t *testing.T) {
	t.Parallel()
	h, s := liveHarness(t, liveTestPeriod)
	s.publish(t, h.t.request, false, watchBody("a", 30, 0.5))
	s.publish(t, h.t.request, false, watchBody("b", 30, 0.5))
	s.publish(t, h.t.broadcast, false, watchBody("c", 30, 0.5))
	s.next(t, patience, onTopic(h.t.live))
	nstest.WaitFor(t, patience, "three leases", func() (bool, string) {
		return h.e.requests.Load() >= 3, fmt.Sprintf("%d requests", h.e.requests.Load())
	})

	const window = 4 * time.Second
	// 8 for one stream, 24 for three.
	if live := countTopics(s, window)[h.t.live]; live < 3 || live > 10 {
		t.Errorf("%d live documents in %v for 3 viewers; want about 8 (one stream at 0.5 s)", live, window)
	}
}

// TestLiveLeaseExpires: a lease of 2 s that is not renewed ends the stream.
func TestLiveLeaseExpires(t *testing.T) {
	t.Parallel()
	h, s := liveHarness(t, liveTestPeriod)
	s.publish(t, h.t.request, false, watchBody("v", 2, 0.5))
	s.next(t, patience, onTopic(h.t.live))
	n := 1 + waitLiveQuiet(t, h, s, 2*time.Second, patience)
	// 2 s at 0.5 s: 4 or 5; one queued as the lease ends may follow.
	if n > 7 {
		t.Errorf("%d live documents for a 2 s lease at 0.5 s", n)
	}
	if st := h.e.Health(); st.Dropped != 0 {
		t.Errorf("%s: nothing should be dropped", statsLine(st))
	}
}

// TestLiveWatchZeroEnds: "watch": 0 ends a long lease at once.
func TestLiveWatchZeroEnds(t *testing.T) {
	t.Parallel()
	h, s := liveHarness(t, liveTestPeriod)
	s.publish(t, h.t.request, false, watchBody("v", 60, 0.5))
	s.next(t, patience, onTopic(h.t.live))
	s.next(t, patience, onTopic(h.t.live))
	s.publish(t, h.t.request, false, `{"id":"v","watch":0}`)
	// Without the cancel, the 60 s lease would go on past the deadline.
	if n := waitLiveQuiet(t, h, s, 2*time.Second, 20*time.Second); n > 2 {
		t.Errorf("%d live documents after \"watch\":0", n)
	}
}

// TestLiveBadWatchRequests: malformed watch requests and a viewer beyond
// the bound are counted as dropped and answered by nothing, neither live
// nor as a poll.
func TestLiveBadWatchRequests(t *testing.T) {
	t.Parallel()
	h, s := liveHarness(t, time.Hour) // no periodic snapshot in the way
	bad := []string{`{"watch":10}`, `{"id":"v","watch":-1}`, `{"id":"v","watch":"ten"}`,
		`{"id":"v","watch":10,"sort":"name"}`, `{"id":"v","watch":10,"interval":0}`}
	for _, body := range bad {
		s.publish(t, h.t.request, false, body)
	}
	nstest.WaitFor(t, patience, "the bad watch requests rejected", func() (bool, string) {
		return h.e.rejected.Load() == uint64(len(bad)), statsLine(h.e.Health())
	})
	if got := s.collect(1500*time.Millisecond, nil); len(got) != 0 {
		t.Errorf("%d messages (first on %s) answer bad watch requests", len(got), got[0].topic)
	}
	if st := h.e.Health(); st.Dropped != uint64(len(bad)) {
		t.Errorf("%s: want %d dropped", statsLine(st), len(bad))
	}

	// maxViewers leases are taken, the next viewer is refused.
	for i := range maxViewers + 1 {
		s.publish(t, h.t.request, false, watchBody(fmt.Sprintf("viewer-%d", i), 30, 1))
	}
	want := uint64(len(bad) + 1)
	nstest.WaitFor(t, patience, "one viewer refused", func() (bool, string) {
		return h.e.rejected.Load() == want && h.e.requests.Load() == want+maxViewers, statsLine(h.e.Health())
	})
	s.next(t, patience, onTopic(h.t.live)) // the others are served
	if st := h.e.Health(); st.Dropped != want {
		t.Errorf("%s: want %d dropped", statsLine(st), want)
	}
}

// TestLiveOncePerTableSnapshot: a table that makes a snapshot a second
// gets one live document per snapshot, not one per 0.5 s with repeats.
func TestLiveOncePerTableSnapshot(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	var table atomic.Pointer[conntrack.Snapshot]
	base := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	snapshotAt := func(k int) *conntrack.Snapshot {
		s := testSnapshot(2)
		s.Time, s.Interval = base.Add(time.Duration(k)*time.Second), 100*time.Millisecond
		return s
	}
	table.Store(snapshotAt(0))
	h := newHarness(t, b, func(c *harnessConfig) { c.Interval = time.Hour; c.Latest = table.Load })
	s := subscribe(t, b, nil, h.t.state, h.t.live)
	h.run(t)
	s.next(t, patience, onTopic(h.t.state)) // connected: the request is heard
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for k := 1; ; k++ {
			select {
			case <-stop:
				return
			case <-tick.C:
				table.Store(snapshotAt(k))
			}
		}
	})
	t.Cleanup(func() { close(stop); wg.Wait() })

	s.publish(t, h.t.request, false, watchBody("v", 30, 0.5))
	s.next(t, patience, onTopic(h.t.live))
	seen := map[time.Time]int{}
	for _, m := range s.collect(4*time.Second, onTopic(h.t.live)) {
		seen[decodeDoc(t, m).Time]++
	}
	for tm, n := range seen {
		if n > 1 {
			t.Errorf("table snapshot of %s published live %d times", tm.Format("15:04:05"), n)
		}
	}
	if len(seen) < 2 {
		t.Errorf("%d table snapshots published live in 4 s; want about 4", len(seen))
	}
}

// TestLiveSkippedWhileDisconnected: while the broker is away, live
// documents are not queued (to be replaced and counted as dropped one per
// interval); the stream resumes on reconnect.
func TestLiveSkippedWhileDisconnected(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	p := startProxy(t, b)
	h := newHarness(t, b, func(c *harnessConfig) { c.URL = p.url() })
	snap := testSnapshot(5)
	snap.Interval = 100 * time.Millisecond
	h.snap.Store(snap)
	s := subscribe(t, b, nil, h.t.state, h.t.live)
	h.run(t)
	s.next(t, patience, onTopic(h.t.state))
	s.publish(t, h.t.request, false, watchBody("v", 60, 0.5))
	s.next(t, patience, onTopic(h.t.live))

	p.setRefuse(true)
	p.cut()
	waitFor(t, patience, "disconnected", func() bool { return !*h.e.Health().Connected })
	s.collect(3*time.Second, nil) // six intervals of the lease
	if st := h.e.Health(); st.Dropped != 0 {
		t.Errorf("%s after 3 s disconnected; want nothing dropped", statsLine(st))
	}
	p.setRefuse(false)
	waitFor(t, patience, "connected", func() bool { return *h.e.Health().Connected })
	s.next(t, patience, onTopic(h.t.live))
}
