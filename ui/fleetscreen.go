package ui

import (
	"strings"

	"github.com/flowtop/flowtop/remote"
)

// fleetHeaderLines is the header with a Fleet: the broker and the node
// shown, how old its data is (red when it is offline or stale), the
// filters, the router's health, whether the document is whole, and one
// line each for the broker's and the node's last problem.
func (a *App) fleetHeaderLines(width int) []string {
	lines := []string{a.fleetTitleLine(), a.filterLine(), a.fleetHealthLine()}
	return append(lines, warningLines(a.fleetWarnings(), width)...)
}

// fleetOf is what the view on screen read of the Fleet; before the first
// build, the connection alone.
func (a *App) fleetOf() *fleetData {
	if fd := a.view.fd; fd != nil {
		return fd
	}
	return &fleetData{node: a.p.node, conn: a.fleet.Conn(), interval: a.cfg.Interval}
}

func (a *App) fleetTitleLine() string {
	v, fd := a.view, a.fleetOf()
	var b strings.Builder
	b.WriteString("[::b]flowtop")
	if a.cfg.Version != "" {
		b.WriteString(" " + esc(a.cfg.Version))
	}
	b.WriteString("[::-]" + sep + "broker " + esc(fd.conn.Broker))
	if !fd.conn.Connected {
		b.WriteString(sep + "[yellow::b]connecting to broker…[-::-]")
	}
	if v.p.tab == tabNodes {
		b.WriteString(sep + nodeCounts(fd.nodes))
	} else {
		b.WriteString(sep + a.shownNode(fd))
	}
	if a.p.paused {
		b.WriteString(sep + "[black:yellow:b] PAUSED [-:-:-]")
	}
	return b.String()
}

// nodeCounts is "nodes 12 (10 online, 2 offline)".
func nodeCounts(nodes []remote.NodeInfo) string {
	var on, off int
	for i := range nodes {
		switch nodes[i].Status {
		case remote.StatusOnline:
			on++
		case remote.StatusOffline:
			off++
		}
	}
	s := "nodes " + itoa(len(nodes)) + " (" + itoa(on) + " online"
	if off > 0 {
		s += ", [red::b]" + itoa(off) + " offline[-::-]"
	}
	return s + ")"
}

// shownNode says which node the data tabs show, how old its data is and
// what it holds.
func (a *App) shownNode(fd *fleetData) string {
	v := a.view
	var b strings.Builder
	switch fd.node {
	case "":
		return "no node chosen (Enter on the Nodes tab, A: every node)"
	case allNodes:
		b.WriteString("[::b]all nodes[::-]")
		if fd.fleet != nil {
			b.WriteString(" (" + itoa(len(fd.fleet.Nodes)) + ")")
		}
		var off int
		for i := range fd.nodes {
			if fd.nodes[i].Status == remote.StatusOffline {
				off++
			}
		}
		if off > 0 {
			b.WriteString(sep + "[red::b]" + itoa(off) + " offline[-::-]")
		}
	default:
		b.WriteString("node [::b]" + esc(fd.node) + "[::-]")
		if fd.info != nil && fd.info.Status == remote.StatusOffline {
			b.WriteString(" [red::b]OFFLINE[-::-]")
		}
	}
	age, stale, ok := fd.age(a.now())
	switch {
	case !ok:
		b.WriteString(sep + "no data yet")
		return b.String()
	case stale && !a.p.paused:
		b.WriteString(sep + "[red::b]stale " + fmtAge(age) + "[-::-]")
	default:
		b.WriteString(sep + "data " + fmtAge(age) + " old")
	}
	b.WriteString(sep + "flows " + fmtCount(uint64(v.shown)) + "/" + fmtCount(uint64(v.total)))
	if router := fd.routerFlows(); router != v.total {
		b.WriteString(" (router " + fmtCount(uint64(max(0, router))) + ")")
	}
	b.WriteString(sep + "src " + fmtRate(v.srcRate, a.p.bits) + sep + "dst " + fmtRate(v.dstRate, a.p.bits))
	return b.String()
}

// routerFlows is how many flows the routers count, listed or not.
func (fd *fleetData) routerFlows() int {
	switch {
	case fd.view != nil:
		return fd.view.Totals.Flows
	case fd.fleet != nil:
		return fd.fleet.Totals.Flows
	}
	return 0
}

// fleetFilterText is the start of the filter line with a Fleet: the
// router's filter, and the protocols hidden here.
func (a *App) fleetFilterText() string {
	if a.p.tab == tabNodes {
		return "nodes by name, host or status: /"
	}
	s := "router filter "
	if snap := a.view.snap; snap != nil {
		s += snap.Filter.String()
	} else {
		s += "-"
	}
	if h := hiddenProtos(a.p.protos); h != "" {
		s += sep + "[yellow]hidden here " + h + "[-]"
	}
	return s
}

// fleetHealthLine is the nodes' presence on the Nodes tab; on the others
// the router's health, and whether its document is whole.
func (a *App) fleetHealthLine() string {
	v, fd := a.view, a.fleetOf()
	if v.p.tab == tabNodes {
		var live, errs int
		for i := range fd.nodes {
			if fd.nodes[i].Live {
				live++
			}
			if fd.nodes[i].Err != "" {
				errs++
			}
		}
		s := "live " + itoa(live)
		if errs > 0 {
			s += sep + "[yellow::b]" + itoa(errs) + " with errors (ERR)[-::-]"
		}
		if c := fd.conn; c.Dropped > 0 || c.Ignored > 0 {
			s += sep + "broker messages dropped " + fmtCount(c.Dropped) + ", ignored " + fmtCount(c.Ignored)
		}
		return s
	}
	if v.snap == nil {
		return ""
	}
	// First: a narrow screen must not cut it off.
	s := ""
	if p := incompleteText(fd); p != "" {
		s = "[red::b]" + esc(p) + "[-::-]" + sep
	}
	s += a.healthLine()
	if fd.view != nil && fd.view.Live {
		s += sep + "live"
	}
	return s
}

// incompleteText tells what part of a document never came: "incomplete:
// parts 2/3", or with every node, which nodes; "" when whole.
func incompleteText(fd *fleetData) string {
	if v := fd.view; v != nil {
		if v.Complete {
			return ""
		}
		return "incomplete: parts " + itoa(v.PartsReceived) + "/" + itoa(v.Parts)
	}
	if fd.fleet == nil || fd.fleet.Complete {
		return ""
	}
	var names []string
	for _, nv := range fd.fleet.Nodes {
		if !nv.Complete {
			names = append(names, nv.Node+" parts "+itoa(nv.PartsReceived)+"/"+itoa(nv.Parts))
		}
	}
	if len(names) > 3 {
		names = append(names[:3], "…")
	}
	return "incomplete: " + strings.Join(names, ", ")
}

// fleetWarnings are the Config's and, one line each, the broker's last
// problem (while unconnected or since connecting), the node's (since its
// document shown) and what the router's own health says.
func (a *App) fleetWarnings() []string {
	v, fd := a.view, a.fleetOf()
	ws := append([]string(nil), v.warnings...)
	if c := fd.conn; c.Err != "" && (!c.Connected || !c.ErrAt.Before(c.Since)) {
		ws = append(ws, "broker: "+c.Err)
	}
	if v.p.tab == tabNodes {
		return ws
	}
	if n := fd.info; n != nil && n.Err != "" && (fd.view == nil || !n.ErrAt.Before(fd.view.Received)) {
		ws = append(ws, fd.node+": "+n.Err)
	}
	s := fd.snap
	if s == nil {
		return ws
	}
	where := "on " + fd.node
	if fd.node == allNodes {
		where = "on a node"
	}
	h := &s.Health
	if !h.Accounting {
		ws = append(ws, "accounting (nf_conntrack_acct) is off "+where+": no byte counters")
	}
	if fd.view != nil && s.TableFlows == 0 && h.KernelFlows == 0 {
		ws = append(ws, "conntrack looks inactive "+where+": no tracked flows")
	}
	if h.LastError != "" {
		ws = append(ws, fd.node+": "+h.LastError)
	}
	return ws
}

// emptyFleetMsg is what an empty table says with a Fleet, "" for the
// usual.
func emptyFleetMsg(v *view) string {
	fd := v.fd
	if fd == nil {
		return "connecting to broker…"
	}
	if v.p.tab == tabNodes {
		switch {
		case len(fd.nodes) == 0 && !fd.conn.Connected:
			return "connecting to broker…"
		case len(fd.nodes) == 0:
			return "no node has published under the prefix yet"
		case len(v.p.terms) > 0:
			return "no nodes match the filter"
		}
		return ""
	}
	switch {
	case fd.node == "":
		return "no node chosen: Enter on a node of the Nodes tab (A: every node)"
	case fd.snap == nil && fd.node == allNodes:
		return "waiting for the nodes' first documents…"
	case fd.snap == nil:
		return "waiting for " + esc(fd.node) + "'s first document…"
	}
	return ""
}
