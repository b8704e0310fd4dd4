package conntrack

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// slowKernel's dumps take a second of the table's (fake) clock.
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
	k.now = k.now.Add(time.Second)
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
	snaps, cancelSub := tb.Subscribe()
	defer cancelSub()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tb.Run(ctx) }()
	defer func() { cancel(); <-done }()

	var last *Snapshot
	for n := 0; n < 6; n++ {
		select {
		case last = <-snaps:
		case <-time.After(2 * time.Second):
			t.Fatalf("only %d snapshots in 2 s at a 50 ms interval", n)
		}
	}
	if got := k.dumps.Load(); got != 1 {
		t.Errorf("%d full dumps in ~300 ms; a dump that costs 1 s must wait 4 s", got)
	}
	if last.Health.RefreshEvery != 4*time.Second {
		t.Errorf("Health.RefreshEvery = %v, want 4s (4 x the 1 s refresh)", last.Health.RefreshEvery)
	}
}
