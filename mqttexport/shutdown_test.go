package mqttexport

import (
	"encoding/json"
	"slices"
	"syscall"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/report"
)

// sendEnded puts records with ids from..from+n-1 on the harness's Ended
// channel.
func (h *harness) sendEnded(from, n int) {
	for i := range n {
		f := testSnapshot(1).Flows[0]
		f.ID = uint32(from + i)
		h.ended <- conntrack.Ended{Flow: *f, Stop: time.Now()}
	}
}

// stopTimed ends Run and tells how long it took to return.
func (h *harness) stopTimed(t *testing.T) time.Duration {
	t.Helper()
	start := time.Now()
	h.stop(t)
	return time.Since(start)
}

func ids(n int) []uint32 {
	out := make([]uint32, n)
	for i := range out {
		out[i] = uint32(i + 1)
	}
	return out
}

// The records of the last second, and those the table delivers as it
// stops, are published before "offline".
func TestEndedFlushedAtShutdown(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	h := newHarness(t, b, nil)
	h.e.endedEvery = time.Hour // only the shutdown can publish them
	s := subscribe(t, b, nil, h.t.ended, h.t.status)
	h.run(t)
	s.next(t, patience, isPayload(h.t.status, statusOnline))

	h.sendEnded(1, 5)
	h.cancel()
	h.sendEnded(6, 3) // the table's last DESTROY records, after the cancel
	// About the flush's 2 s at most; more on a busy machine.
	if took := h.stopTimed(t); took > 8*time.Second {
		t.Errorf("Run returned %v after cancel", took)
	}

	var got []uint32
	for {
		m := s.next(t, patience, nil)
		if m.topic == h.t.status {
			if string(m.payload) != statusOffline {
				t.Fatalf("status %q", m.payload)
			}
			break
		}
		var recs []report.Ended
		if err := json.Unmarshal(m.payload, &recs); err != nil {
			t.Fatalf("%s: %v", m.topic, err)
		}
		for _, r := range recs {
			got = append(got, r.ID)
		}
	}
	if !slices.Equal(got, ids(8)) {
		t.Errorf("ended records before offline: %v, want %v", got, ids(8))
	}
	if st := h.e.Health(); st.Dropped != 0 {
		t.Errorf("%s: want nothing dropped", statsLine(st))
	}
}

// With the broker gone at shutdown nothing waits for it: the records are
// counted as dropped.
func TestEndedAtShutdownBrokerDown(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	h := newHarness(t, b, nil)
	s := subscribe(t, b, nil, h.t.status)
	h.run(t)
	s.next(t, patience, isPayload(h.t.status, statusOnline))

	b.stop()
	waitFor(t, patience, "disconnected", func() bool { return !*h.e.Health().Connected })
	before := h.e.Health()
	h.sendEnded(1, 7)
	took := h.stopTimed(t)
	after := h.e.Health()
	t.Logf("Run returned %v after cancel; %s", took, statsLine(after))
	if took > 8*time.Second {
		t.Errorf("Run returned %v after cancel, want about nothing (8s on a busy machine)", took)
	}
	if d := after.Dropped - before.Dropped; d != 7 {
		t.Errorf("%d dropped at shutdown, want the 7 records", d)
	}
	if after.Published != before.Published {
		t.Errorf("published %d -> %d with the broker down", before.Published, after.Published)
	}
}

// A broker that holds the connection open but answers nothing (stopped)
// delays the shutdown by the flush deadline and the offline wait, no more.
func TestEndedAtShutdownBrokerHung(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	h := newHarness(t, b, nil)
	s := subscribe(t, b, nil, h.t.status)
	h.run(t)
	s.next(t, patience, isPayload(h.t.status, statusOnline))
	waitFor(t, patience, "connected", func() bool { return *h.e.Health().Connected })

	p := b.proc.Process().Process
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Signal(syscall.SIGCONT) }) // before the broker's own cleanup
	before := h.e.Health()
	h.sendEnded(1, 4)
	took := h.stopTimed(t)
	after := h.e.Health()
	t.Logf("Run returned %v after cancel; %s", took, statsLine(after))
	if took > 10*time.Second {
		t.Errorf("Run returned %v after cancel, want about 3s at most (10s on a busy machine)", took)
	}
	if d := after.Dropped - before.Dropped; d < 4 {
		t.Errorf("%d dropped at shutdown, want the 4 records", d)
	}
}
