package ui

import (
	"strings"
	"testing"

	"github.com/gdamore/tcell/v2"

	"github.com/flowtop/flowtop/conntrack"
)

// TestDetailKeepsItsFlowAmongSameIDs: the detail view follows its flow by
// its kernel key (conntrack.Key) and ID: another connection under the same
// ID (a 32-bit hash) is not it, wherever it comes in the snapshot, and
// once only that one is left the flow has ended.
func TestDetailKeepsItsFlowAmongSameIDs(t *testing.T) {
	h := newHarness(t, 160, 40)
	h.runes("jj")
	h.wantSelected(t, "[bastion].example.org")
	h.key(tcell.KeyEnter)
	h.has("Flow 102", "[2001:db8::10]:40000 → [2001:db8:1::22]:22")

	fs := testFlows()
	twin := fs[0] // the SNAT flow's connection under the ssh flow's ID
	twin.ID = fs[1].ID
	fs[1].OrigCount.Packets = 4321
	h.src.setFlows(append([]conntrack.Flow{twin}, fs...))
	h.runes("b") // a rebuild takes the new flows
	s := h.has("4,321")
	if !strings.Contains(line(s, "Original"), "[2001:db8::10]:40000") {
		t.Errorf("the detail view took the twin:\n%s", s)
	}
	h.src.setFlows(append([]conntrack.Flow{twin}, fs[2:]...))
	h.runes("b")
	s = h.has("(ended)")
	if !strings.Contains(line(s, "Original"), "[2001:db8::10]:40000") {
		t.Errorf("the ended flow's last values are not kept:\n%s", s)
	}
}
