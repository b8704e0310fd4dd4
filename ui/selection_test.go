package ui

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/flowtop/flowtop/conntrack"
)

// The selection stays on the first row until the user moves, follows the
// flow the user picked, and g / Home pin it to the top again. The tests
// refresh on a short tick, as the real screen does, so that snapshots show
// without a key press.

// ticking refreshes the screen every 20 ms.
func ticking(c *Config) { c.Interval = 20 * time.Millisecond }

// rerank sets the rates of fs so that flow i ranks on row row(i).
func rerank(fs []conntrack.Flow, row func(i int) int) []conntrack.Flow {
	for i := range fs {
		r := float32(len(fs) - row(i))
		fs[i].OrigRate.Bytes, fs[i].ReplyRate.Bytes = r, r
	}
	return fs
}

// rotated is manyFlows(n) with flow i (address 10.1.0.i+1) on row
// (i+shift) mod n.
func rotated(n, shift int) []conntrack.Flow {
	return rerank(manyFlows(n), func(i int) int { return (i + shift) % n })
}

// flowAt is the address shown for flow i of manyFlows, with the blank
// after it (10.1.0.1 is not 10.1.0.10).
func flowAt(i int) string { return "10.1.0." + strconv.Itoa(i+1) + " " }

// showLatest waits until the screen shows the source's newest snapshot.
func (h *harness) showLatest() {
	h.t.Helper()
	want := h.src.Latest()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var ok bool
		h.ui(func() { ok = h.a.view.snap == want })
		if ok {
			break
		}
		if time.Now().After(deadline) {
			h.t.Fatal("the newest snapshot never showed")
		}
		time.Sleep(2 * time.Millisecond)
	}
	h.settle()
}

// firstRow is the first data row on screen: the line under the titles.
func firstRow(screen string) string {
	lines := strings.Split(screen, "\n")
	for i, l := range lines[:len(lines)-1] {
		if strings.HasPrefix(l, "PROCESS ") {
			return lines[i+1]
		}
	}
	return ""
}

// wantRow checks that the selection is on row (0-based) of n and shows
// want.
func (h *harness) wantRow(t *testing.T, row, n int, want string) {
	t.Helper()
	s := h.text()
	pos := " " + strconv.Itoa(row+1) + "/" + strconv.Itoa(n)
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if got := lines[len(lines)-1]; !strings.HasSuffix(got, pos) { // the status line
		t.Errorf("status line %q, want the selection at%s", strings.TrimSpace(got), pos)
	}
	if got := h.selectedLine(); !strings.Contains(got, want) {
		t.Errorf("selected line %q, want %q", strings.TrimSpace(got), want)
	}
	if row == 0 {
		if got := firstRow(s); !strings.Contains(got, want) {
			t.Errorf("first row on screen %q, want %q (the top in view)", strings.TrimSpace(got), want)
		}
	}
}

// TestSelectionStaysOnTop: with no key pressed, the first row stays
// selected and in view while the flow that was there sinks off screen.
func TestSelectionStaysOnTop(t *testing.T) {
	const n = 100
	h := newHarness(t, 80, 24, ticking)
	h.src.setFlows(rotated(n, 0))
	h.showLatest()
	h.wantRow(t, 0, n, flowAt(0))
	for _, shift := range []int{30, 60, 99} {
		h.src.setFlows(rotated(n, shift))
		h.showLatest()
		h.wantRow(t, 0, n, flowAt(n-shift)) // the flow now ranked first
	}
}

// TestSelectionFollowsPickedFlow: once the user moves off the first row,
// the selection follows the flow picked, wherever it ranks, the first row
// included.
func TestSelectionFollowsPickedFlow(t *testing.T) {
	const n = 100
	h := newHarness(t, 80, 24, ticking)
	h.src.setFlows(rotated(n, 0))
	h.showLatest()
	h.src.setFlows(rotated(n, 10)) // flow 90 first, 91 second
	h.showLatest()
	h.key(tcell.KeyDown)
	picked := 91
	h.wantRow(t, 1, n, flowAt(picked))
	for _, shift := range []int{40, 9, 50} { // off screen, first, off again
		h.src.setFlows(rotated(n, shift))
		h.showLatest()
		h.wantRow(t, (picked+shift)%n, n, flowAt(picked))
	}
}

// TestTopKeysPinAgain: g, Home, and moving up to the first row bring the
// selection back to the top, which it keeps while the order changes.
func TestTopKeysPinAgain(t *testing.T) {
	const n = 100
	for _, c := range []struct {
		name string
		top  func(h *harness)
	}{
		{"g", func(h *harness) { h.runes("g") }},
		{"Home", func(h *harness) { h.key(tcell.KeyHome) }},
		{"up to the first row", func(h *harness) { h.runes("kkkkkk") }},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, 80, 24, ticking)
			h.src.setFlows(rotated(n, 0))
			h.showLatest()
			h.runes("jjj")
			h.wantRow(t, 3, n, flowAt(3))
			h.src.setFlows(rotated(n, 3)) // flow 3 on row 6, flow 97 first
			h.showLatest()
			h.wantRow(t, 6, n, flowAt(3))
			c.top(h)
			h.wantRow(t, 0, n, flowAt(97))
			h.src.setFlows(rotated(n, 50)) // flow 97 on row 47, flow 50 first
			h.showLatest()
			h.wantRow(t, 0, n, flowAt(50))
			h.runes("G") // the last row: flow 49
			h.wantRow(t, n-1, n, flowAt(49))
		})
	}
}

// TestSelectionKeepsItsFlowAmongSameIDs: two entries can share a conntrack
// ID (a 32-bit hash); the selection stays on the one the user picked.
func TestSelectionKeepsItsFlowAmongSameIDs(t *testing.T) {
	const n = 100
	twins := func(row func(i int) int) []conntrack.Flow {
		fs := rerank(manyFlows(n), row)
		fs[2].ID = fs[1].ID // flows 1 and 2: one ID, two connections
		return fs
	}
	h := newHarness(t, 80, 24, ticking)
	h.src.setFlows(twins(func(i int) int { return i }))
	h.showLatest()
	h.runes("jj")
	h.wantRow(t, 2, n, flowAt(2))
	// The twin takes the selected row: the selection moves with its flow.
	h.src.setFlows(twins(func(i int) int {
		switch i {
		case 1:
			return 2
		case 2:
			return 1
		}
		return i
	}))
	h.showLatest()
	h.wantRow(t, 1, n, flowAt(2))
	// Both move away, the twin ranking higher.
	h.src.setFlows(twins(func(i int) int {
		switch i {
		case 1:
			return 20
		case 2:
			return 50
		case 20:
			return 1
		case 50:
			return 2
		}
		return i
	}))
	h.showLatest()
	h.wantRow(t, 50, n, flowAt(2))
}

// TestDrillShowsTop: Enter on a process shows its flows from the top, not
// on the flow selected on the Flows tab before.
func TestDrillShowsTop(t *testing.T) {
	h := newHarness(t, 160, 40)
	h.runes("jjjj")
	h.wantSelected(t, "2001:db8:2::1") // firefox's second flow
	h.key(tcell.KeyTab)
	h.runes("j")
	h.wantSelected(t, "firefox")
	h.key(tcell.KeyEnter)
	h.has("DESTINATION", "/=4242")
	h.wantRow(t, 0, 2, "example.com") // firefox's fastest flow
}

// TestSelectionFollowsItsConnectionUnderNewID: an entry that the kernel
// replaced for the same connection (same tuple, new ID) keeps the
// selection.
func TestSelectionFollowsItsConnectionUnderNewID(t *testing.T) {
	const n = 100
	h := newHarness(t, 80, 24, ticking)
	h.src.setFlows(rotated(n, 0))
	h.showLatest()
	h.runes("jj")
	h.wantRow(t, 2, n, flowAt(2))
	fs := rotated(n, 10) // flow 2 on row 12
	fs[2].ID = 1000
	h.src.setFlows(fs)
	h.showLatest()
	h.wantRow(t, 12, n, flowAt(2))
}
