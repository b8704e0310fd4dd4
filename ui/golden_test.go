package ui

import (
	"fmt"
	"testing"

	"github.com/gdamore/tcell/v2"
)

// TestGolden compares every tab, the detail view and the help at 80x24 and
// 160x40 with the screens in testdata/.
func TestGolden(t *testing.T) {
	for _, size := range [][2]int{{80, 24}, {160, 40}} {
		t.Run(fmt.Sprintf("%dx%d", size[0], size[1]), func(t *testing.T) {
			h := newHarness(t, size[0], size[1])
			suffix := fmt.Sprintf("-%dx%d", size[0], size[1])
			h.has("firefox")
			h.golden("flows" + suffix)
			h.runes("s")
			h.golden("flows-source" + suffix)
			h.runes("s")
			h.key(tcell.KeyTab)
			h.golden("processes" + suffix)
			h.key(tcell.KeyTab)
			h.golden("hosts" + suffix)
			h.key(tcell.KeyTab)
			h.golden("remote" + suffix)
			h.key(tcell.KeyTab)
			h.key(tcell.KeyEnter)
			h.has("Flow detail")
			h.golden("detail" + suffix)
			h.key(tcell.KeyEscape)
			h.runes("?")
			h.has("flowtop keys")
			h.golden("help" + suffix)
		})
	}
}
