package remote

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/flowtop/flowtop/report"
)

// trackerFor is a tracker with test bounds, fed without a broker.
func trackerFor(t *testing.T, cfg Config) *tracker {
	t.Helper()
	cfg.URL = "tcp://127.0.0.1:1"
	s, err := cfg.validate()
	if err != nil {
		t.Fatal(err)
	}
	return newTracker(s)
}

func feed(tr *tracker, topic string, body []byte, now time.Time) {
	tr.message(inbound{topic: topic, body: body, size: len(body)}, now)
}

// TestFlowBudget: the flows held for all nodes stay within MaxFlows: a
// document that would go over is refused on its node, a node's own shown
// flows do not count against its next document, parts being joined do,
// and a retired node gives its flows back.
func TestFlowBudget(t *testing.T) {
	tr := trackerFor(t, Config{MaxFlows: 50})
	now := time.Now()
	doc := func(n int, at time.Duration) []byte {
		s := synthSnapshot(synthFlows(n))
		s.Time = docTime.Add(at)
		return encodeDoc(t, s, report.Options{})
	}
	feed(tr, "flowtop/a/snapshot", doc(30, 0), now)
	feed(tr, "flowtop/b/snapshot", doc(30, 0), now)
	if tr.held != 30 || tr.nodes["b"].view != nil || !strings.Contains(tr.nodes["b"].err, "room for 20 more (MaxFlows 50") {
		t.Fatalf("held %d, b: %q; want b refused at 20 flows", tr.held, tr.nodes["b"].err)
	}
	feed(tr, "flowtop/a/snapshot", doc(45, time.Second), now)
	if tr.held != 45 || len(tr.nodes["a"].view.records) != 45 {
		t.Fatalf("held %d; want a's 45 replacing its 30", tr.held)
	}
	// Parts: the first part fits, the second goes over: the document is
	// dropped, its flows given back.
	parts := partDocs(t, synthFlows(10), 2, docTime.Add(2*time.Second), "")
	feed(tr, "flowtop/b/snapshot", parts[0], now)
	if tr.held != 50 {
		t.Fatalf("held %d after b's first part; want 50", tr.held)
	}
	feed(tr, "flowtop/b/snapshot", parts[1], now)
	if tr.held != 45 || tr.nodes["b"].asm[0] != nil || !strings.Contains(tr.nodes["b"].err, "room for 0 more") {
		t.Fatalf("held %d, b: %q; want b's parts dropped", tr.held, tr.nodes["b"].err)
	}
	feed(tr, "flowtop/a/status", []byte{}, now) // retired
	if tr.held != 0 || len(tr.nodes) != 1 {
		t.Fatalf("held %d, %d nodes after a retired", tr.held, len(tr.nodes))
	}
	feed(tr, "flowtop/b/snapshot", doc(30, 3*time.Second), now)
	if tr.held != 30 || tr.nodes["b"].view == nil {
		t.Fatalf("held %d; want b shown", tr.held)
	}
}

// TestPartTimeout: parts that stop coming are shown incomplete when the
// timeout after the last one is over, not before.
func TestPartTimeout(t *testing.T) {
	tr := trackerFor(t, Config{PartTimeout: 5 * time.Second})
	now := time.Now()
	parts := partDocs(t, synthFlows(9), 3, docTime, "")
	feed(tr, "flowtop/a/snapshot", parts[0], now)
	feed(tr, "flowtop/a/snapshot", parts[1], now.Add(2*time.Second))
	if next := tr.expire(now.Add(6 * time.Second)); tr.nodes["a"].view != nil || !next.Equal(now.Add(7*time.Second)) {
		t.Fatalf("shown before the timeout after the last part (next %v)", next.Sub(now))
	}
	if next := tr.expire(now.Add(7 * time.Second)); !next.IsZero() {
		t.Fatalf("next %v after the timeout", next.Sub(now))
	}
	v := tr.nodes["a"].view
	if v == nil || v.Complete || v.PartsReceived != 2 || len(v.Snapshot.Flows) != 6 {
		t.Fatalf("view %+v", v)
	}
}

// TestStopsOnCancel: a Client whose context ends stops its goroutines
// (Changes is closed once they have), connected or not.
func TestStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	c, err := Open(ctx, Config{URL: "tcp://127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.After(patience)
	for {
		select {
		case _, ok := <-c.Changes():
			if !ok {
				c.Close() // again: a no-op
				return
			}
		case <-deadline:
			t.Fatal("the Client did not stop")
		}
	}
}

// TestNodeQuiet: a node's documents say how often it publishes; its data
// is stale once older than two of those periods and 10 s, and never
// while the period is unknown or the node is offline.
func TestNodeQuiet(t *testing.T) {
	s, err := Config{URL: "tcp://127.0.0.1:1"}.validate()
	if err != nil {
		t.Fatal(err)
	}
	tr := newTracker(s)
	p := report.Prepare(synthSnapshot(synthFlows(3)), report.Options{Host: "r1"})
	p.PublishIntervalS = 30
	var buf bytes.Buffer
	if err := p.Encode(&buf); err != nil {
		t.Fatal(err)
	}
	tr.message(inbound{topic: "flowtop/r1/snapshot", body: buf.Bytes(), size: buf.Len()}, docTime)
	nodes := tr.publish().nodes
	if len(nodes) != 1 || nodes[0].PublishEvery != 30*time.Second {
		t.Fatalf("nodes %s, want r1 publishing every 30s", nodesString(nodes))
	}
	n := nodes[0]
	for _, c := range []struct {
		age    time.Duration
		status Status
		want   bool
	}{
		{69 * time.Second, StatusOnline, false},
		{71 * time.Second, StatusOnline, true},
		{71 * time.Second, StatusOffline, false}, // offline says more
	} {
		n.Status = c.status
		if got := n.Stale(docTime.Add(c.age)); got != c.want {
			t.Errorf("age %v, %v: stale %v, want %v", c.age, c.status, got, c.want)
		}
	}
	n.PublishEvery = 0
	if n.Stale(docTime.Add(time.Hour)) {
		t.Error("stale without a known period")
	}
}
