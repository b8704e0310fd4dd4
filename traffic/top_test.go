package traffic

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flowtop/flowtop/conntrack"
)

// rated returns f with the given current rates, in bytes/s.
func rated(f conntrack.Flow, orig, reply float32) conntrack.Flow {
	f.OrigRate = conntrack.Rate{Bytes: orig}
	f.ReplyRate = conntrack.Rate{Bytes: reply}
	return f
}

// sumHosts adds up the hosts' counters, "other" included.
func sumHosts(a *Accounting) Totals {
	var t Totals
	for _, h := range a.Hosts() {
		t.RxBytes += h.RxBytes
		t.TxBytes += h.TxBytes
		t.RxPackets += h.RxPackets
		t.TxPackets += h.TxPackets
	}
	return t
}

// TestTotalsSurviveExpiryAndEviction: the totals over local hosts count
// a flow's bytes once, keep them after the flow ended and after its host
// gave its place up, and never go down.
func TestTotalsSurviveExpiryAndEviction(t *testing.T) {
	a := New(nil, 2)
	var last Totals
	check := func(when string, want Totals) {
		t.Helper()
		got := a.Totals()
		if got.RxBytes < last.RxBytes || got.TxBytes < last.TxBytes {
			t.Fatalf("%s: totals went down from %+v to %+v", when, last, got)
		}
		last = got
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("%s: totals (-want +got):\n%s", when, diff)
		}
	}
	x := flow(1, "192.168.1.10", 40000, "203.0.113.5", 443)
	lan := flow(2, "192.168.1.10", 40001, "192.168.1.20", 22)
	remote := flow(3, "203.0.113.1", 1, "203.0.113.2", 2)
	a.Fold(snap(counted(x, 1e6, 1e6))) // the baseline: not counted
	check("baseline", Totals{})

	a.Fold(snap(counted(x, 1e6+100, 1e6+1000), counted(lan, 30, 300), counted(remote, 7, 7)))
	// x: 100 up, 1000 down. lan: both ends local, counted for both.
	want := Totals{RxBytes: 1000 + 300 + 30, TxBytes: 100 + 30 + 300, RxPackets: 10 + 3, TxPackets: 1 + 3}
	check("two flows", want)
	if diff := cmp.Diff(sumHosts(a), a.Totals()); diff != "" {
		t.Errorf("totals are not the hosts' sum (-hosts +totals):\n%s", diff)
	}

	// x ends with 500 more bytes down; the snapshot after no longer lists
	// it.
	a.Ended(&conntrack.Ended{Flow: counted(x, 1e6+100, 1e6+1500), Stop: seqTime})
	want.RxBytes += 500
	want.RxPackets += 5
	check("ended record", want)
	a.Fold(snap(counted(lan, 30, 300)))
	check("snapshot without the ended flow", want)

	// An hour later, the table full, 192.168.1.10 (no flow left) gives its
	// place to a new host; its bytes stay in the totals.
	a.Ended(&conntrack.Ended{Flow: counted(lan, 30, 300), Stop: seqTime})
	a.Fold(snap())
	seqTime = seqTime.Add(hostIdle + time.Second)
	a.Fold(snap())
	y := flow(4, "192.168.1.30", 1, "203.0.113.2", 2)
	a.Fold(snap(counted(y, 5, 50)))
	want.TxBytes += 5
	want.RxBytes += 50
	check("after eviction", want)
	for _, h := range a.Hosts() {
		if h.Label == "192.168.1.10" {
			t.Fatalf("192.168.1.10 kept its place: %+v", a.Hosts())
		}
	}
}

// TestTop: the hosts of the last snapshot by current rate (both
// directions summed), at most n; hosts without a flow now, remote
// addresses and "other" are not among them; the host behind a port
// forward is the one that answers.
func TestTop(t *testing.T) {
	a := New(nil, 8)
	a.Fold(snap())
	flows := []conntrack.Flow{
		rated(flow(1, "192.168.1.1", 1, "203.0.113.9", 443), 10, 100),  // .1: 110 B/s
		rated(flow(2, "192.168.1.2", 1, "203.0.113.9", 443), 100, 900), // .2: 1000 + 1 below
		rated(flow(3, "192.168.1.2", 2, "203.0.113.9", 443), 0, 1),
		rated(flow(4, "192.168.1.3", 1, "203.0.113.9", 443), 50, 50), // .3 and .4: 100, .4 has 2 flows
		rated(flow(5, "192.168.1.4", 1, "203.0.113.9", 443), 50, 50),
		rated(flow(6, "192.168.1.4", 2, "203.0.113.9", 443), 0, 0),
		rated(flow(7, "192.168.1.5", 1, "203.0.113.9", 443), 1, 1),        // .5: 2
		rated(flow(8, "203.0.113.1", 1, "203.0.113.2", 443), 1e6, 1e6),    // no local end
		rated(flow(9, "192.168.1.6", 1, "203.0.113.9", 443), 0, 0),        // .6: 0 B/s, 1 flow
		rated(flow(10, "192.168.1.7", 1, "203.0.113.9", 443), 5000, 5000), // .7: the busiest
	}
	// A port forward: the remote peer's bytes go to 192.168.1.8, which
	// receives the original direction.
	dnat := rated(flow(11, "203.0.113.50", 5000, "198.51.100.1", 8080), 300, 20)
	dnat.Reply.Src = conntrack.MustParseAddr("192.168.1.8")
	flows = append(flows, dnat)
	// Beyond the limit of 8 hosts: counted as "other", never listed.
	flows = append(flows, rated(flow(12, "192.168.1.9", 1, "203.0.113.9", 443), 1e5, 1e5))
	a.Fold(snap(flows...))

	type row struct {
		Label  string
		Rx, Tx float64
		Flows  int
	}
	rows := func(hs []Host) []row {
		var out []row
		for _, h := range hs {
			out = append(out, row{h.Label, h.RxBytesPerS, h.TxBytesPerS, h.Flows})
		}
		return out
	}
	want := []row{
		{"192.168.1.7", 5000, 5000, 1},
		{"192.168.1.2", 901, 100, 2},
		{"192.168.1.8", 300, 20, 1},
		{"192.168.1.1", 100, 10, 1},
		{"192.168.1.4", 50, 50, 2},
	}
	if diff := cmp.Diff(want, rows(a.Top(5))); diff != "" {
		t.Errorf("Top(5) (-want +got):\n%s", diff)
	}
	if got := len(a.Top(100)); got != 8 {
		t.Errorf("Top(100) lists %d hosts, want the 8 with places of their own", got)
	}
	if diff := cmp.Diff(want[:2], rows(a.Top(2))); diff != "" {
		t.Errorf("Top(2) (-want +got):\n%s", diff)
	}

	// The next snapshot: only .5 has a flow left; the others are not
	// listed any more.
	a.Fold(snap(rated(flow(7, "192.168.1.5", 1, "203.0.113.9", 443), 3, 4)))
	if diff := cmp.Diff([]row{{"192.168.1.5", 4, 3, 1}}, rows(a.Top(5))); diff != "" {
		t.Errorf("Top(5) of the next snapshot (-want +got):\n%s", diff)
	}
}

// TestEndedOutsideFilter: an ended flow that the snapshots' filter leaves
// out counts nothing (the snapshots never listed it either).
func TestEndedOutsideFilter(t *testing.T) {
	a := New(nil, 0)
	tcpOnly := snap()
	tcpOnly.Filter = conntrack.DefaultFilter()
	a.Fold(tcpOnly)
	u := counted(flow(1, "192.168.1.10", 5000, "203.0.113.5", 53), 100, 1000)
	u.Proto = conntrack.ProtoUDP
	a.Ended(&conntrack.Ended{Flow: u, Stop: seqTime})
	if got := a.Totals(); got != (Totals{}) {
		t.Errorf("a UDP flow counted under a TCP-only filter: %+v", got)
	}
	tcp := counted(flow(2, "192.168.1.10", 5001, "203.0.113.5", 443), 100, 1000)
	a.Ended(&conntrack.Ended{Flow: tcp, Stop: seqTime})
	if got := a.Totals(); got.RxBytes != 1000 || got.TxBytes != 100 {
		t.Errorf("a TCP flow's end counted %+v, want rx 1000, tx 100", got)
	}
}
