package mqttexport

import (
	"regexp"
	"testing"
	"time"
)

// retryWaits returns the waits the exporter logged after lost
// connections ("mqtt connection lost ... retry_in=...").
func retryWaits(t *testing.T, logs string) []time.Duration {
	t.Helper()
	var out []time.Duration
	for _, m := range regexp.MustCompile(`msg="mqtt connection lost".* retry_in=(\S+)`).FindAllStringSubmatch(logs, -1) {
		d, err := time.ParseDuration(m[1])
		if err != nil {
			t.Fatalf("retry_in %q: %v", m[1], err)
		}
		out = append(out, d)
	}
	return out
}

// TestBackoffResetsOnFlappingBroker: a broker that drops the connection
// now and then, each time after it stayed up a while, is reconnected to
// after the shortest wait each time; the wait used to double at each drop
// until flowtop waited 30 s once the broker was back. stableAfter keeps
// its default here: how long "a while" is is what this test is about.
func TestBackoffResetsOnFlappingBroker(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	p := startProxy(t, b)
	h := newHarness(t, b, func(c *harnessConfig) { c.URL = p.url() })
	h.e.minBackoff, h.e.maxBackoff = 200*time.Millisecond, time.Minute
	h.run(t)

	const drops = 4
	for range drops {
		waitFor(t, patience, "connected", func() bool { return *h.e.Health().Connected })
		up := time.Now()
		waitFor(t, patience, "the connection up for longer than stableAfter", func() bool {
			return time.Since(up) > h.e.stableAfter+200*time.Millisecond
		})
		p.cut()
		waitFor(t, patience, "disconnected", func() bool { return !*h.e.Health().Connected })
	}
	waitFor(t, patience, "connected", func() bool { return *h.e.Health().Connected })
	waits := retryWaits(t, h.logs.String())
	t.Logf("waits after each drop: %v", waits)
	if len(waits) != drops {
		t.Fatalf("%d waits logged, want %d", len(waits), drops)
	}
	for i, w := range waits {
		if w > h.e.minBackoff*6/5 {
			t.Errorf("wait %v after drop %d, want the shortest (%v, ±20%%)", w, i+1, h.e.minBackoff)
		}
	}
}

// TestReconnectSoonWhileEndedQueued: however long the backoff has grown,
// flowtop tries again within endedWait once ended records wait to be
// sent, and sends them when the broker is back.
func TestReconnectSoonWhileEndedQueued(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	p := startProxy(t, b)
	h := newHarness(t, b, func(c *harnessConfig) { c.URL = p.url() })
	h.e.minBackoff, h.e.maxBackoff = 2*time.Minute, 2*time.Minute
	h.e.endedWait = 300 * time.Millisecond
	ids := collectEnded(t, subscribe(t, b, nil, h.t.ended))
	h.run(t)
	waitFor(t, patience, "connected", func() bool { return *h.e.Health().Connected })

	p.setRefuse(true)
	p.cut()
	waitFor(t, patience, "disconnected", func() bool { return !*h.e.Health().Connected })
	// Nothing queued: the exporter waits its two minutes, until records
	// end.
	attempts := p.accepts.Load()
	h.sendEnded(1, 10)
	waitFor(t, patience, "two refused attempts", func() bool { return p.accepts.Load() >= attempts+2 })
	p.setRefuse(false)
	ids.waitAll(t, h, 10)
}
