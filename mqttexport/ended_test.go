package mqttexport

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/export"
	"github.com/flowtop/flowtop/report"
)

// endedIDs gathers the ids of the ended records a subscriber receives.
type endedIDs struct {
	mu   sync.Mutex
	seen map[uint32]int
	bad  error
}

// collectEnded reads every message s receives (subscribe it to the ended
// topic only) until the test ends.
func collectEnded(t testing.TB, s *subscriber) *endedIDs {
	c := &endedIDs{seen: map[uint32]int{}}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			case m := <-s.msgs:
				var recs []report.Ended
				err := json.Unmarshal(m.payload, &recs)
				c.mu.Lock()
				if err != nil && c.bad == nil {
					c.bad = fmt.Errorf("%s: %w: %.100s", m.topic, err, m.payload)
				}
				for _, r := range recs {
					c.seen[r.ID]++
				}
				c.mu.Unlock()
			}
		}
	})
	t.Cleanup(func() { close(done); wg.Wait() })
	return c
}

// missing returns how many of the ids 1..n were not received, and the
// first of them.
func (c *endedIDs) missing(n int) (count int, first uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := uint32(1); id <= uint32(n); id++ {
		if c.seen[id] == 0 {
			if count == 0 {
				first = id
			}
			count++
		}
	}
	return count, first
}

// waitAll waits until the ids 1..n have all been received, or some ended
// records were counted as lost, and fails the test in the second case or
// at the deadline.
func (c *endedIDs) waitAll(t testing.TB, h *harness, n int) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for {
		miss, first := c.missing(n)
		lost := h.e.endedLost.Load()
		switch {
		case miss == 0 && lost == 0:
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.bad != nil {
				t.Fatal(c.bad)
			}
			return
		case lost > 0 || time.Now().After(deadline):
			t.Fatalf("%d of %d ended records not received (first id %d), %d counted as lost", miss, n, first, lost)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func endedFlow(id int) conntrack.Ended {
	f := testSnapshot(1).Flows[0]
	f.ID = uint32(id)
	return conntrack.Ended{Flow: *f, Stop: time.Now()}
}

// TestEndedSurviveConnectionLoss: a batch whose publishing the lost
// connection cut short is sent again on the next connection (it used to
// be tried three times within a millisecond on the dead one, and
// dropped), and so are the records that ended meanwhile.
func TestEndedSurviveConnectionLoss(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	p := startProxy(t, b)
	h := newHarness(t, b, func(c *harnessConfig) { c.URL = p.url() })
	h.e.endedEvery = 50 * time.Millisecond
	ids := collectEnded(t, subscribe(t, b, nil, h.t.ended))
	h.run(t)

	const rounds, per = 3, 100
	next := 1
	for round := range rounds {
		waitFor(t, patience, "connected", func() bool { return *h.e.Health().Connected })
		// The network swallows what is sent: the batch awaits its
		// acknowledgement when the connection breaks.
		p.setHole(true)
		swallowed := p.swallow.Load()
		h.sendEnded(next, per)
		next += per
		waitFor(t, patience, "a batch in flight", func() bool { return p.swallow.Load() > swallowed })
		p.setRefuse(true)
		p.cut()
		p.setHole(false)
		waitFor(t, patience, "disconnected", func() bool { return !*h.e.Health().Connected })
		// Records end while the broker is away, too.
		h.sendEnded(next, per)
		next += per
		attempts := p.accepts.Load()
		waitFor(t, patience, "a refused reconnect", func() bool { return p.accepts.Load() > attempts })
		p.setRefuse(false)
		t.Logf("round %d: %s", round+1, statsLine(h.e.Health()))
	}
	ids.waitAll(t, h, next-1)
}

// slowAck is a broker connection that acknowledges each publish after a
// pause, as a remote broker does; it records the topics in order.
type slowAck struct {
	ackLater
	pause time.Duration
	// at is called after each publish with the count so far (mu held).
	at func(n int)
}

func (c *slowAck) Publish(topic string, qos byte, retained bool, payload any) mqtt.Token {
	c.mu.Lock()
	c.published = append(c.published, topic)
	if c.at != nil {
		c.at(len(c.published))
	}
	c.mu.Unlock()
	tok := &ackToken{done: make(chan struct{})}
	time.AfterFunc(c.pause, func() { close(tok.done) })
	return tok
}

// TestEndedBetweenSnapshotParts: ended records queued while a big
// snapshot is being published go out between its parts, not after it.
func TestEndedBetweenSnapshotParts(t *testing.T) {
	snap := testSnapshot(3000)
	e, err := New(Config{URL: "tcp://127.0.0.1:1", Node: "n", MaxPayload: 16 << 10},
		export.Env{Latest: func() *conntrack.Snapshot { return snap }})
	if err != nil {
		t.Fatal(err)
	}
	c := &slowAck{pause: time.Millisecond}
	c.at = func(n int) {
		if n == 3 { // while the third part is published
			e.out.put(&job{kind: jobEnded, ended: []conntrack.Ended{endedFlow(1), endedFlow(2)}})
		}
	}
	if err := e.publish(t.Context(), c, &job{kind: jobSnapshot, snap: snap}); err != nil {
		t.Fatal(err)
	}
	endedAt, parts := -1, 0
	for i, topic := range c.published {
		switch topic {
		case e.t.ended:
			endedAt = i
		case e.t.snapshot:
			parts++
		}
	}
	if parts < 20 {
		t.Fatalf("%d parts, want a snapshot of 20 or more", parts)
	}
	if endedAt < 0 || endedAt > 4 {
		t.Errorf("the ended batch queued during part 3 of %d was published as message %d (-1: not at all)", parts, endedAt+1)
	}
	if _, n := e.out.size(); n != 0 {
		t.Errorf("%d ended records still queued", n)
	}
}

// TestEndedNotStarvedBySnapshots: with a snapshot always waiting (a big
// one, at a short interval), ended records still go out as they come,
// well within a small queue bound.
func TestEndedNotStarvedBySnapshots(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	h := newHarness(t, b, func(c *harnessConfig) { c.Interval = 50 * time.Millisecond; c.MaxPayload = 16 << 10 })
	h.snap.Store(testSnapshot(5000))
	h.e.maxEnded, h.e.out.maxEnded = 1000, 1000
	h.e.endedEvery = 100 * time.Millisecond
	ids := collectEnded(t, subscribe(t, b, nil, h.t.ended))
	h.run(t)
	waitFor(t, patience, "connected", func() bool { return *h.e.Health().Connected })

	const n = 3000 // 500 a second
	for i := 1; i <= n; i += 50 {
		h.sendEnded(i, 50)
		time.Sleep(100 * time.Millisecond)
	}
	ids.waitAll(t, h, n)
	t.Logf("%s", statsLine(h.e.Health()))
}

// deadClient is a connection that dies with its first publish in flight:
// that publish fails once the test says so, as paho fails the tokens of a
// lost connection, and every later one fails at once with
// mqtt.ErrNotConnected. Paho calls the connection-lost handler after
// failing the tokens, so the exporter may still hold the client then.
type deadClient struct {
	mqtt.Client
	mu       sync.Mutex
	calls    int
	die      chan struct{}
	inFlight chan struct{} // closed at the first publish
}

func (c *deadClient) Publish(string, byte, bool, any) mqtt.Token {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	tok := &failToken{done: make(chan struct{})}
	if c.calls == 1 {
		close(c.inFlight)
		go func() {
			<-c.die
			tok.err = errors.New("connection lost before Publish completed")
			close(tok.done)
		}()
		return tok
	}
	tok.err = mqtt.ErrNotConnected
	close(tok.done)
	return tok
}

func (c *deadClient) IsConnectionOpen() bool { return false }

func (c *deadClient) publishes() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

type failToken struct {
	done chan struct{}
	err  error
}

func (t *failToken) Wait() bool                     { <-t.done; return true }
func (t *failToken) WaitTimeout(time.Duration) bool { return t.Wait() }
func (t *failToken) Done() <-chan struct{}          { return t.done }
func (t *failToken) Error() error                   { return t.err }

// liveClient acknowledges every publish at once.
type liveClient struct{ ackLater }

func (c *liveClient) IsConnectionOpen() bool { return true }

func (c *liveClient) topics() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.published)
}

// TestEndedRetriedOnTheNextConnection: a batch whose connection died
// under it waits for the next connection; it is not tried again on the
// dead one (three times in a millisecond, then dropped).
func TestEndedRetriedOnTheNextConnection(t *testing.T) {
	e, err := New(Config{URL: "tcp://127.0.0.1:1", Node: "n"}, export.Env{Latest: func() *conntrack.Snapshot { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	e.retryPause = time.Hour // on the same connection: not within the test
	dead := &deadClient{die: make(chan struct{}), inFlight: make(chan struct{})}
	e.client.Store(&clientRef{dead})
	e.out.put(&job{kind: jobEnded, ended: []conntrack.Ended{endedFlow(1), endedFlow(2)}})

	ctx, cancel := context.WithCancel(t.Context())
	queued := make(chan struct{})
	close(queued)
	done := make(chan struct{})
	go func() { defer close(done); e.sendLoop(ctx, t.Context(), queued) }()
	defer func() { cancel(); <-done }()

	<-dead.inFlight
	close(dead.die)
	waitFor(t, patience, "the batch back in the outbox, or dropped", func() bool {
		_, n := e.out.size()
		return n == 2 || e.dropped.Load() > 0
	})
	live := &liveClient{}
	e.client.Store(&clientRef{live})
	notify(e.connUp)
	waitFor(t, patience, "the batch on the new connection, or dropped", func() bool {
		return slices.Contains(live.topics(), e.t.ended) || e.dropped.Load() > 0
	})
	if n := dead.publishes(); n != 1 || e.dropped.Load() != 0 {
		t.Errorf("%d publishes on the dead connection, %d dropped; want 1 and none dropped", n, e.dropped.Load())
	}
}
