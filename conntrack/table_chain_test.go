package conntrack

import (
	"testing"
	"time"
)

// find returns the entry of the kernel flow f, nil when the table has
// none. The pointer is valid until the next insert or remove.
func (t *Table) find(f *Flow) *entry {
	if i, _ := t.lookup(f); i >= 0 {
		return &t.entries[i]
	}
	return nil
}

// The kernel's conntrack ID is a 32-bit hash: two live flows can share it.
// The table must keep both.
func TestTableKeepsFlowsWithCollidingIDs(t *testing.T) {
	mk := func(port uint16) Flow {
		a, b := MustParseAddr("198.18.0.1"), MustParseAddr("198.19.0.1")
		return Flow{ID: 7, Family: IPv4, Proto: ProtoUDP,
			Orig:  Tuple{Src: a, Dst: b, SrcPort: port, DstPort: 53},
			Reply: Tuple{Src: b, Dst: a, SrcPort: 53, DstPort: port}}
	}
	tb := NewTable(TableConfig{Filter: DefaultFilter()})
	tb.filter.Protos.Add(ProtoUDP)
	one, two, three := mk(1000), mk(1001), mk(1002)
	for _, f := range []Flow{one, two, three} {
		tb.apply(Event{Type: EventNew, Flow: f})
	}
	if len(tb.entries) != 3 || tb.find(&two) == nil {
		t.Fatalf("size %d after three NEW events with one ID, want 3", len(tb.entries))
	}
	tb.apply(Event{Type: EventDestroy, Flow: two})
	if len(tb.entries) != 2 || tb.find(&two) != nil || tb.find(&one) == nil || tb.find(&three) == nil {
		t.Fatalf("DESTROY of the middle flow: size %d, want 2 with the others kept", len(tb.entries))
	}
	// A sweep keeps what the dump saw and drops the rest.
	tb.gen++
	tb.find(&three).gen = tb.gen
	tb.sweep(tb.gen, time.Time{})
	if len(tb.entries) != 1 || tb.find(&three) == nil || tb.find(&one) != nil {
		t.Fatalf("sweep: size %d, want only the flow the dump saw", len(tb.entries))
	}
	tb.publish()
	if got := len(tb.Latest().Flows); got != 1 {
		t.Fatalf("snapshot has %d flows, want 1", got)
	}
}

// Random NEW and DESTROY events, with many colliding IDs, must leave the
// table holding exactly the live flows, each findable.
func TestTableStorageRandom(t *testing.T) {
	tb := NewTable(TableConfig{Filter: DefaultFilter()})
	live := map[uint16]Flow{}
	seed := uint32(1)
	rnd := func(n uint32) uint32 { seed = seed*1664525 + 1013904223; return (seed >> 8) % n }
	mk := func(port uint16) Flow {
		a, b := MustParseAddr("198.18.0.1"), MustParseAddr("198.19.0.1")
		return Flow{ID: uint32(port % 7), Family: IPv4, Proto: ProtoUDP,
			Orig: Tuple{Src: a, Dst: b, SrcPort: port, DstPort: 53}}
	}
	for step := 0; step < 20000; step++ {
		port := uint16(rnd(300))
		f := mk(port)
		if _, ok := live[port]; ok && rnd(2) == 0 {
			tb.apply(Event{Type: EventDestroy, Flow: f})
			delete(live, port)
		} else {
			tb.apply(Event{Type: EventNew, Flow: f})
			live[port] = f
		}
		if step%97 == 0 {
			// A dump that sees only the even ports sweeps the odd ones.
			tb.gen++
			for port, f := range live {
				if port%2 == 0 {
					tb.find(&f).gen = tb.gen
				} else {
					delete(live, port)
				}
			}
			tb.sweep(tb.gen, time.Time{})
		}
		if len(tb.entries) != len(live) {
			t.Fatalf("step %d: table has %d entries, want %d", step, len(tb.entries), len(live))
		}
	}
	for port, f := range live {
		if e := tb.find(&f); e == nil || e.flow.Orig.SrcPort != port {
			t.Fatalf("live flow with port %d not found", port)
		}
	}
}
