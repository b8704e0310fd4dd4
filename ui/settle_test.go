package ui

import (
	"testing"

	"github.com/gdamore/tcell/v2"
)

// TestKeysSettleTheViewNotDraws: a key scrolls the selected row into the
// rows that fit and tells a Watcher source what is on screen at once,
// before any draw; a draw only paints what it finds.
func TestKeysSettleTheViewNotDraws(t *testing.T) {
	h := newHarness(t, 80, 24)
	h.src.setFlows(manyFlows(100)) // IDs 1..100, fastest first
	h.runes("bb")
	h.has("1/100")

	// h.ui runs on the UI goroutine and draws nothing.
	var off int
	h.ui(func() {
		h.a.onKey(tcell.NewEventKey(tcell.KeyEnd, 0, tcell.ModNone))
		off = h.a.offset
	})
	watched := h.src.watchedIDs()
	if off == 0 || len(watched) == 0 || watched[len(watched)-1] != 100 || watched[0] != uint32(off+1) {
		t.Fatalf("after End, before a draw: offset %d, watched %v; want the last rows", off, watched)
	}

	// A selection moved behind the keys' back is not scrolled to, nor
	// watched, by a draw.
	h.ui(func() {
		h.a.moveTo(0)
		h.a.app.ForceDraw()
		off = h.a.offset
	})
	if got := h.src.watchedIDs(); off == 0 || got[len(got)-1] != 100 {
		t.Errorf("a draw moved the table: offset %d, watched %v", off, got)
	}
}
