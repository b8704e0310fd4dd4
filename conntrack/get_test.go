package conntrack

import (
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack/ctgen"
)

// TestSourceGet asks the kernel for single flows of every kind (TCP, UDP,
// ICMP over IPv4 and IPv6) by their tuples, after more traffic than the
// dump saw: each answer must be that flow (same ID) with the counters
// grown by the new exchanges, and a flow the kernel does not hold is
// skipped without an error.
func TestSourceGet(t *testing.T) {
	env := startTableEnv(t, time.Hour) // for accounting and the pair
	a, b := env.a, env.b
	peers := everyKindOfPeer(t, a, b)
	for _, p := range peers {
		if err := p.exchange(); err != nil {
			t.Fatalf("%s: %v", p.name, err)
		}
	}
	src, err := Open(a.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	before := map[uint32]Flow{}
	var flows []*Flow
	if _, err := src.Dump(func(f *Flow) {
		before[f.ID] = *f
		c := *f
		flows = append(flows, &c)
	}); err != nil {
		t.Fatal(err)
	}
	if len(flows) < len(peers) {
		t.Fatalf("dump has %d flows, want at least %d", len(flows), len(peers))
	}
	for _, p := range peers {
		for range 3 {
			if err := p.exchange(); err != nil {
				t.Fatalf("%s: %v", p.name, err)
			}
		}
	}
	gone := *flows[0]
	gone.Orig.SrcPort, gone.Orig.ICMPID = 1, 1 // no such flow
	gone.ID = 0
	got := map[uint32]Flow{}
	if err := src.Get(append(flows, &gone), func(f *Flow) { got[f.ID] = *f }); err != nil {
		t.Fatalf("Get: %v", err)
	}
	if _, ok := got[0]; ok || len(got) != len(flows) {
		t.Fatalf("Get answered %d flows, want the %d the dump had", len(got), len(flows))
	}
	for id, g := range got {
		w := before[id]
		if g.Orig != w.Orig || g.Proto != w.Proto || g.Family != w.Family {
			t.Errorf("flow %d: Get answered %v %v, dump had %v %v", id, g.Proto, g.Orig, w.Proto, w.Orig)
		}
		// Each peer made three more exchanges of one packet each way.
		if !g.HasCounters || g.OrigCount.Packets < w.OrigCount.Packets+3 || g.ReplyCount.Packets < w.ReplyCount.Packets+3 {
			t.Errorf("%v flow %d: packets %d/%d after three more exchanges, dump had %d/%d", g.Proto, id,
				g.OrigCount.Packets, g.ReplyCount.Packets, w.OrigCount.Packets, w.ReplyCount.Packets)
		}
	}
}

// TestSourceGetBatches asks for more flows than one batch holds.
func TestSourceGetBatches(t *testing.T) {
	env := startTableEnv(t, time.Hour)
	nsf := env.src.NetnsFile()
	const n = 3*getBatch + 5
	if err := ctgen.CreateUDPFlows(int(nsf.Fd()), n); err != nil {
		t.Fatal(err)
	}
	src, err := Open(env.a.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var flows []*Flow
	if _, err := src.Dump(func(f *Flow) { c := *f; flows = append(flows, &c) }); err != nil {
		t.Fatal(err)
	}
	if len(flows) < n {
		t.Fatalf("dump has %d flows, want %d", len(flows), n)
	}
	seen := map[uint32]bool{}
	for range 2 { // twice: the second batch of requests must not see the first's answers
		clear(seen)
		if err := src.Get(flows, func(f *Flow) { seen[f.ID] = true }); err != nil {
			t.Fatalf("Get: %v", err)
		}
		if len(seen) != len(flows) {
			t.Fatalf("Get answered %d of %d flows", len(seen), len(flows))
		}
	}
}
