package ui

import (
	"strconv"

	"github.com/gdamore/tcell/v2"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
)

// onKey handles every key before tview does (the app's input capture):
// Ctrl-C quits in any mode, even while typing a filter; other keys go to
// the keymap of the mode. It returns the event only when a focused widget
// (the filter input, the detail view, the help, the dialog) should get
// it.
func (a *App) onKey(ev *tcell.EventKey) *tcell.EventKey {
	defer a.settleView()
	if ev.Key() == tcell.KeyCtrlC {
		a.Stop()
		return nil
	}
	m := modeKeys[a.mode]
	if a.mode == modeTable && a.fleet != nil {
		m.keys = fleetTableKeys
	}
	return m.keys.handle(a, ev, m.unbound)
}

// modeKeys is each mode's keymap and what becomes of the keys it lacks.
var modeKeys = [...]struct {
	keys    keymap
	unbound unboundKeys
}{
	modeTable:   {tableKeys, swallow},
	modeFilter:  {filterKeys, pass},            // typed into the filter
	modeDetail:  {detailKeys, passAllButRunes}, // the text scrolls
	modeHelp:    {helpKeys, pass},              // the text scrolls
	modeConfirm: {confirmKeys, pass},           // Tab, arrows and Enter work the buttons
}

// tableKeys are the keys of the table, in the order of the help, which
// is made from them.
var tableKeys = keymap{
	{keys: "q Ctrl-C", help: "quit", beside: besideWide, acts: []act{
		on((*App).Stop, "q", tcell.KeyCtrlC)}},
	{keys: "?", help: "this help", acts: []act{on((*App).openHelp, "?")}},
	{keys: "↑ k u  ↓ j d", help: "move", beside: besideWide, acts: []act{
		on(up, "ku", tcell.KeyUp),
		on(down, "jd", tcell.KeyDown)}},
	{keys: "PgUp PgDn", help: "page up, down", acts: []act{
		on(pageUp, "", tcell.KeyPgUp).alias(tcell.KeyCtrlB),
		on(pageDown, "", tcell.KeyPgDn).alias(tcell.KeyCtrlF)}},
	{keys: "g Home  G End", help: "first row (stays on top as the order changes), last row", acts: []act{
		on(top, "g", tcell.KeyHome),
		on(bottom, "G", tcell.KeyEnd)}},
	{keys: "← h  → l", help: "scroll columns", beside: besideWide, acts: []act{
		on(func(a *App) { a.hoff = max(0, a.hoff-1) }, "h", tcell.KeyLeft),
		on(func(a *App) { a.hoff++ }, "l", tcell.KeyRight)}},
	{keys: "TAB  Shift-TAB", help: "next, previous tab", acts: []act{
		on(func(a *App) { a.setTab(a.nextTab(1)) }, "", tcell.KeyTab),
		on(func(a *App) { a.setTab(a.nextTab(-1)) }, "", tcell.KeyBacktab)}},
	{keys: "Enter", help: "details of the flow (Esc closes); on the other\ntabs, the flows of the row", acts: []act{
		on((*App).enter, "", tcell.KeyEnter)}},
	{keys: "< >  r", help: "sort by the column left, right; reverse the order", acts: []act{
		on(func(a *App) { a.shiftSort(-1) }, "<"),
		on(func(a *App) { a.shiftSort(1) }, ">"),
		on(func(a *App) { a.publish(func(p *params) { p.sortOf(p.tab).desc = !p.sortOf(p.tab).desc }) }, "r")}},
	{keys: "/", help: "filter: address, name, port, service, process,\ncountry, state; every word must match, =word\na whole field; Enter keeps it, Esc clears it", acts: []act{
		on((*App).openFilter, "/"),
		on(func(a *App) {
			if a.filter.GetText() != "" {
				a.filter.SetText("") // calls onQuery
			}
		}, "", tcell.KeyEscape)}},
	{keys: "p  space", help: "pause the view (data is still collected)", acts: []act{on((*App).togglePause, "p ")}},
	{keys: "a", help: "only active flows", beside: besideNarrow, acts: []act{
		on(func(a *App) { a.publish(func(p *params) { p.active = !p.active }) }, "a")}},
	{keys: "s", help: "source column", acts: []act{on(func(a *App) { a.showSrc = !a.showSrc }, "s")}},
	{keys: "n", help: "names or numbers", beside: besideNarrow, acts: []act{on(toggleNumeric, "n")}},
	{keys: "b", help: "bytes/s or bit/s", acts: []act{on(toggleBits, "b")}},
	{keys: "T U D I S", help: "TCP, UDP, DCCP, ICMP, SCTP on or off", acts: []act{
		on(func(a *App) { a.toggleProtos(conntrack.ProtoTCP) }, "T"),
		on(func(a *App) { a.toggleProtos(conntrack.ProtoUDP, conntrack.ProtoUDPLite) }, "U"),
		on(func(a *App) { a.toggleProtos(conntrack.ProtoDCCP) }, "D"),
		on(func(a *App) { a.toggleProtos(conntrack.ProtoICMP, conntrack.ProtoICMPv6) }, "I"),
		on(func(a *App) { a.toggleProtos(conntrack.ProtoSCTP) }, "S")}},
	{keys: "x  Delete", help: "delete the selected conntrack entry (asks first)", acts: []act{
		on(func(a *App) { a.askDelete(a.selectedFlow()) }, "x", tcell.KeyDelete)}},
}

// The help's two layouts of a line with two bindings: the second's keys
// in the column of "?" and "PgUp PgDn", or for a single-letter key close
// beside the first's text.
var (
	besideWide   = &helpColumns{text: 17, keys: 19}
	besideNarrow = &helpColumns{text: 20, keys: 3}
)

// mouseHelp ends the help: the mouse is the table's (flowTable's
// MouseHandler), not a keymap's.
var mouseHelp = binding{keys: "mouse", help: "click selects, double click opens, the wheel\nscrolls, a click on a column title sorts by it"}

// filterKeys are the keys of the / filter input; the others type.
var filterKeys = keymap{{acts: []act{
	on(func(a *App) { a.closeFilter(false) }, "", tcell.KeyEnter),
	on(func(a *App) { a.closeFilter(true) }, "", tcell.KeyEscape),
	on(up, "", tcell.KeyUp), // move while typing
	on(down, "", tcell.KeyDown),
	on(pageUp, "", tcell.KeyPgUp),
	on(pageDown, "", tcell.KeyPgDn),
}}}

// detailKeys are the keys of the detail view.
var detailKeys = keymap{{acts: []act{
	on((*App).closeDetail, "", tcell.KeyEscape),
	on(func(a *App) { a.askDelete(&a.detailFlow) }, "", tcell.KeyDelete),
	on(func(a *App) {
		if !a.detailGone {
			a.askDelete(&a.detailFlow)
		}
	}, "x"),
	on((*App).Stop, "q"),
	on((*App).openHelp, "?"),
	on((*App).togglePause, "p "),
	on(func(a *App) { toggleBits(a); a.refreshDetail() }, "b"),
	on(func(a *App) { toggleNumeric(a); a.refreshDetail() }, "n"),
	as(tcell.KeyDown, "j"),
	as(tcell.KeyUp, "k"),
}}}

// helpKeys are the keys of the help screen.
var helpKeys = keymap{{acts: []act{
	on((*App).closeHelp, "?q", tcell.KeyEscape, tcell.KeyEnter),
	as(tcell.KeyDown, "j"),
	as(tcell.KeyUp, "k"),
}}}

// confirmKeys are the keys of the delete confirmation.
var confirmKeys = keymap{{acts: []act{
	on(func(a *App) { a.endConfirm(true) }, "yY"),
	on(func(a *App) { a.endConfirm(false) }, "nNq", tcell.KeyEscape),
}}}

// The actions of several keymaps.
func up(a *App)            { a.move(-1) }
func down(a *App)          { a.move(1) }
func pageUp(a *App)        { a.move(-a.page()) }
func pageDown(a *App)      { a.move(a.page()) }
func top(a *App)           { a.moveTo(0) }
func bottom(a *App)        { a.moveTo(a.view.rowCount() - 1) }
func toggleBits(a *App)    { a.publish(func(p *params) { p.bits = !p.bits }) }
func toggleNumeric(a *App) { a.publish(func(p *params) { p.numeric = !p.numeric }) }

// page is how far PgUp and PgDn move: a screenful, less a row.
func (a *App) page() int { return max(1, a.tableRows-1) }

// shiftSort moves the sort column left or right; a new column starts in
// its natural order (numbers descending, text ascending).
func (a *App) shiftSort(d int) {
	cs := a.shownColumns(a.p.tab)
	cur := a.p.sortOf(a.p.tab).col
	i := 0
	for j, c := range cs {
		if c == cur {
			i = j
		}
	}
	i = (i + d + len(cs)) % len(cs)
	a.publish(func(p *params) { *p.sortOf(p.tab) = sortSpec{col: cs[i], desc: cs[i].numeric()} })
}

// sortBy sorts by c, or reverses the order when c is already the sort
// column (a click on a column title).
func (a *App) sortBy(c *column) {
	a.publish(func(p *params) {
		if s := p.sortOf(p.tab); s.col == c {
			s.desc = !s.desc
		} else {
			*s = sortSpec{col: c, desc: c.numeric()}
		}
	})
}

func (a *App) setTab(t tabID) {
	if t == a.p.tab {
		return
	}
	a.offset, a.hoff = 0, 0
	a.publish(func(p *params) { p.tab = t })
}

// togglePause freezes or thaws the view. The refresher keeps the frozen
// snapshot; the Source keeps collecting.
func (a *App) togglePause() {
	frozen, frozenFleet := a.view.snap, a.view.fd
	a.publish(func(p *params) {
		p.paused = !p.paused
		p.frozen, p.frozenFleet = nil, nil
		if p.paused {
			p.frozen, p.frozenFleet = frozen, frozenFleet
		}
	})
}

// enter opens the selected flow's detail view, or on the other tabs shows
// the flows of the selected process or address.
func (a *App) enter() {
	v := a.view
	i := a.selected()
	if i < 0 {
		return
	}
	switch v.p.tab {
	case tabFlows:
		a.openDetail(v.flow(i))
	case tabNodes:
		a.chooseNode(v.nodes[i].Name)
	case tabProcesses:
		if g := v.groups[i]; g.proc.Known() {
			a.drill("=" + strconv.Itoa(g.proc.PID))
		}
	default:
		a.drill("=" + addrString(v.groups[i].addr()))
	}
}

// drill shows the Flows tab filtered by q.
func (a *App) drill(q string) {
	a.filter.SetText(q) // publishes through onQuery
	a.offset, a.hoff = 0, 0
	a.sel[tabFlows].follow = false // a new list: its top first
	a.publish(func(p *params) { p.tab = tabFlows })
}

func (a *App) onQuery(text string) {
	terms := enrich.ParseQuery(text)
	a.publish(func(p *params) { p.terms = terms })
}

func (a *App) openFilter() {
	a.mode = modeFilter
	a.bottom.SwitchToPage("filter")
	a.app.SetFocus(a.filter)
}

// closeFilter leaves the filter input, keeping the filter or clearing it.
func (a *App) closeFilter(clear bool) {
	if clear {
		a.filter.SetText("")
	}
	a.mode = modeTable
	a.bottom.SwitchToPage("status")
	a.focusMode()
}

func (a *App) openHelp() {
	a.prevMode = a.mode
	a.mode = modeHelp
	a.help.ScrollToBeginning()
	a.root.ShowPage("help")
	a.app.SetFocus(a.help)
}

func (a *App) closeHelp() {
	a.root.HidePage("help")
	a.mode = a.prevMode
	a.focusMode()
}

func (a *App) openDetail(f *conntrack.Flow) {
	a.detailFlow, a.detailGone = *f, false
	a.detailNode = ""
	if nodeOf := a.view.nodeOf; nodeOf != nil {
		a.detailNode = nodeOf(f)
	}
	a.mode = modeDetail
	a.body.SwitchToPage("detail")
	a.refreshDetail()
	a.detail.ScrollToBeginning()
	a.app.SetFocus(a.detail)
}

func (a *App) closeDetail() {
	a.mode = modeTable
	a.body.SwitchToPage("table")
	a.focusMode()
}

// focusMode gives the focus to the widget of the current mode.
func (a *App) focusMode() {
	switch a.mode {
	case modeDetail:
		a.app.SetFocus(a.detail)
	case modeFilter:
		a.app.SetFocus(a.filter)
	default:
		a.app.SetFocus(a.table)
	}
}
