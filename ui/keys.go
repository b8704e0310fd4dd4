package ui

import (
	"strconv"

	"github.com/gdamore/tcell/v2"

	"github.com/flowtop/flowtop/conntrack"
)

// onKey handles every key before tview does (the app's input capture). It
// returns the event only when a focused widget (the filter input, the
// detail view, the dialog) should get it.
func (a *App) onKey(ev *tcell.EventKey) *tcell.EventKey {
	if ev.Key() == tcell.KeyCtrlC {
		a.Stop()
		return nil
	}
	switch a.mode {
	case modeHelp:
		switch ev.Key() {
		case tcell.KeyEscape, tcell.KeyEnter:
			a.closeHelp()
			return nil
		case tcell.KeyRune:
			switch ev.Rune() {
			case '?', 'q':
				a.closeHelp()
				return nil
			case 'j':
				return tcell.NewEventKey(tcell.KeyDown, 0, tcell.ModNone)
			case 'k':
				return tcell.NewEventKey(tcell.KeyUp, 0, tcell.ModNone)
			}
		}
		return ev // the help text scrolls
	case modeConfirm:
		switch ev.Key() {
		case tcell.KeyEscape:
			a.endConfirm(false)
			return nil
		case tcell.KeyRune:
			switch ev.Rune() {
			case 'y', 'Y':
				a.endConfirm(true)
				return nil
			case 'n', 'N', 'q':
				a.endConfirm(false)
				return nil
			}
		}
		return ev // Tab, arrows and Enter work the buttons
	case modeFilter:
		switch ev.Key() {
		case tcell.KeyEnter:
			a.closeFilter(false)
			return nil
		case tcell.KeyEscape:
			a.closeFilter(true)
			return nil
		case tcell.KeyUp, tcell.KeyDown, tcell.KeyPgUp, tcell.KeyPgDn:
			a.navigate(ev) // move while typing
			return nil
		}
		return ev
	case modeDetail:
		switch ev.Key() {
		case tcell.KeyEscape:
			a.closeDetail()
			return nil
		case tcell.KeyDelete:
			a.askDelete(&a.detailFlow)
			return nil
		case tcell.KeyRune:
			switch ev.Rune() {
			case 'q':
				a.Stop()
			case 'x':
				if !a.detailGone {
					a.askDelete(&a.detailFlow)
				}
			case '?':
				a.openHelp()
			case 'p', ' ':
				a.togglePause()
			case 'b':
				a.publish(func(p *params) { p.bits = !p.bits })
				a.refreshDetail()
			case 'n':
				a.publish(func(p *params) { p.numeric = !p.numeric })
				a.refreshDetail()
			case 'j':
				return tcell.NewEventKey(tcell.KeyDown, 0, tcell.ModNone)
			case 'k':
				return tcell.NewEventKey(tcell.KeyUp, 0, tcell.ModNone)
			default:
				return nil
			}
			return nil
		}
		return ev // the detail text scrolls
	}

	if a.navigate(ev) {
		return nil
	}
	switch ev.Key() {
	case tcell.KeyTab:
		a.setTab((a.p.tab + 1) % numTabs)
	case tcell.KeyBacktab:
		a.setTab((a.p.tab + numTabs - 1) % numTabs)
	case tcell.KeyEnter:
		a.enter()
	case tcell.KeyDelete:
		a.askDelete(a.selectedFlow())
	case tcell.KeyEscape:
		if a.filter.GetText() != "" {
			a.filter.SetText("") // calls onQuery
		}
	case tcell.KeyRune:
		a.onRune(ev.Rune())
	}
	return nil
}

// navigate handles the keys that move the selection; it reports whether ev
// was one.
func (a *App) navigate(ev *tcell.EventKey) bool {
	page := max(1, a.pageRows-1)
	switch ev.Key() {
	case tcell.KeyUp:
		a.move(-1)
	case tcell.KeyDown:
		a.move(1)
	case tcell.KeyPgUp, tcell.KeyCtrlB:
		a.move(-page)
	case tcell.KeyPgDn, tcell.KeyCtrlF:
		a.move(page)
	case tcell.KeyHome:
		a.moveTo(0)
	case tcell.KeyEnd:
		a.moveTo(a.view.rowCount() - 1)
	case tcell.KeyLeft:
		a.hoff = max(0, a.hoff-1)
	case tcell.KeyRight:
		a.hoff++ // clamped when drawn
	case tcell.KeyRune:
		switch ev.Rune() {
		case 'k', 'u':
			a.move(-1)
		case 'j', 'd':
			a.move(1)
		case 'g':
			a.moveTo(0)
		case 'G':
			a.moveTo(a.view.rowCount() - 1)
		case 'h':
			a.hoff = max(0, a.hoff-1)
		case 'l':
			a.hoff++
		default:
			return false
		}
	default:
		return false
	}
	return true
}

func (a *App) onRune(r rune) {
	switch r {
	case 'q':
		a.Stop()
	case '?':
		a.openHelp()
	case '/':
		a.openFilter()
	case 'p', ' ':
		a.togglePause()
	case 'b':
		a.publish(func(p *params) { p.bits = !p.bits })
	case 'n':
		a.publish(func(p *params) { p.numeric = !p.numeric })
	case 'a':
		a.publish(func(p *params) { p.active = !p.active })
	case 's':
		a.showSrc = !a.showSrc
	case '<':
		a.shiftSort(-1)
	case '>':
		a.shiftSort(1)
	case 'r':
		a.publish(func(p *params) { p.sort[p.tab].desc = !p.sort[p.tab].desc })
	case 'x':
		a.askDelete(a.selectedFlow())
	case 'T':
		a.toggleProtos(conntrack.ProtoTCP)
	case 'U':
		a.toggleProtos(conntrack.ProtoUDP, conntrack.ProtoUDPLite)
	case 'D':
		a.toggleProtos(conntrack.ProtoDCCP)
	case 'I':
		a.toggleProtos(conntrack.ProtoICMP, conntrack.ProtoICMPv6)
	case 'S':
		a.toggleProtos(conntrack.ProtoSCTP)
	}
}

// sortable lists the columns < and > step through on the current tab:
// those of the tab, SOURCE only when shown.
func (a *App) sortable() []*column {
	var cs []*column
	for _, c := range tabs[a.p.tab].columns {
		if !c.withS || a.showSrc {
			cs = append(cs, c)
		}
	}
	return cs
}

// shiftSort moves the sort column left or right; a new column starts in
// its natural order (numbers descending, text ascending).
func (a *App) shiftSort(d int) {
	cs := a.sortable()
	cur := a.p.sort[a.p.tab].col
	i := 0
	for j, c := range cs {
		if c == cur {
			i = j
		}
	}
	i = (i + d + len(cs)) % len(cs)
	a.publish(func(p *params) { p.sort[p.tab] = sortSpec{col: cs[i], desc: cs[i].numeric()} })
}

// sortBy sorts by c, or reverses the order when c is already the sort
// column (a click on a column title).
func (a *App) sortBy(c *column) {
	a.publish(func(p *params) {
		if p.sort[p.tab].col == c {
			p.sort[p.tab].desc = !p.sort[p.tab].desc
		} else {
			p.sort[p.tab] = sortSpec{col: c, desc: c.numeric()}
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
	frozen := a.view.snap
	a.publish(func(p *params) {
		p.paused = !p.paused
		p.frozen = nil
		if p.paused {
			p.frozen = frozen
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
	terms := parseQuery(text)
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
