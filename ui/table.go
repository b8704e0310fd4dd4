package ui

import (
	"slices"
	"strings"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"
	"github.com/rivo/uniseg"
)

// esc makes user data safe for tview, which reads "[...]" as a style tag
// (an IPv6 "[::1]" would vanish).
func esc(s string) string {
	if strings.IndexByte(s, '[') < 0 {
		return s
	}
	return tview.Escape(s)
}

// flowTable draws the rows of the view. Each draw lays the columns out
// for the rows on screen: every column as wide as its widest visible cell
// (numbers never cut), and the lowest-priority columns dropped when the
// terminal is too narrow. Which rows those are the App decides
// (settleView); keys are the App's.
//
// It draws the cells itself, not through tview.Table, so that a draw (one
// follows every key) makes no object per cell and runs no character
// through Unicode's word and line-break rules. The look is tview.Table's:
// one space between columns, white on the box's background, yellow bold
// titles, the selected row in reverse up to the space after its last
// column, a cut cell ending in "…".
type flowTable struct {
	*tview.Box
	a       *App
	headerY int
	// The layout of the last draw, for the mouse: the columns on screen,
	// their left edges and widths, and the data row on the first line.
	shown []*column
	colX  []int
	colW  []int
	first int
}

var (
	headerStyle   = tcell.StyleDefault.Bold(true).Foreground(tcell.ColorYellow)
	selectedStyle = tcell.StyleDefault.Reverse(true)
	alertStyle    = tcell.StyleDefault.Bold(true).Foreground(tcell.ColorRed)
)

// cellStyle is the style of a data cell: tview's text and background
// colours as they are now (the screen sets them to the terminal's own
// before it draws).
func cellStyle() tcell.Style {
	return tcell.StyleDefault.Foreground(tview.Styles.PrimaryTextColor).Background(tview.Styles.PrimitiveBackgroundColor)
}

func newFlowTable(a *App) *flowTable {
	return &flowTable{Box: tview.NewBox(), a: a}
}

// InputHandler returns nil: the App handles every key.
func (t *flowTable) InputHandler() func(*tcell.EventKey, func(tview.Primitive)) { return nil }

// shownColumns returns the columns of tab the screen shows: SOURCE only
// with -s / s.
func (a *App) shownColumns(tab tabID) []*column {
	var cs []*column
	for _, c := range tabOf(tab).columns {
		if (!c.withS || a.showSrc) && (!c.allNodes || a.p.node == allNodes) {
			cs = append(cs, c)
		}
	}
	return cs
}

// SetRect places the table; a new height changes how many rows fit, and
// so what is on screen (settleView).
func (t *flowTable) SetRect(x, y, width, height int) {
	t.Box.SetRect(x, y, width, height)
	_, _, _, h := t.GetInnerRect()
	rows := max(0, h-1) // below the titles
	if a := t.a; !a.tableSized || rows != a.tableRows {
		a.tableSized, a.tableRows = true, rows
		a.settleView()
	}
}

// settleView keeps what the table shows consistent after anything that
// may have changed it (a new view, a key, a click, a new size), so that
// Draw only paints: the selected row scrolled into the rows that fit, the
// horizontal scroll within the columns, and a Watcher source told which
// flows are on screen.
func (a *App) settleView() {
	if !a.tableSized {
		return // not laid out yet: SetRect settles it
	}
	v := a.view
	n, fit := v.rowCount(), a.tableRows
	off := a.offset
	if sel := a.selected(); sel >= 0 {
		off = min(off, sel)
		if sel >= off+fit {
			off = sel - fit + 1
		}
	}
	a.offset = max(0, min(off, n-fit))
	a.hoff = max(0, min(a.hoff, len(a.shownColumns(v.p.tab))-1))
	if page, _ := a.body.GetFrontPage(); page == "table" {
		a.watchRows(v, a.offset, min(n, a.offset+fit))
	}
}

// Draw lays the columns out for the rows on screen and paints the table.
// Every cell of the box is written (the box is not cleared first).
func (t *flowTable) Draw(screen tcell.Screen) {
	a := t.a
	v := a.view
	x, y, width, height := t.GetInnerRect()
	off := a.offset
	last := max(off, min(v.rowCount(), off+height-1))
	t.headerY, t.first = y, off
	cs := a.shownColumns(v.p.tab)
	cands := cs[min(a.hoff, len(cs)-1):]
	o := fmtOpts{now: snapTime(v.snap, a.now), bits: a.p.bits, numeric: a.p.numeric, nodeOf: v.nodeOf}
	if v.p.tab == tabNodes {
		o.now = a.now()
	}
	texts, alerts := cellTexts(v, cands, off, last, v.namer(a.names), &o)
	titles, keep := layoutTable(cands, texts, *v.p.sortOf(v.p.tab), width, o.bits)
	idx := t.place(cands, keep, width)
	t.paint(screen, cands, idx, titles, texts, alerts, off, a.selected())
	if v.rowCount() == 0 && height > 1 {
		msg := "no flows"
		switch {
		case a.fleet != nil && emptyFleetMsg(v) != "":
			msg = emptyFleetMsg(v)
		case v.snap == nil:
			msg = "waiting for the first snapshot…"
		case len(v.p.terms) > 0 || v.p.active || v.p.protos != nil && hiddenProtos(v.p.protos) != "":
			msg = "no flows match the filter"
		}
		tview.Print(screen, msg, x, y+1, width, tview.AlignCenter, tcell.ColorDefault)
	}
}

// cellTexts returns the text of every cell of cands in rows off to last
// of v, and which are alerts (nil when no column has any).
func cellTexts(v *view, cands []*column, off, last int, namer enrich.Namer, o *fmtOpts) (texts [][]string, alerts [][]bool) {
	texts = make([][]string, last-off)
	names := make([]enrich.Names, last-off)
	for i := range texts {
		r := row{n: &names[i], o: o}
		switch v.p.tab {
		case tabFlows:
			r.f = v.flow(off + i)
			names[i] = namer.Names(r.f)
		case tabNodes:
			r.node = &v.nodes[off+i]
		default:
			r.g = v.groups[off+i]
			if r.g.rep != nil {
				names[i] = namer.Names(r.g.rep)
			}
		}
		texts[i] = make([]string, len(cands))
		for j, c := range cands {
			texts[i][j] = c.cell(r)
			if c.alert != nil && c.alert(r) {
				if alerts == nil {
					alerts = make([][]bool, len(texts))
				}
				if alerts[i] == nil {
					alerts[i] = make([]bool, len(cands))
				}
				alerts[i][j] = true
			}
		}
	}
	return texts, alerts
}

// layoutTable returns the titles of cands, the sort column's marked, and
// the width of each column in width (0: dropped): every column as wide as
// its widest text, names capped, the least important dropped first.
func layoutTable(cands []*column, texts [][]string, sc sortSpec, width int, bits bool) (titles []string, keep []int) {
	titles = make([]string, len(cands))
	nat := make([]int, len(cands))
	capped := make([]int, len(cands))
	for i, c := range cands {
		titles[i] = c.title
		if c == sc.col {
			titles[i] += sortMark(sc.desc)
		}
		w := max(textWidth(titles[i]), c.narrowest(bits))
		for _, row := range texts {
			w = max(w, textWidth(row[i]))
		}
		nat[i], capped[i] = w, w
		if m := c.max; m > 0 && w > m {
			capped[i] = max(m, textWidth(titles[i]))
		}
	}
	return titles, layoutColumns(cands, capped, nat, width, sc.col)
}

// place records where the kept columns go, for painting and the mouse,
// and returns their indexes in cands.
func (t *flowTable) place(cands []*column, keep []int, width int) []int {
	var idx []int
	t.shown, t.colX, t.colW = t.shown[:0], t.colX[:0], t.colW[:0]
	for i, c := range cands {
		cx := 0
		if k := len(t.colX); k > 0 {
			cx = t.colX[k-1] + t.colW[k-1] + 1
		}
		if keep[i] == 0 || cx >= width {
			continue
		}
		idx = append(idx, i)
		t.shown = append(t.shown, c)
		t.colX = append(t.colX, cx)
		t.colW = append(t.colW, min(keep[i], width-cx))
	}
	return idx
}

// paint writes the titles and the rows (texts of rows from off; row sel
// selected) into the placed columns idx of cands, and blanks the rest of
// the box.
func (t *flowTable) paint(screen tcell.Screen, cands []*column, idx []int, titles []string, texts [][]string, alerts [][]bool, off, sel int) {
	x, y, width, height := t.GetInnerRect()
	blank := tcell.StyleDefault.Background(t.GetBackgroundColor())
	plain := cellStyle()
	for line := range height {
		ly := y + line
		if line > len(texts) {
			fill(screen, x, ly, width, blank)
			continue
		}
		end := 0 // of the columns drawn, relative to x
		for j, i := range idx {
			cx, w := x+t.colX[j], t.colW[j]
			text, style, sep := titles[i], headerStyle, blank
			if line > 0 {
				text, style = texts[line-1][i], plain
				if alerts != nil && alerts[line-1] != nil && alerts[line-1][i] {
					style = alertStyle
				}
				if off+line-1 == sel {
					style, sep = selectedStyle, selectedStyle
				}
			}
			putCell(screen, cx, ly, w, text, cands[i].numeric(), style)
			end = t.colX[j] + w + 1
			if end <= width {
				screen.SetContent(cx+w, ly, ' ', nil, sep)
			}
		}
		if end < width {
			fill(screen, x+end, ly, width-end, blank)
		}
	}
}

// fill writes w spaces from x on line y.
func fill(screen tcell.Screen, x, y, w int, style tcell.Style) {
	for i := range w {
		screen.SetContent(x+i, y, ' ', nil, style)
	}
}

// putCell writes text into the w columns from x on line y, aligned to the
// right or the left and padded with spaces; text wider than w is cut and
// ends in "…".
func putCell(screen tcell.Screen, x, y, w int, text string, right bool, style tcell.Style) {
	tw := textWidth(text)
	if tw > w {
		if w > 0 {
			used := put(screen, x, y, w-1, text, style)
			fill(screen, x+used, y, w-1-used, style) // a wide character that did not fit
			screen.SetContent(x+w-1, y, '…', nil, style)
		}
		return
	}
	if right {
		fill(screen, x, y, w-tw, style)
		put(screen, x+w-tw, y, tw, text, style)
		return
	}
	put(screen, x, y, tw, text, style)
	fill(screen, x+tw, y, w-tw, style)
}

// put writes at most w columns of text from x on line y and returns the
// columns written. Printable ASCII goes byte by byte; anything else
// grapheme by grapheme (a wide one that would not fit is left out, as are
// control characters, which take no column: a process may name itself
// with an escape character).
func put(screen tcell.Screen, x, y, w int, text string, style tcell.Style) int {
	if isASCII(text) {
		n := min(w, len(text))
		for i := range n {
			screen.SetContent(x+i, y, rune(text[i]), nil, style)
		}
		return n
	}
	used, state := 0, -1
	for text != "" {
		var cluster string
		var cw int
		cluster, text, cw, state = uniseg.FirstGraphemeClusterInString(text, state)
		if used+cw > w {
			break
		}
		if cw == 0 {
			continue
		}
		screen.Put(x+used, y, cluster, style) // one cluster: no runes to allocate
		used += cw
	}
	return used
}

// textWidth is the number of terminal columns text takes.
func textWidth(text string) int {
	if isASCII(text) {
		return len(text)
	}
	return uniseg.StringWidth(text)
}

// isASCII reports whether s is printable ASCII only, one column a byte.
func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < ' ' || c >= 0x7f {
			return false
		}
	}
	return true
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
func layoutColumns(cands []*column, capped, nat []int, width int, sortCol *column) []int {
	order := make([]int, len(cands))
	for i := range order {
		order[i] = i
	}
	prio := func(i int) int {
		if cands[i] == sortCol {
			return 99 // after DESTINATION/ADDRESS, before the rest
		}
		return cands[i].prio
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
			if y == t.headerY {
				if c, ok := t.columnAt(x); ok {
					a.sortBy(c)
				}
				return true, nil
			}
			if row := t.first + y - t.headerY - 1; row < a.view.rowCount() {
				a.moveTo(row)
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
		a.settleView()
		return true, nil
	})
}

// columnAt returns the column drawn at screen column x (a column owns the
// space after it).
func (t *flowTable) columnAt(x int) (*column, bool) {
	bx, _, _, _ := t.GetInnerRect()
	for j, c := range t.shown {
		if x-bx >= t.colX[j] && x-bx <= t.colX[j]+t.colW[j] {
			return c, true
		}
	}
	return nil, false
}

// watchRows tells a Watcher source which flows are on screen, when that
// changed: between two full refreshes of a huge table it reads them one
// by one, so that what the user looks at moves every interval.
func (a *App) watchRows(v *view, off, last int) {
	w, ok := a.cfg.Source.(Watcher) // none with a Fleet
	if !ok || v.p.tab != tabFlows {
		return
	}
	if a.watched.v == v && a.watched.off == off && a.watched.count == last-off {
		return
	}
	a.watched.v, a.watched.off, a.watched.count = v, off, last-off
	flows := make([]*conntrack.Flow, 0, last-off)
	for i := off; i < last; i++ {
		flows = append(flows, v.flow(i))
	}
	w.Watch(flows)
}
