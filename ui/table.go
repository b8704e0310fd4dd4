package ui

import (
	"slices"
	"strings"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"
)

// esc makes user data safe for tview, which reads "[...]" as a style tag
// (an IPv6 "[::1]" would vanish).
func esc(s string) string {
	if strings.IndexByte(s, '[') < 0 {
		return s
	}
	return tview.Escape(s)
}

// content is the virtual tview.TableContent behind the table: row 0 is the
// header, the others are the rows of the current view. Cells are made only
// for the rows on screen, once per draw.
type content struct {
	tview.TableContentReadOnly
	rows   int     // data rows (without the header)
	cols   []colID // columns on screen, in display order
	header []*tview.TableCell
	first  int // data row of cells[0]
	cells  [][]*tview.TableCell
}

func (c *content) GetRowCount() int    { return c.rows + 1 }
func (c *content) GetColumnCount() int { return len(c.cols) }

func (c *content) GetCell(row, col int) *tview.TableCell {
	if col < 0 || col >= len(c.cols) {
		return nil
	}
	if row == 0 {
		return c.header[col]
	}
	if r := row - 1 - c.first; r >= 0 && r < len(c.cells) {
		return c.cells[r][col]
	}
	return nil
}

// flowTable is a tview.Table over content. Before each draw it lays the
// columns out for the rows on screen: every column as wide as its widest
// visible cell (numbers never cut), and the lowest-priority columns dropped
// when the terminal is too narrow. Keys and the mouse are the App's; the
// table's own bindings are not used.
type flowTable struct {
	*tview.Table
	a       *App
	content *content
	headerY int
}

var (
	headerStyle   = tcell.StyleDefault.Bold(true).Foreground(tcell.ColorYellow)
	selectedStyle = tcell.StyleDefault.Reverse(true)
)

func newFlowTable(a *App) *flowTable {
	t := &flowTable{Table: tview.NewTable(), a: a, content: &content{}}
	t.SetContent(t.content).SetFixed(1, 0).SetSelectable(true, false).
		SetSelectedStyle(selectedStyle)
	return t
}

// InputHandler returns nil: the App handles every key.
func (t *flowTable) InputHandler() func(*tcell.EventKey, func(tview.Primitive)) { return nil }

// columns returns the candidate columns of tab: SOURCE only when shown,
// and without the hoff leftmost ones scrolled away with h / l.
func (a *App) columns(tab tabID) []colID {
	var cs []colID
	for _, c := range tabColumns[tab] {
		if c == cSource && !a.showSrc {
			continue
		}
		cs = append(cs, c)
	}
	a.hoff = max(0, min(a.hoff, len(cs)-1))
	return cs[a.hoff:]
}

// Draw lays the table out for the rows that fit and draws it.
func (t *flowTable) Draw(screen tcell.Screen) {
	a := t.a
	v := a.view
	t.DrawForSubclass(screen, t)
	x, y, width, height := t.GetInnerRect()
	t.headerY = y
	dataH := max(0, height-1)
	a.pageRows = max(1, dataH)
	n := v.rowCount()
	sel := a.selected()
	off := a.offset
	if sel >= 0 {
		off = min(off, sel)
		if sel >= off+dataH {
			off = sel - dataH + 1
		}
	}
	off = max(0, min(off, n-dataH))
	a.offset = off
	last := min(n, off+dataH)
	a.watchRows(v, off, last)

	tab := v.p.tab
	cands := a.columns(tab)
	o := fmtOpts{now: snapTime(v.snap, a.now), bits: a.p.bits, numeric: a.p.numeric}
	sc := v.p.sort[tab]

	// The text of every candidate cell on screen.
	texts := make([][]string, last-off)
	for r := range texts {
		row := make([]string, len(cands))
		if tab == tabFlows {
			f := v.flows[off+r]
			nm := a.names.Names(f)
			for i, c := range cands {
				row[i] = esc(flowCell(c, f, &nm, &o))
			}
		} else {
			g := v.groups[off+r]
			nm := groupNames(g, a.names)
			for i, c := range cands {
				row[i] = esc(groupCell(c, g, &nm, &o))
			}
		}
		texts[r] = row
	}

	// Natural widths, capped ones, and which columns fit.
	titles := make([]string, len(cands))
	nat := make([]int, len(cands))
	capped := make([]int, len(cands))
	for i, c := range cands {
		titles[i] = cols[c].title
		if c == sc.col {
			titles[i] += sortMark(sc.desc)
		}
		w := max(tview.TaggedStringWidth(titles[i]), minWidth(c, o.bits))
		for _, row := range texts {
			w = max(w, tview.TaggedStringWidth(row[i]))
		}
		nat[i], capped[i] = w, w
		if m := cols[c].max; m > 0 && w > m {
			capped[i] = max(m, tview.TaggedStringWidth(titles[i]))
		}
	}
	keep := layoutColumns(cands, capped, nat, width, sc.col)

	// Hand the chosen columns to the content, widths fixed by padding the
	// header cells (tview sizes a column to its widest visible cell).
	c := t.content
	c.rows, c.first = n, off
	c.cols = c.cols[:0]
	c.header = c.header[:0]
	var idx []int
	for i, cand := range cands {
		if keep[i] == 0 {
			continue
		}
		idx = append(idx, i)
		c.cols = append(c.cols, cand)
		title := titles[i]
		pad := strings.Repeat(" ", max(0, keep[i]-tview.TaggedStringWidth(title)))
		if cols[cand].right {
			title = pad + title
		} else {
			title += pad
		}
		hc := tview.NewTableCell(title).SetStyle(headerStyle).SetSelectable(false).SetMaxWidth(keep[i])
		c.header = append(c.header, hc)
	}
	c.cells = c.cells[:0]
	for _, row := range texts {
		cells := make([]*tview.TableCell, len(idx))
		for j, i := range idx {
			cell := tview.NewTableCell(row[i]).SetMaxWidth(keep[i])
			if cols[cands[i]].right {
				cell.SetAlign(tview.AlignRight)
			}
			cells[j] = cell
		}
		c.cells = append(c.cells, cells)
	}

	t.SetOffset(off, 0)
	if sel >= 0 {
		t.Select(sel+1, 0)
	} else {
		t.Select(0, 0)
	}
	t.Table.Draw(screen)

	if n == 0 && height > 1 {
		msg := "no flows"
		switch {
		case v.snap == nil:
			msg = "waiting for the first snapshot…"
		case len(v.p.terms) > 0 || v.p.active:
			msg = "no flows match the filter"
		}
		tview.Print(screen, msg, x, y+1, width, tview.AlignCenter, tcell.ColorDefault)
	}
}

func sortMark(desc bool) string {
	if desc {
		return "▼"
	}
	return "▲"
}

// layoutColumns picks the columns that fit in width, highest priority
// first (the sort column always counts as the highest after the first),
// and returns the width of each, 0 for a dropped column. Space left over
// goes to columns whose text was capped.
func layoutColumns(cands []colID, capped, nat []int, width int, sortCol colID) []int {
	order := make([]int, len(cands))
	for i := range order {
		order[i] = i
	}
	prio := func(i int) int {
		if cands[i] == sortCol {
			return 99 // after DESTINATION/ADDRESS, before the rest
		}
		return cols[cands[i]].prio
	}
	slices.SortStableFunc(order, func(a, b int) int { return prio(b) - prio(a) })
	keep := make([]int, len(cands))
	used := 0
	for k, i := range order {
		w := capped[i]
		sep := 0
		if used > 0 {
			sep = 1
		}
		if used+sep+w <= width {
			keep[i] = w
			used += sep + w
		} else if k == 0 {
			keep[i] = width // the most important column, cut to the screen
			used = width
		}
	}
	for _, i := range order {
		if keep[i] > 0 && nat[i] > keep[i] && used < width {
			grow := min(nat[i]-keep[i], width-used)
			keep[i] += grow
			used += grow
		}
	}
	return keep
}

// MouseHandler: a click selects a row, a double click opens it, a click on
// a column title sorts by it (again: reverses), the wheel scrolls.
func (t *flowTable) MouseHandler() func(action tview.MouseAction, event *tcell.EventMouse, setFocus func(p tview.Primitive)) (bool, tview.Primitive) {
	return t.WrapMouseHandler(func(action tview.MouseAction, event *tcell.EventMouse, setFocus func(p tview.Primitive)) (bool, tview.Primitive) {
		x, y := event.Position()
		a := t.a
		if !t.InRect(x, y) || a.mode != modeTable && a.mode != modeFilter {
			return false, nil
		}
		switch action {
		case tview.MouseLeftClick, tview.MouseLeftDoubleClick:
			row, col := t.CellAt(x, y)
			if y == t.headerY {
				if col >= 0 && col < len(t.content.cols) {
					a.sortBy(t.content.cols[col])
				}
				return true, nil
			}
			if row > 0 {
				a.moveTo(row - 1)
				if action == tview.MouseLeftDoubleClick && a.mode == modeTable {
					a.enter()
				}
			}
		case tview.MouseScrollUp:
			a.move(-3)
		case tview.MouseScrollDown:
			a.move(3)
		default:
			return false, nil
		}
		return true, nil
	})
}

// ensure the content satisfies the interface.
var _ tview.TableContent = (*content)(nil)

// watchRows tells a Watcher source which flows are on screen, when that
// changed: between two full refreshes of a huge table it reads them one
// by one, so that what the user looks at moves every interval.
func (a *App) watchRows(v *view, off, last int) {
	w, ok := a.cfg.Source.(Watcher)
	if !ok || v.p.tab != tabFlows {
		return
	}
	if a.watched.v == v && a.watched.off == off && a.watched.count == last-off {
		return
	}
	a.watched.v, a.watched.off, a.watched.count = v, off, last-off
	w.Watch(v.flows[off:last])
}
