package report

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack"
)

// Top with a limit must give exactly the first flows of the full sort.
func TestTopMatchesFullSort(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	flows := make([]conntrack.Flow, 2000)
	for i := range flows {
		flows[i].ID = uint32(i)
		// Few distinct rates, so that ties (broken by ID) are common.
		flows[i].OrigRate.Bytes = float32(r.IntN(50))
	}
	now := time.Unix(0, 0)
	all := Sorted(conntrack.Pointers(flows), SortRate, now)
	for _, k := range []int{1, 7, 100, 1999, 2000, 5000} {
		top := Top(conntrack.Pointers(flows), SortRate, now, k)
		want := min(k, len(flows))
		if len(top) != want {
			t.Fatalf("Top(%d) has %d flows, want %d", k, len(top), want)
		}
		for i := range top {
			if top[i] != all[i] {
				t.Fatalf("Top(%d)[%d] = flow %d, full sort has flow %d", k, i, top[i].ID, all[i].ID)
			}
		}
	}
	for i := 1; i < len(all); i++ {
		a, b := all[i-1], all[i]
		if a.TotalRate() < b.TotalRate() || a.TotalRate() == b.TotalRate() && a.ID > b.ID {
			t.Fatalf("order broken at %d: (%v,%d) before (%v,%d)", i, a.TotalRate(), a.ID, b.TotalRate(), b.ID)
		}
	}
}
