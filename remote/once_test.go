package remote

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/flowtop/flowtop/mqttexport"
	"github.com/flowtop/flowtop/report"
)

// waitOnline waits until the node's retained status says online: its
// exporter is subscribed to requests by then.
func waitOnline(t *testing.T, b *broker, node string) {
	t.Helper()
	p := newPub(t, b, nil)
	p.subscribe(t, "flowtop/"+node+"/status")
	p.next(t, node+" online", func(m mqtt.Message) bool { return string(m.Payload()) == "online" })
}

// TestFetchOnce: the answer of a real exporter, split into parts (and
// gzipped), comes back as one document with every flow; a node that does
// not answer gives the one-line timeout error, an offline one fails at
// once.
func TestFetchOnce(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	startRouter(t, b, "split", 50, func(c *mqttexport.Config) { c.MaxPayload = 8 << 10 })
	startRouter(t, b, "zipped", 50, func(c *mqttexport.Config) { c.MaxPayload = 4 << 10; c.Gzip = true })
	waitOnline(t, b, "split")
	waitOnline(t, b, "zipped")

	for _, node := range []string{"split", "zipped"} {
		cfg := b.config()
		cfg.Limit = 40
		doc, err := FetchOnce(context.Background(), cfg, node, patience)
		if err != nil {
			t.Fatalf("%s: %v", node, err)
		}
		var d report.Document
		if err := json.Unmarshal(doc, &d); err != nil {
			t.Fatalf("%s: the joined document does not parse: %v: %s", node, err, short(doc))
		}
		if len(d.Flows) != 40 || d.Totals.Flows != 50 || d.Totals.Listed != 40 || d.Host != node ||
			!strings.HasPrefix(d.RequestID, "once-") || strings.Contains(string(doc), `"part"`) || !strings.HasSuffix(string(doc), "}\n") {
			t.Errorf("%s: %d flows, totals %d, listed %d, host %q, request %q; want 40 of 50 in one document: %s",
				node, len(d.Flows), d.Totals.Flows, d.Totals.Listed, d.Host, d.RequestID, short(doc))
		}
		// Busiest first, every flow once: the parts in order.
		for i := range d.Flows {
			if d.Flows[i].ID != uint32(1000+i) {
				t.Fatalf("%s: flow %d has id %d, want %d", node, i, d.Flows[i].ID, 1000+i)
			}
		}
	}

	start := time.Now()
	_, err := FetchOnce(context.Background(), b.config(), "ghost", 300*time.Millisecond)
	if err == nil || err.Error() != "node ghost did not answer within 300ms" {
		t.Errorf("ghost: %v", err)
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Error("ghost: failed before the timeout")
	}

	p := newPub(t, b, nil)
	p.publish(t, "flowtop/down/status", true, "offline")
	_, err = FetchOnce(context.Background(), b.config(), "down", patience)
	if err == nil || !strings.Contains(err.Error(), "node down is offline") {
		t.Errorf("down: %v", err)
	}

	cfg := b.config()
	cfg.URL = "tcp://127.0.0.1:1" // nothing listens there
	if _, err := FetchOnce(context.Background(), cfg, "split", time.Second); err == nil || !strings.Contains(err.Error(), "connect to tcp://127.0.0.1:1") {
		t.Errorf("no broker: %v", err)
	}
}

// TestFetchNodes: the retained statuses and state summaries are there at
// once; a document that arrives within the wait is too.
func TestFetchNodes(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	startRouter(t, b, "r1", 5, nil)
	waitOnline(t, b, "r1")
	p := newPub(t, b, nil)
	p.publish(t, "flowtop/r2/status", true, "offline")

	nodes, err := FetchNodes(context.Background(), b.config(), 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if len(nodes) != 2 || nodes[0].Name != "r1" || nodes[0].Status != StatusOnline || nodes[0].Flows != 5 ||
		nodes[1].Name != "r2" || nodes[1].Status != StatusOffline {
		t.Errorf("nodes: %s", nodesString(nodes))
	}

	cfg := b.config()
	cfg.URL = "tcp://127.0.0.1:1"
	if _, err := FetchNodes(context.Background(), cfg, time.Second); err == nil || !strings.Contains(err.Error(), "connect to") {
		t.Errorf("no broker: %v", err)
	}
}
