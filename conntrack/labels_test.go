package conntrack

import (
	"sync"
	"testing"
)

func TestLabelList(t *testing.T) {
	var x labelList
	a, b := Labels{0: 1}, Labels{15: 0x80}
	if !x.ref(Labels{}).IsZero() || x.labels(LabelsRef{}) != (Labels{}) {
		t.Fatal("no labels must be the zero LabelsRef")
	}
	ra, rb := x.ref(a), x.ref(b)
	if ra.IsZero() || rb.IsZero() || ra == rb || x.ref(a) != ra {
		t.Fatalf("refs %v %v, again %v: want two distinct, stable, non-zero refs", ra, rb, x.ref(a))
	}
	if x.labels(ra) != a || x.labels(rb) != b {
		t.Errorf("labels(%v) = %x, labels(%v) = %x", ra, x.labels(ra), rb, x.labels(rb))
	}
	// Beyond the limit a new set reads as none; known sets still resolve.
	x.limit = 2
	if r := x.ref(Labels{1: 1}); !r.IsZero() {
		t.Errorf("ref beyond the limit = %v, want none", r)
	}
	if x.ref(b) != rb {
		t.Error("a known set lost its ref at the limit")
	}
}

// TestLabelListConcurrent: decoders add sets while readers resolve them
// (run with -race).
func TestLabelListConcurrent(t *testing.T) {
	var x labelList
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 500 {
				l := Labels{0: byte(i), 1: byte(i >> 8), 2: byte(g % 2)}
				if got := x.labels(x.ref(l)); got != l {
					t.Errorf("labels(ref(%x)) = %x", l, got)
					return
				}
			}
		})
	}
	wg.Wait()
	if n := len(x.list); n != 1000-1 {
		// 1000 sets, less the all-zero one (i = 0, g even).
		t.Errorf("list holds %d sets, want 999", n)
	}
}

func TestRefLabels(t *testing.T) {
	f := Flow{Labels: RefLabels(Labels{3: 7})}
	g := f // records are copied by value
	if g.Labels.Get() != (Labels{3: 7}) || !g.Labels.Equal(RefLabels(Labels{3: 7})) {
		t.Errorf("Labels.Get() = %x", g.Labels.Get())
	}
}
