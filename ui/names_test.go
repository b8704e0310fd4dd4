package ui

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
	"github.com/flowtop/flowtop/procs"
)

// countNamer names a flow after its ID and a version, and counts calls.
type countNamer struct {
	calls   atomic.Int64
	version atomic.Value // string
}

func (c *countNamer) Names(f *conntrack.Flow) enrich.Names {
	c.calls.Add(1)
	v, _ := c.version.Load().(string)
	return enrich.Names{DstName: v, Process: procs.Info{PID: int(f.ID)}}
}

func TestNameMemo(t *testing.T) {
	fs := conntrack.Pointers(benchFlows(5000))
	names := &countNamer{}
	names.version.Store("a")
	memo := newNameMemo(names)
	pass := func(fs []*conntrack.Flow, fresh, refresh time.Duration) (got []*enrich.Names) {
		p := memo.pass(fresh, refresh)
		for _, f := range fs {
			got = append(got, p.get(f))
		}
		p.done()
		return got
	}
	// The first pass looks every flow up.
	got := pass(fs, time.Hour, time.Hour)
	if n := names.calls.Swap(0); n != 5000 {
		t.Fatalf("first pass: %d lookups, want 5000", n)
	}
	for i, n := range got {
		if n.Process.PID != int(fs[i].ID) || n.DstName != "a" {
			t.Fatalf("flow %d: names %+v", fs[i].ID, *n)
		}
	}
	// Shuffled, some gone, a new record for an old flow, a new flow and
	// an ID reused by another connection: only the last two are looked up.
	next := append([]*conntrack.Flow(nil), fs[100:]...)
	next[0], next[4000] = next[4000], next[0]
	changed := *next[10]
	changed.OrigCount.Bytes++
	next[10] = &changed
	reused := *fs[200]
	reused.Orig.SrcPort++
	next[100] = &reused // fs[200]
	nf := *fs[0]
	nf.ID = 99999
	next = append(next, &nf)
	names.version.Store("b")
	got = pass(next, time.Hour, time.Hour)
	if n := names.calls.Swap(0); n != 2 {
		t.Errorf("second pass: %d lookups, want 2", n)
	}
	for i, n := range got {
		want := "a"
		if next[i] == &reused || next[i] == &nf {
			want = "b"
		}
		if n.Process.PID != int(next[i].ID) || n.DstName != want {
			t.Fatalf("flow %d: names %+v, want DstName %q", next[i].ID, *n, want)
		}
	}
	// Without budget for new flows, they have no names until a later
	// pass; old names are kept.
	nf2 := *fs[0]
	nf2.ID = 100000
	more := append(next[:len(next):len(next)], &nf2)
	got = pass(more, 0, 0)
	if names.calls.Swap(0) != 0 || *got[len(got)-1] != (enrich.Names{}) || got[0].DstName != "a" {
		t.Errorf("no budget: new flow %+v, old flow %+v", *got[len(got)-1], *got[0])
	}
	got = pass(more, time.Hour, 0)
	if n := names.calls.Swap(0); n != 1 || got[len(got)-1].Process.PID != 100000 {
		t.Errorf("later pass: %d lookups, new flow %+v", n, *got[len(got)-1])
	}
	// Names older than namesTTL are looked up again, within the budget.
	memo.epoch = memo.epoch.Add(-namesTTL)
	got = pass(more, time.Hour, time.Hour)
	if n := names.calls.Swap(0); n != int64(len(more)) || got[0].DstName != "b" {
		t.Errorf("after namesTTL: %d lookups, want %d; names %+v", n, len(more), *got[0])
	}
	// An abandoned pass leaves the memo as it was.
	p := memo.pass(time.Hour, time.Hour)
	p.get(&nf2)
	if got := pass(more, 0, 0); got[0].DstName != "b" || got[len(got)-1].Process.PID != 100000 {
		t.Errorf("after an abandoned pass: %+v, %+v", *got[0], *got[len(got)-1])
	}
}

// A memo that builds stopped needing is dropped after memoKeep, not
// before, and a build that needs names again keeps it.
func TestNameMemoDroppedWhenUnused(t *testing.T) {
	fs := conntrack.Pointers(benchFlows(100))
	names := &countNamer{}
	memo := newNameMemo(names)
	fill := func() {
		p := memo.pass(time.Hour, time.Hour)
		for _, f := range fs {
			p.get(f)
		}
		p.done()
	}
	fill()
	memo.unused()
	memo.unused()
	if memo.cur.flows == nil {
		t.Fatal("memo dropped at once")
	}
	fill() // needed again: the idle time starts over
	memo.unused()
	if memo.cur.flows == nil {
		t.Fatal("memo dropped though it was needed since")
	}
	memo.idleSince = time.Now().Add(-memoKeep - time.Second)
	memo.unused()
	if memo.cur.flows != nil || memo.chunk != nil {
		t.Fatalf("memo unused for %v is still held", memoKeep)
	}
	calls := names.calls.Load()
	fill()
	if names.calls.Load() != calls+int64(len(fs)) {
		t.Fatal("after the drop the names were not looked up again")
	}
}

// sameNamer gives every flow the same names.
type sameNamer struct{}

func (sameNamer) Names(*conntrack.Flow) enrich.Names {
	return enrich.Names{Service: "domain", Process: procs.Info{PID: 7, Name: "dnsmasq"}}
}

// Flows with equal names share one copy in the memo.
func TestNameMemoSharesEqualNames(t *testing.T) {
	fs := conntrack.Pointers(benchFlows(1000))
	memo := newNameMemo(sameNamer{})
	p := memo.pass(time.Hour, time.Hour)
	first := p.get(fs[0])
	for _, f := range fs[1:] {
		if n := p.get(f); n != first {
			t.Fatalf("flow %d has its own copy of the same names", f.ID)
		}
	}
	p.done()
	if len(memo.chunk) != 1 {
		t.Fatalf("%d copies of one set of names", len(memo.chunk))
	}
}
