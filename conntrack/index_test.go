package conntrack

import (
	"math/rand/v2"
	"testing"
)

// TestIDIndexMatchesMap runs random inserts, updates, lookups and removes
// against the index and a Go map side by side, with IDs from a small range
// (long probe runs, removals inside them) and from the whole range.
func TestIDIndexMatchesMap(t *testing.T) {
	for _, idRange := range []uint32{300, 1 << 31} {
		rng := rand.New(rand.NewPCG(1, uint64(idRange)))
		var x idIndex
		want := map[uint32]int32{}
		for step := range 200_000 {
			id := rng.Uint32N(idRange)
			switch op := rng.IntN(10); {
			case op < 5:
				pos := rng.Int32N(1 << 30)
				x.set(id, pos)
				want[id] = pos
			case op < 8:
				x.remove(id)
				delete(want, id)
			default:
				got, ok := x.get(id)
				w, wok := want[id]
				if ok != wok || got != w {
					t.Fatalf("step %d: get(%d) = %d, %v; want %d, %v", step, id, got, ok, w, wok)
				}
			}
			if x.len() != len(want) {
				t.Fatalf("step %d: len %d, want %d", step, x.len(), len(want))
			}
		}
		for id, w := range want {
			if got, ok := x.get(id); !ok || got != w {
				t.Fatalf("range %d: get(%d) = %d, %v at the end; want %d", idRange, id, got, ok, w)
			}
		}
	}
}

func TestIDIndexZeroValue(t *testing.T) {
	var x idIndex
	if _, ok := x.get(7); ok {
		t.Fatal("empty index found an ID")
	}
	x.remove(7)
	x.set(0, 0) // ID 0 and position 0 are ordinary values
	if got, ok := x.get(0); !ok || got != 0 {
		t.Fatalf("get(0) = %d, %v", got, ok)
	}
}
