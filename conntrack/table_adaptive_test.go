package conntrack

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack/nstest"
)

// dumpCost is what a full dump of the fake kernels below costs on the
// table's (fake) clock. The table waits 4 times that (in real time) for the
// next full refresh: a minute's cost keeps a second one from coming due
// while the test runs, however slow the machine.
const dumpCost = time.Minute

// slowKernel's dumps take dumpCost of the table's (fake) clock.
type slowKernel struct {
	mu    sync.Mutex
	now   time.Time
	dumps atomic.Int32
}

func (k *slowKernel) clock() time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.now
}

func (k *slowKernel) Dump(fn func(*Flow)) (bool, error) {
	k.dumps.Add(1)
	k.mu.Lock()
	k.now = k.now.Add(dumpCost)
	k.mu.Unlock()
	return false, nil
}

func (k *slowKernel) Listen(ctx context.Context, _ chan<- Event) error {
	<-ctx.Done()
	return nil
}

// A table whose full refresh takes longer than a quarter of the interval
// is refreshed less often, says so in Health.RefreshEvery, and still
// publishes a snapshot every interval.
func TestTableAdaptsRefreshToItsCost(t *testing.T) {
	k := &slowKernel{now: time.Unix(1_700_000_000, 0)}
	tb := NewTable(TableConfig{Kernel: k, Interval: 50 * time.Millisecond, Filter: DefaultFilter(), Now: k.clock})
	snaps := runTable(t, tb)

	var last *Snapshot
	for n := 0; n < 6; n++ {
		select {
		case last = <-snaps:
		case <-time.After(nstest.Patience):
			t.Fatalf("only %d snapshots in %v at a 50 ms interval", n, nstest.Patience)
		}
	}
	if got := k.dumps.Load(); got != 1 {
		t.Errorf("%d full dumps in 6 intervals; a dump that costs %v must wait 4 times that", got, dumpCost)
	}
	if last.Health.RefreshEvery != 4*dumpCost {
		t.Errorf("Health.RefreshEvery = %v, want %v (4 x the refresh)", last.Health.RefreshEvery, 4*dumpCost)
	}
}

// hotKernel is a table whose first flows keep counting, whose full dumps
// take dumpCost of the table's (fake) clock and which answers GETs.
type hotKernel struct {
	mu     sync.Mutex
	now    time.Time
	flows  []Flow // the truth
	busy   int    // flows[:busy] grow at every read
	askedN map[uint32]int
	gets   atomic.Int32
}

// asked returns how often flow id was asked for with a GET.
func (k *hotKernel) asked(id uint32) int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.askedN[id]
}

func (k *hotKernel) clock() time.Time {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.now
}

func (k *hotKernel) read(i int) Flow {
	f := &k.flows[i]
	if i < k.busy {
		f.OrigCount.Bytes += 1000
		f.OrigCount.Packets++
	}
	return *f
}

// Dump and Get call fn without holding mu: the table reads the clock
// from fn.
func (k *hotKernel) Dump(fn func(*Flow)) (bool, error) {
	k.mu.Lock()
	k.now = k.now.Add(dumpCost)
	read := make([]Flow, len(k.flows))
	for i := range k.flows {
		read[i] = k.read(i)
	}
	k.mu.Unlock()
	for i := range read {
		fn(&read[i])
	}
	return false, nil
}

func (k *hotKernel) Get(flows []*Flow, fn func(*Flow)) error {
	k.gets.Add(1)
	k.mu.Lock()
	k.now = k.now.Add(100 * time.Millisecond)
	var read []Flow
	for _, want := range flows {
		for i := range k.flows {
			if k.flows[i].ID == want.ID && k.flows[i].Orig == want.Orig {
				k.askedN[want.ID]++
				read = append(read, k.read(i))
			}
		}
	}
	k.mu.Unlock()
	for i := range read {
		fn(&read[i])
	}
	return nil
}

func (k *hotKernel) Listen(ctx context.Context, _ chan<- Event) error {
	<-ctx.Done()
	return nil
}

// Between two full refreshes of a table too big to dump every interval,
// the busiest flows and the watched ones are read every interval (their
// counters move in every snapshot); the others wait for the next dump.
func TestTableRefreshesHotFlowsBetweenDumps(t *testing.T) {
	start := time.Unix(1_700_000_000, 0)
	const busy = 10
	k := &hotKernel{now: start, flows: benchFlows(2000), busy: busy, askedN: map[uint32]int{}}
	for i := range k.flows {
		k.flows[i].Start = 0
		k.flows[i].OrigCount, k.flows[i].ReplyCount = Counter{}, Counter{}
	}
	hot, idle, watched := k.flows[0], k.flows[500], k.flows[1500]
	f := DefaultFilter()
	f.AllProtos()
	tb := NewTable(TableConfig{Kernel: k, Interval: 30 * time.Millisecond, Filter: f, Now: k.clock})
	snaps := runTable(t, tb)

	bytesOf := func(s *Snapshot, want Flow) uint64 {
		for _, fl := range s.Flows {
			if fl.ID == want.ID {
				return fl.OrigCount.Bytes
			}
		}
		t.Fatalf("flow %d not in the snapshot", want.ID)
		return 0
	}
	var first *Snapshot
	select {
	case first = <-snaps:
	case <-time.After(nstest.Patience):
		t.Fatalf("no first snapshot in %v", nstest.Patience)
	}
	tb.Watch([]*Flow{&watched})
	var last *Snapshot
	for n := 0; n < 8; n++ {
		select {
		case last = <-snaps:
		case <-time.After(nstest.Patience):
			t.Fatalf("only %d snapshots in %v at a 30 ms interval", n, nstest.Patience)
		}
	}
	if last.Health.Refreshes != 1 {
		t.Fatalf("%d full refreshes; the test needs the time between the first two", last.Health.Refreshes)
	}
	if last.Health.RefreshEvery <= 30*time.Millisecond {
		t.Fatalf("RefreshEvery = %v: the table did not adapt", last.Health.RefreshEvery)
	}
	if got := bytesOf(last, hot) - bytesOf(first, hot); got < 3*1000 {
		t.Errorf("busiest flow grew by %d bytes over 8 intervals, want it read every interval", got)
	}
	if k.asked(watched.ID) == 0 {
		t.Errorf("the watched flow was not read between full refreshes")
	}
	if n := k.asked(idle.ID); n != 0 {
		t.Errorf("an idle, unwatched flow was read %d times between full refreshes", n)
	}
	if n := k.asked(hot.ID); n < 3 {
		t.Errorf("the busiest flow was read %d times in 8 intervals", n)
	}
	if last.Health.HotFlows != busy+1 {
		t.Errorf("Health.HotFlows = %d, want %d busy + 1 watched", last.Health.HotFlows, busy)
	}
}
