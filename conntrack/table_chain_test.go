package conntrack

import (
	"net/netip"
	"testing"
)

// The kernel's conntrack ID is a 32-bit hash: two live flows can share it.
// The table must keep both.
func TestTableKeepsFlowsWithCollidingIDs(t *testing.T) {
	mk := func(port uint16) Flow {
		a, b := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.19.0.1")
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
	if tb.size != 3 || tb.find(&two) == nil {
		t.Fatalf("size %d after three NEW events with one ID, want 3", tb.size)
	}
	tb.apply(Event{Type: EventDestroy, Flow: two})
	if tb.size != 2 || tb.find(&two) != nil || tb.find(&one) == nil || tb.find(&three) == nil {
		t.Fatalf("DESTROY of the middle flow: size %d, want 2 with the others kept", tb.size)
	}
	// A sweep keeps what the dump saw and drops the rest.
	tb.gen++
	tb.find(&three).gen = tb.gen
	tb.sweep(tb.gen)
	if tb.size != 1 || tb.find(&three) == nil || tb.find(&one) != nil {
		t.Fatalf("sweep: size %d, want only the flow the dump saw", tb.size)
	}
	tb.publish()
	if got := len(tb.Latest().Flows); got != 1 {
		t.Fatalf("snapshot has %d flows, want 1", got)
	}
}
