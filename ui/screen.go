package ui

import (
	"strconv"
	"strings"
	"sync"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"
)

// lineBox draws lines that a function computes at draw time, so what it
// shows always matches the state of the moment. Lines may hold tview
// style tags; user data in them is escaped.
type lineBox struct {
	*tview.Box
	lines func(width int) []string
	// click, when set, gets mouse clicks as a column and row in the box.
	click func(x, y int)
}

func newLineBox(lines func(width int) []string) *lineBox {
	return &lineBox{Box: tview.NewBox(), lines: lines}
}

func (b *lineBox) Draw(screen tcell.Screen) {
	b.DrawForSubclass(screen, b)
	x, y, w, h := b.GetInnerRect()
	for i, l := range b.lines(w) {
		if i >= h {
			break
		}
		tview.Print(screen, l, x, y+i, w, tview.AlignLeft, tcell.ColorDefault)
	}
}

func (b *lineBox) MouseHandler() func(action tview.MouseAction, event *tcell.EventMouse, setFocus func(p tview.Primitive)) (bool, tview.Primitive) {
	return b.WrapMouseHandler(func(action tview.MouseAction, event *tcell.EventMouse, setFocus func(p tview.Primitive)) (bool, tview.Primitive) {
		x, y := event.Position()
		if b.click == nil || action != tview.MouseLeftClick || !b.InRect(x, y) {
			return false, nil
		}
		bx, by, _, _ := b.GetInnerRect()
		b.click(x-bx, y-by)
		return true, nil
	})
}

var stylesOnce sync.Once

// useTerminalColors makes tview draw on the terminal's own colours.
func useTerminalColors() {
	stylesOnce.Do(func() {
		tview.Styles.PrimitiveBackgroundColor = tcell.ColorDefault
		tview.Styles.PrimaryTextColor = tcell.ColorDefault
		tview.Styles.BorderColor = tcell.ColorDefault
		tview.Styles.TitleColor = tcell.ColorDefault
		tview.Styles.ContrastBackgroundColor = tcell.ColorNavy
		tview.Styles.MoreContrastBackgroundColor = tcell.ColorTeal
		tview.Styles.SecondaryTextColor = tcell.ColorYellow
	})
}

// buildLayout makes the primitives:
//
//	header (3+ lines: title, filter, health, warnings)
//	tab bar
//	table | detail view
//	status line | / filter input
//
// with help and the delete confirmation as overlays.
func (a *App) buildLayout() {
	useTerminalColors()
	a.header = newLineBox(a.headerLines)
	a.tabs = newLineBox(a.tabLine)
	a.tabs.click = a.clickTab
	a.table = newFlowTable(a)
	a.detail = tview.NewTextView().SetDynamicColors(true).SetWrap(true).SetScrollable(true)
	a.detail.SetBorder(true).SetTitle(" Flow detail (Esc closes) ")
	a.body = tview.NewPages().
		AddPage("table", a.table, true, true).
		AddPage("detail", a.detail, true, false)
	a.status = newLineBox(a.statusLine)
	a.filter = tview.NewInputField().SetLabel("/").SetFieldBackgroundColor(tcell.ColorDefault).
		SetChangedFunc(a.onQuery)
	a.bottom = tview.NewPages().
		AddPage("status", a.status, true, true).
		AddPage("filter", a.filter, true, false)
	a.layout = tview.NewFlex().SetDirection(tview.FlexRow).
		AddItem(a.header, 3, 0, false).
		AddItem(a.tabs, 1, 0, false).
		AddItem(a.body, 0, 1, true).
		AddItem(a.bottom, 1, 0, false)

	help := helpScreen
	if a.fleet != nil {
		help = fleetHelpScreen
	}
	helpHeight := strings.Count(help, "\n") + 3 // lines and border
	a.help = tview.NewTextView().SetDynamicColors(true).SetText(help)
	a.help.SetBorder(true).SetTitle(" flowtop keys (Esc closes) ")
	helpCol := tview.NewFlex().SetDirection(tview.FlexRow).
		AddItem(nil, 0, 1, false).
		AddItem(a.help, helpHeight, 0, true).
		AddItem(nil, 0, 1, false)
	helpBox := tview.NewFlex().
		AddItem(nil, 0, 1, false).
		AddItem(helpCol, helpWidth, 0, true).
		AddItem(nil, 0, 1, false)

	a.confirm = tview.NewModal().AddButtons([]string{"Delete", "Keep"}).
		SetDoneFunc(func(_ int, label string) { a.endConfirm(label == "Delete") })

	a.root = tview.NewPages().
		AddPage("main", a.layout, true, true).
		AddPage("help", helpBox, true, false).
		AddPage("confirm", a.confirm, true, false)
	a.app.SetRoot(a.root, true).SetFocus(a.table)
	a.app.SetBeforeDrawFunc(func(screen tcell.Screen) bool {
		w, h := screen.Size()
		a.layout.ResizeItem(a.header, len(a.headerLines(w)), 0)
		helpCol.ResizeItem(a.help, min(helpHeight, h), 0)
		return false
	})
}

// sep joins header parts.
const sep = "  "

// maxWarnLines caps the lines warnings take in the header.
const maxWarnLines = 4

// headerLines is the header: what is shown, how fast, how healthy, and
// warnings, wrapped to width.
func (a *App) headerLines(width int) []string {
	if a.fleet != nil {
		return a.fleetHeaderLines(width)
	}
	lines := []string{a.titleLine(), a.filterLine(), a.healthLine()}
	return append(lines, warningLines(a.warnings(), width)...)
}

// titleLine is the header's first line: what is shown, and how fast.
func (a *App) titleLine() string {
	v := a.view
	var b strings.Builder
	b.WriteString("[::b]flowtop")
	if a.cfg.Version != "" {
		b.WriteString(" " + esc(a.cfg.Version))
	}
	b.WriteString("[::-]" + sep + "netns ")
	if a.cfg.Netns == "" {
		b.WriteString("own")
	} else {
		b.WriteString(esc(a.cfg.Netns))
	}
	b.WriteString(sep + "flows " + fmtCount(uint64(v.shown)) + "/" + fmtCount(uint64(v.total)))
	if s := v.snap; s != nil && s.TableFlows != v.total {
		b.WriteString(" (table " + fmtCount(uint64(s.TableFlows)) + ")")
	}
	b.WriteString(sep + "src " + fmtRate(v.srcRate, a.p.bits) + sep + "dst " + fmtRate(v.dstRate, a.p.bits))
	if a.p.paused {
		b.WriteString(sep + "[black:yellow:b] PAUSED [-:-:-]")
	}
	return b.String()
}

// filterLine is the header's second line: the filters, sort and toggles.
func (a *App) filterLine() string {
	var b strings.Builder
	if a.fleet != nil {
		b.WriteString(a.fleetFilterText())
	} else {
		f := a.currentFilter()
		b.WriteString("filter " + f.String()) // the JSON document's "filter" too
		if a.pendingFilter != nil {
			b.WriteString(" (applying)")
		}
	}
	if q := a.filter.GetText(); q != "" {
		b.WriteString(sep + "[yellow]/" + esc(q) + "[-]")
	}
	if a.p.active {
		b.WriteString(sep + "active only")
	}
	sc := *a.p.sortOf(a.p.tab)
	b.WriteString(sep + "sort " + sc.col.title + sortMark(sc.desc))
	if a.p.bits {
		b.WriteString(sep + "bit/s")
	}
	if a.p.numeric {
		b.WriteString(sep + "numeric")
	}
	return b.String()
}

// healthLine is the header's third line: events and the table's health.
func (a *App) healthLine() string {
	v := a.view
	var b strings.Builder
	b.WriteString("events " + strconv.FormatFloat(v.eventsPerS, 'f', 0, 64) + "/s")
	s := v.snap
	if s == nil {
		return b.String()
	}
	h := &s.Health
	if h.Overruns > 0 {
		b.WriteString(sep + "[red::b]overruns " + fmtCount(h.Overruns) + "[-::-]")
	} else {
		b.WriteString(sep + "overruns 0")
	}
	b.WriteString(sep + "resyncs " + fmtCount(h.Resyncs))
	b.WriteString(sep + "refresh " + fmtDuration(h.Refresh))
	if h.RefreshEvery > 0 {
		b.WriteString(" every " + fmtDuration(h.RefreshEvery))
	}
	if h.HotFlows > 0 {
		// A huge table: the busiest and on-screen flows are read every
		// tick in between.
		b.WriteString(" (" + fmtCount(uint64(h.HotFlows)) + " busiest every tick)")
	}
	if h.KernelFlows >= 0 {
		b.WriteString(sep + "kernel " + fmtCount(uint64(h.KernelFlows)))
	}
	return b.String()
}

// warningLines wraps warnings to width, at most maxWarnLines lines.
func warningLines(ws []string, width int) []string {
	var wl []string
	for _, w := range ws {
		for i, l := range tview.WordWrap(esc(w), max(10, width-2)) {
			if i == 0 {
				l = "! " + l
			} else {
				l = "  " + l
			}
			wl = append(wl, "[yellow::b]"+l+"[-::-]")
		}
	}
	if len(wl) > maxWarnLines {
		wl = append(wl[:maxWarnLines-1], "[yellow::b]! … more warnings[-::-]")
	}
	return wl
}

// warnings are the Config's and those the screen sees itself.
func (a *App) warnings() []string {
	v := a.view
	ws := append([]string(nil), v.warnings...)
	if s := v.snap; s != nil {
		h := &s.Health
		if !h.Accounting {
			ws = append(ws, "accounting (nf_conntrack_acct) is off: no byte counters")
		}
		if s.TableFlows == 0 && h.KernelFlows <= 0 {
			ws = append(ws, "conntrack looks inactive here: no tracked flows (no rule uses conntrack? see --enable-tracking)")
		}
		if h.LastError != "" {
			ws = append(ws, h.LastError)
		}
		if age := a.now().Sub(s.Time); !a.p.paused && !s.Time.IsZero() && age > 5*a.cfg.Interval+5*1e9 {
			ws = append(ws, "no new data for "+fmtAge(age))
		}
	}
	return ws
}

// tabLine is the tab bar, the current tab highlighted.
func (a *App) tabLine(int) []string {
	var b strings.Builder
	for _, t := range a.tabOrder() {
		if t == a.p.tab {
			b.WriteString("[::r] " + tabOf(t).name + " [::-]")
		} else {
			b.WriteString(" " + tabOf(t).name + " ")
		}
		b.WriteString(" ")
	}
	b.WriteString("  [::d]TAB switch  ? help[::-]")
	return []string{b.String()}
}

// clickTab switches to the tab under a click on the tab bar.
func (a *App) clickTab(x, _ int) {
	pos := 0
	for _, t := range a.tabOrder() {
		w := len(tabOf(t).name) + 2
		if x >= pos && x < pos+w {
			a.setTab(t)
			a.settleView()
			return
		}
		pos += w + 1
	}
}

// statusLine is the bottom line: the last message, else the Config's
// status text, and the position in the table.
func (a *App) statusLine(width int) []string {
	v := a.view
	left := ""
	if a.msg != "" && a.now().Sub(a.msgAt) < msgTTL {
		if a.msgErr {
			left = "[red::b]" + esc(a.msg) + "[-::-]"
		} else {
			left = esc(a.msg)
		}
	} else if v.status != "" {
		left = esc(v.status)
	}
	right := ""
	if n := v.rowCount(); n > 0 {
		right = strconv.Itoa(a.selected()+1) + "/" + strconv.Itoa(n)
	}
	if a.hoff > 0 {
		right = "cols +" + strconv.Itoa(a.hoff) + "  " + right
	}
	pad := width - tview.TaggedStringWidth(left) - len(right)
	if pad < 1 {
		pad = 1
	}
	return []string{left + strings.Repeat(" ", pad) + right}
}

// helpScreen is the text of the help: the table's keys and the mouse.
var helpScreen = helpText(append(tableKeys[:len(tableKeys):len(tableKeys)], mouseHelp)...)

const helpWidth = 74
