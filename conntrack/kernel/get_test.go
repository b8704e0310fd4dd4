package kernel

import (
	"strconv"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/conntrack/ctgen"
	"github.com/flowtop/flowtop/conntrack/nstest"
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
	before := map[uint32]conntrack.Flow{}
	var flows []*conntrack.Flow
	if _, err := src.Dump(func(f *conntrack.Flow) {
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
	gone.Orig.SrcPort, gone.ICMP.ID = 1, 1 // no such flow
	gone.ID = 0
	got := map[uint32]conntrack.Flow{}
	if err := src.Get(append(flows, &gone), func(f *conntrack.Flow) { got[f.ID] = *f }); err != nil {
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
	var flows []*conntrack.Flow
	if _, err := src.Dump(func(f *conntrack.Flow) { c := *f; flows = append(flows, &c) }); err != nil {
		t.Fatal(err)
	}
	if len(flows) < n {
		t.Fatalf("dump has %d flows, want %d", len(flows), n)
	}
	// The batches cross the point where the sequence numbers would wrap
	// to 0 (which netlink replaces with its own) after weeks of running.
	src.getSeq = 3<<23 - 2
	seen := map[uint32]bool{}
	for range 2 { // twice: the second batch of requests must not see the first's answers
		clear(seen)
		if err := src.Get(flows, func(f *conntrack.Flow) { seen[f.ID] = true }); err != nil {
			t.Fatalf("Get: %v", err)
		}
		if len(seen) != len(flows) {
			t.Fatalf("Get answered %d of %d flows", len(seen), len(flows))
		}
	}
}

// TestTableHotFlowsRealKernel: a table too big to dump every (short)
// interval refreshes it less often, and in between reads its busiest flow
// one by one: a TCP connection's counters move in snapshots that share
// one full refresh.
func TestTableHotFlowsRealKernel(t *testing.T) {
	env := startTableEnv(t, 20*time.Millisecond)
	// The connection is busy before the table grows, so that the first
	// full refresh of the big table already knows its rate and picks it as
	// a hot flow: no wait for a second refresh, which under load comes
	// seconds later (a quarter of the time for a dump that takes seconds).
	p := dialPeer(t, env.a, "tcp", nstest.EchoTCP(t, env.b, nstest.AddrB4+":0").String(), conntrack.IPv4)
	stop := make(chan struct{})
	exchanged := make(chan error, 1)
	go func() {
		for {
			select {
			case <-stop:
				exchanged <- nil
				return
			case <-time.After(2 * time.Millisecond): // pace the traffic
				if err := p.exchange(); err != nil {
					exchanged <- err
					return
				}
			}
		}
	}()
	defer func() {
		close(stop)
		if err := <-exchanged; err != nil {
			t.Errorf("tcp exchange: %v", err)
		}
	}()
	sport, _ := strconv.Atoi(p.orig["sport"])
	busy := func(s *conntrack.Snapshot) *conntrack.Flow {
		for _, f := range s.Flows {
			if f.Proto == conntrack.ProtoTCP && int(f.Orig.SrcPort) == sport {
				return f
			}
		}
		return nil
	}
	awaitSnap(t, env.sub, "a rate for the busy connection", func(s *conntrack.Snapshot) bool {
		f := busy(s)
		return f != nil && f.TotalRate() > 0
	})

	if err := ctgen.CreateUDPFlows(int(env.src.NetnsFile().Fd()), 30_000); err != nil {
		t.Fatal(err)
	}
	packets := func(s *conntrack.Snapshot) uint64 {
		if f := busy(s); f != nil {
			return f.OrigCount.Packets
		}
		return 0
	}
	s := awaitSnap(t, env.sub, "flows read one by one", func(s *conntrack.Snapshot) bool { return s.Health.HotFlows > 0 })
	if s.Health.RefreshEvery <= 20*time.Millisecond {
		t.Fatalf("hot flows at a full refresh every %v", s.Health.RefreshEvery)
	}
	// Within one full refresh generation, the connection's counters grow.
	gen, first, moves := s.Health.Refreshes, packets(s), 0
	awaitSnap(t, env.sub, "the busy flow's counters growing twice between full refreshes", func(s *conntrack.Snapshot) bool {
		if s.Health.Refreshes != gen {
			gen, first = s.Health.Refreshes, packets(s)
			return false
		}
		if n := packets(s); n > first {
			moves++
			first = n
		}
		return moves >= 2
	})
	t.Logf("full refresh every %v, %d flows read in %v between them", s.Health.RefreshEvery,
		s.Health.HotFlows, s.Health.HotRefresh)
}
