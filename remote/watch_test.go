package remote

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// leaseSeen is a watch request seen on the broker.
type leaseSeen struct {
	topic string
	body  leaseBody
}

func nextLease(t *testing.T, p *pubClient) leaseSeen {
	t.Helper()
	m := p.next(t, "watch request", func(mqtt.Message) bool { return true })
	var l leaseSeen
	l.topic = m.Topic()
	if err := json.Unmarshal(m.Payload(), &l.body); err != nil {
		t.Fatalf("watch request on %s: %v: %s", m.Topic(), err, short(m.Payload()))
	}
	if m.Retained() {
		t.Fatalf("retained watch request on %s", m.Topic())
	}
	return l
}

// TestWatchLeases: a watched node gets a lease at once and a renewal
// every lease/3; watching another node cancels the first one's lease and
// renews none of it after; the fleet view renews one broadcast lease;
// Close cancels what is held.
func TestWatchLeases(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	obs := newPub(t, b, nil)
	obs.subscribe(t, "flowtop/+/request", "flowtop/broadcast/request")
	cfg := b.config()
	cfg.Lease = 900 * time.Millisecond
	cfg.Interval = 500 * time.Millisecond
	c := openViewer(t, cfg)
	obs.publish(t, "flowtop/a/status", true, "online")
	obs.publish(t, "flowtop/b/status", true, "online")
	waitFor(t, c, "nodes a and b", func() bool { return len(c.Nodes()) == 2 })

	c.Watch("a")
	want := leaseBody{ID: cfg.ClientID, Watch: 0.9, Interval: 0.5, Limit: DefaultWatchLimit, Sort: "rate"}
	var first, third time.Time
	for i := range 3 {
		l := nextLease(t, obs)
		if l.topic != "flowtop/a/request" || l.body != want {
			t.Fatalf("lease %d: %s %+v, want flowtop/a/request %+v", i, l.topic, l.body, want)
		}
		switch i {
		case 0:
			first = time.Now()
		case 2:
			third = time.Now()
		}
	}
	// Not a timing assertion: renewals must not come as fast as they can.
	if third.Sub(first) < 300*time.Millisecond {
		t.Errorf("three leases within %v: renewed faster than every lease/3", third.Sub(first))
	}
	waitFor(t, c, "a watched", func() bool { n, _ := nodeInfo(c, "a"); return n.Watched })

	c.Watch("b")
	cancelled := false
	for renewedB := 0; renewedB < 3; {
		l := nextLease(t, obs)
		switch {
		case l.topic == "flowtop/a/request" && l.body.Watch == 0:
			cancelled = true
		case l.topic == "flowtop/a/request" && cancelled:
			t.Fatalf("a renewed after its cancellation: %+v", l.body)
		case l.topic == "flowtop/b/request":
			if !cancelled {
				t.Fatal("b leased before a was cancelled")
			}
			renewedB++
		}
	}
	waitFor(t, c, "only b watched", func() bool {
		a, _ := nodeInfo(c, "a")
		b, _ := nodeInfo(c, "b")
		return !a.Watched && b.Watched
	})

	c.WatchAll()
	for broadcasts := 0; broadcasts < 2; {
		l := nextLease(t, obs)
		if l.topic == "flowtop/broadcast/request" {
			if l.body != want {
				t.Fatalf("broadcast lease %+v, want %+v", l.body, want)
			}
			broadcasts++
		}
	}
	c.Close()
	for {
		l := nextLease(t, obs)
		if l.topic == "flowtop/broadcast/request" && l.body.Watch == 0 {
			break // Close cancelled the fleet lease
		}
	}
}

// TestWatchOnlyTopicLevels: names that cannot be a topic level (a
// wildcard, a /) or that are the broadcast level are never watched: a
// lease published there would have the broker drop the connection, or
// ask every router.
func TestWatchOnlyTopicLevels(t *testing.T) {
	s, err := Config{URL: "tcp://127.0.0.1:1"}.validate()
	if err != nil {
		t.Fatal(err)
	}
	tr := newTracker(s)
	tr.setWatch(watchSet{nodes: []string{"r1#", "a/b", "r+", "broadcast", "r2"}})
	if got := tr.leaseTopics(); !slices.Equal(got, []string{"flowtop/r2/request"}) {
		t.Errorf("lease topics %q, want only r2's", got)
	}
}

// TestWatchSummary: the Nodes tab's lease asks every node, through the
// broadcast topic, for its totals (one flow) every NodesInterval; Watch
// of one node cancels it. Nodes under it are watched at that period, and
// stale after two of them and 10 s.
func TestWatchSummary(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	obs := newPub(t, b, nil)
	obs.subscribe(t, "flowtop/+/request", "flowtop/broadcast/request")
	cfg := b.config()
	cfg.Lease = 900 * time.Millisecond
	cfg.NodesInterval = 7 * time.Second
	c := openViewer(t, cfg)
	obs.publish(t, "flowtop/a/status", true, "online")
	waitFor(t, c, "node a", func() bool { return len(c.Nodes()) == 1 })

	c.WatchSummary()
	want := leaseBody{ID: cfg.ClientID, Watch: 0.9, Interval: 7, Limit: 1, Sort: "rate"}
	if l := nextLease(t, obs); l.topic != "flowtop/broadcast/request" || l.body != want {
		t.Fatalf("summary lease: %s %+v, want flowtop/broadcast/request %+v", l.topic, l.body, want)
	}
	waitFor(t, c, "a watched every 7 s", func() bool {
		n, _ := nodeInfo(c, "a")
		return n.Watched && n.WatchEvery == 7*time.Second
	})
	c.Watch("a")
	for {
		l := nextLease(t, obs)
		if l.topic == "flowtop/broadcast/request" && l.body.Watch == 0 {
			break // the summary lease ended
		}
		if l.body.Interval == 7 {
			continue // a renewal sent before the change
		}
		t.Fatalf("after Watch(a): %s %+v before the summary lease was cancelled", l.topic, l.body)
	}
}
