package ui

import (
	"strings"
	"time"

	"github.com/gdamore/tcell/v2"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
	"github.com/flowtop/flowtop/remote"
)

// Fleet is what the screen needs of an MQTT broker to show other machines' flows
// (flowtop --remote). *remote.Client implements it.
type Fleet interface {
	Nodes() []remote.NodeInfo
	Conn() remote.ConnInfo
	Latest(node string) *remote.View
	Fleet() *remote.FleetView
	Watch(nodes ...string)
	WatchAll()
	WatchSummary()
	Changes() <-chan struct{}
}

var _ Fleet = (*remote.Client)(nil)

// allNodes is Config.Node (and params.node) for every node in one table.
const allNodes = "+"

// The tabs in the order of the tab bar and of TAB: the Nodes tab only
// with a Fleet.
var (
	localTabs = []tabID{tabFlows, tabProcesses, tabHosts, tabRemote}
	fleetTabs = []tabID{tabNodes, tabFlows, tabProcesses, tabHosts, tabRemote}
)

// tabOrder is the screen's tabs, in order.
func (a *App) tabOrder() []tabID {
	if a.fleet != nil {
		return fleetTabs
	}
	return localTabs
}

// nextTab is the tab d places after the current one (d < 0: before), in
// the tab bar's order.
func (a *App) nextTab(d int) tabID {
	order := a.tabOrder()
	i := 0
	for j, t := range order {
		if t == a.p.tab {
			i = j
		}
	}
	return order[(i+d+len(order))%len(order)]
}

// fleetData is what one build in fleet mode read from the Fleet: all of
// it at once, so that the rows, the names and the header agree. It is
// immutable once made.
type fleetData struct {
	node  string            // params.node: "" none chosen, allNodes, or a node's name
	nodes []remote.NodeInfo // every node, by name
	conn  remote.ConnInfo
	view  *remote.View      // the chosen node's latest, nil before its first
	fleet *remote.FleetView // with allNodes
	snap  *conntrack.Snapshot
	// names are the router's first, the screen's own lookups for what it
	// did not send, the process from the router only.
	names enrich.Namer
	info  *remote.NodeInfo // the chosen node's entry in nodes
	// interval is the screen's refresh interval, for staleness.
	interval time.Duration
}

// readFleet reads what a build for p shows.
func (a *App) readFleet(p *params) *fleetData {
	f := a.fleet
	fd := &fleetData{node: p.node, nodes: f.Nodes(), conn: f.Conn(), interval: a.cfg.Interval}
	switch p.node {
	case "":
	case allNodes:
		if fv := f.Fleet(); fv != nil && fv.Snapshot != nil && len(fv.Nodes) > 0 {
			fd.fleet, fd.snap = fv, fv.Snapshot
			fd.names = remote.PreferRouter(fv, a.names)
		}
	default:
		if v := f.Latest(p.node); v != nil && v.Snapshot != nil {
			fd.view, fd.snap = v, v.Snapshot
			fd.names = remote.PreferRouter(v, a.names)
		}
		for i := range fd.nodes {
			if fd.nodes[i].Name == p.node {
				fd.info = &fd.nodes[i]
			}
		}
	}
	return fd
}

// nodeOf names the node of a flow of the "+" table, nil otherwise.
func (fd *fleetData) nodeOf() func(*conntrack.Flow) string {
	if fd == nil || fd.fleet == nil {
		return nil
	}
	return fd.fleet.NodeOf
}

// staleAfter is the age past which a watched node's data is stale: three
// of its periods (the router's -t or the screen's, the longer) and 5 s
// for the broker.
func staleAfter(routerInterval, screenInterval time.Duration) time.Duration {
	return 3*max(routerInterval, screenInterval) + 5*time.Second
}

// age is how old the data shown is at now (by the routers' clocks, never
// below 0), and whether it is stale; ok is false before any.
func (fd *fleetData) age(now time.Time) (age time.Duration, stale, ok bool) {
	if fd.snap == nil || fd.snap.Time.IsZero() {
		return 0, false, false
	}
	age = max(0, now.Sub(fd.snap.Time))
	return age, age > staleAfter(fd.snap.Interval, fd.interval), true
}

// nodeRow is a row of the Nodes tab: a node as of the build.
type nodeRow struct {
	remote.NodeInfo
	age   time.Duration // of its data at the build, -1 before any
	stale bool          // watched and no document for staleAfter, or quiet for two of its periods
}

// buildNodes makes the rows of the Nodes tab: the nodes that pass the /
// filter (words of their name, host or status), in the order of the sort
// column.
func buildNodes(v *view, fd *fleetData, p *params, now time.Time, screenInterval time.Duration, latest func(string) *remote.View) {
	o := fmtOpts{now: now, bits: p.bits, numeric: p.numeric}
	rows := make([]nodeRow, 0, len(fd.nodes))
	for _, n := range fd.nodes {
		if !nodeMatches(&n, p.terms) {
			continue
		}
		r := nodeRow{NodeInfo: n, age: -1}
		if !n.Time.IsZero() {
			r.age = max(0, n.Age(now))
			if n.Watched && p.node != "" {
				var ri time.Duration
				if lv := latest(n.Name); lv != nil && lv.Snapshot != nil {
					ri = lv.Snapshot.Interval
				}
				r.stale = r.age > staleAfter(ri, screenInterval)
			} else {
				// Its totals every NodesInterval (WatchSummary), or not
				// watched: every --mqtt-interval.
				r.stale = n.Stale(now)
			}
		}
		rows = append(rows, r)
	}
	sc := p.nodeSort
	var s sorter
	s.init(len(rows), sc, sc.col.numeric(), nil)
	for i := range rows {
		s.pushRow(uint32(i), sc.col, row{node: &rows[i], o: &o})
	}
	v.nodes = make([]nodeRow, 0, len(rows))
	for _, at := range s.positions() {
		v.nodes = append(v.nodes, rows[at])
	}
}

// nodeMatches reports whether every word of q is in the node's name,
// host or status ("=word": one of them whole).
func nodeMatches(n *remote.NodeInfo, q enrich.Query) bool {
	for _, t := range q {
		exact := len(t) > 1 && t[0] == '='
		if exact {
			t = t[1:]
		}
		found := false
		for _, s := range [...]string{n.Name, n.Host, n.Status.String()} {
			s = strings.ToLower(s)
			if exact && s == t || !exact && strings.Contains(s, t) {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// nodeColumns are the Nodes tab's. RATE_UP is what the nodes' flows sent
// in their original direction (whoever opened the flow: the LAN's uploads
// on a router), RATE_DOWN the replies.
var nodeColumns = []*column{
	{title: "NODE", prio: 100, max: 32,
		cell: func(r row) string { return r.node.Name },
		key:  func(r row) sortKey { return sortKey{str: strings.ToLower(r.node.Name)} }},
	{title: "STATUS", prio: 95,
		cell:  func(r row) string { return r.node.Status.String() },
		alert: func(r row) bool { return r.node.Status == remote.StatusOffline }},
	{title: "AGE", prio: 92, minWidth: width(3),
		cell: func(r row) string {
			if r.node.age < 0 {
				return "-"
			}
			return fmtAge(r.node.age)
		},
		num:   func(r row) float64 { return r.node.age.Seconds() },
		alert: func(r row) bool { return r.node.stale }},
	{title: "FLOWS", prio: 85,
		cell: func(r row) string { return fmtCount(uint64(max(0, r.node.Flows))) },
		num:  func(r row) float64 { return float64(r.node.Flows) }},
	nodeRate("RATE_UP", 75, func(n *nodeRow) float64 { return n.OrigBytesPerS }),
	nodeRate("RATE_DOWN", 78, func(n *nodeRow) float64 { return n.ReplyBytesPerS }),
	nodeRate("RATE", 90, func(n *nodeRow) float64 { return n.OrigBytesPerS + n.ReplyBytesPerS }),
	nodeCount("OVERRUNS", 50, func(n *nodeRow) uint64 { return n.Overruns }),
	nodeCount("DROPPED", 45, func(n *nodeRow) uint64 { return n.Dropped }),
	{title: "PARTS", prio: 55,
		cell: func(r row) string {
			if r.node.Complete || r.node.Parts == 0 {
				return ""
			}
			return itoa(r.node.PartsReceived) + "/" + itoa(r.node.Parts)
		},
		alert: func(r row) bool { return !r.node.Complete && r.node.Parts > 0 }},
	{title: "HOST", prio: 60, max: 24, cell: func(r row) string { return r.node.Host }},
	{title: "ERR", prio: 30, max: 60, cell: func(r row) string { return r.node.Err }},
}

// nodeRate is a rate column of the Nodes tab.
func nodeRate(title string, prio int, rate func(*nodeRow) float64) *column {
	return &column{title: title, prio: prio, minWidth: rateWidth,
		cell: func(r row) string { return fmtRate(rate(r.node), r.o.bits) },
		num:  func(r row) float64 { return rate(r.node) }}
}

// nodeCount is a counter column of the Nodes tab, in red when not 0.
func nodeCount(title string, prio int, count func(*nodeRow) uint64) *column {
	return &column{title: title, prio: prio,
		cell:  func(r row) string { return fmtCount(count(r.node)) },
		num:   func(r row) float64 { return float64(count(r.node)) },
		alert: func(r row) bool { return count(r.node) > 0 }}
}

// flowNode is the Flows tab's NODE column, shown with every node in one
// table (allNodes) only.
var flowNode = &column{title: "NODE", prio: 97, max: 24, allNodes: true,
	cell: func(r row) string {
		if r.o.nodeOf == nil {
			return ""
		}
		return r.o.nodeOf(r.f)
	},
	key: func(r row) sortKey {
		if r.o.nodeOf == nil {
			return sortKey{}
		}
		return sortKey{str: strings.ToLower(r.o.nodeOf(r.f))}
	}}

// fleetTableKeys are the table's keys with a Fleet: tableKeys with the
// lines that differ replaced and the fleet's own added.
var fleetTableKeys = fleetKeymap(tableKeys, fleetKeys)

// fleetKeys replace the tableKeys binding with the same keys, or come
// last.
var fleetKeys = keymap{
	{keys: "Enter", help: "Nodes tab: that node's flows (watched live);\nFlows tab: details of the flow (Esc closes);\nother tabs: the flows of the row", acts: []act{
		on((*App).enter, "", tcell.KeyEnter)}},
	{keys: "T U D I S", help: "TCP, UDP, DCCP, ICMP, SCTP shown or hidden here\n(the router's own filter stays as it is)", acts: []act{
		on(func(a *App) { a.toggleProtos(conntrack.ProtoTCP) }, "T"),
		on(func(a *App) { a.toggleProtos(conntrack.ProtoUDP, conntrack.ProtoUDPLite) }, "U"),
		on(func(a *App) { a.toggleProtos(conntrack.ProtoDCCP) }, "D"),
		on(func(a *App) { a.toggleProtos(conntrack.ProtoICMP, conntrack.ProtoICMPv6) }, "I"),
		on(func(a *App) { a.toggleProtos(conntrack.ProtoSCTP) }, "S")}},
	{keys: "x  Delete", help: "(deleting needs the router's kernel: not from here)", acts: []act{
		on(func(a *App) { a.askDelete(a.selectedFlow()) }, "x", tcell.KeyDelete)}},
	{keys: "A", help: "every node in one table, with a NODE column", acts: []act{
		on(func(a *App) { a.chooseNode(allNodes) }, "A")}},
}

// fleetKeymap is base with each binding of over that has the keys of one
// of base's in its place, and the others appended.
func fleetKeymap(base, over keymap) keymap {
	out := append(keymap(nil), base...)
	for _, b := range over {
		replaced := false
		for i := range out {
			if out[i].keys == b.keys {
				b.beside = out[i].beside
				out[i], replaced = b, true
			}
		}
		if !replaced {
			out = append(out, b)
		}
	}
	return out
}

// fleetHelpScreen is the help with a Fleet.
var fleetHelpScreen = helpText(append(fleetTableKeys[:len(fleetTableKeys):len(fleetTableKeys)], mouseHelp)...)

// chooseNode shows node's flows ("+": every node's) on the Flows tab, and
// watches it live. The / filter is cleared: it was the Nodes tab's.
func (a *App) chooseNode(node string) {
	if a.fleet == nil {
		return
	}
	if a.filter.GetText() != "" {
		a.filter.SetText("") // publishes through onQuery
	}
	a.offset, a.hoff = 0, 0
	a.sel[tabFlows].follow = false // a new list: its top first
	a.publish(func(p *params) {
		p.node, p.tab = node, tabFlows
		p.paused, p.frozen, p.frozenFleet = false, nil, nil // another node's
	})
	a.updateWatch()
}

// updateWatch asks the Fleet for live documents of the node chosen (all
// nodes for "+"), and while no node is chosen for every node's totals
// (WatchSummary: the Nodes tab then shows numbers seconds old, not up to
// an --mqtt-interval). UI goroutine only.
func (a *App) updateWatch() {
	if a.fleet == nil || a.watchSent && a.watching == a.p.node {
		return
	}
	a.watching, a.watchSent = a.p.node, true
	switch a.p.node {
	case "":
		a.fleet.WatchSummary()
	case allNodes:
		a.fleet.WatchAll()
	default:
		a.fleet.Watch(a.p.node)
	}
}

// followChanges wakes the refresher whenever the Fleet has news, until
// the screen stops or the Fleet closes its channel.
//
// A busy fleet changes all the time (200 nodes publishing every 10 s are
// 20 documents a second): a rebuild per change would redraw the whole
// screen several times a second for ages and counters the eye cannot
// follow. So changes wake the refresher at most every changeGap; a change
// in between is kept (the channel holds one) and shown after it. Keys
// never wait for this: they kick the refresher themselves.
func (a *App) followChanges(ch <-chan struct{}) {
	defer a.wg.Done()
	gap := time.NewTimer(0)
	defer gap.Stop()
	for {
		select {
		case <-a.ctx.Done():
			return
		case _, ok := <-ch:
			if !ok {
				return
			}
			a.fleetGen.Add(1)
			select {
			case a.kick <- struct{}{}:
			default:
			}
		}
		gap.Reset(changeGap(a.cfg.Interval))
		select {
		case <-a.ctx.Done():
			return
		case <-gap.C:
		}
	}
}

// changeGap is the shortest time between two rebuilds for fleet changes:
// half the screen's interval, from 100 to 500 ms (a node's news is never
// held back long, whatever -t).
func changeGap(interval time.Duration) time.Duration {
	return min(max(interval/2, 100*time.Millisecond), 500*time.Millisecond)
}

// nodeLabel names what the screen shows for messages.
func nodeLabel(node string) string {
	switch node {
	case "":
		return "the nodes"
	case allNodes:
		return "every node"
	}
	return node
}

// deleteRefusal is x's answer with a Fleet.
func (a *App) deleteRefusal() string {
	return "x: deleting needs the router's kernel; this screen reads " + nodeLabel(a.p.node) + " from the broker"
}

// hiddenProtos names the protocols of the T U D I S keys hidden on this
// screen, "" when none.
func hiddenProtos(ps *conntrack.ProtoSet) string {
	if ps == nil {
		return ""
	}
	var hidden []string
	for _, p := range []struct {
		name  string
		proto conntrack.Proto
	}{{"TCP", conntrack.ProtoTCP}, {"UDP", conntrack.ProtoUDP}, {"DCCP", conntrack.ProtoDCCP},
		{"ICMP", conntrack.ProtoICMP}, {"SCTP", conntrack.ProtoSCTP}} {
		if !ps.Has(p.proto) {
			hidden = append(hidden, p.name)
		}
	}
	return strings.Join(hidden, ",")
}

func itoa(n int) string { return fmtCount(uint64(max(0, n))) }

// toggleShownProtos is T U D I S with a Fleet: the router's filter is
// its own (other viewers, its exporters), so the screen hides the
// protocols itself, in its builds.
func (a *App) toggleShownProtos(ps ...conntrack.Proto) {
	on := !a.p.protos.Has(ps[0])
	a.publish(func(p *params) {
		set := *p.protos
		for _, pr := range ps {
			if on {
				set.Add(pr)
			} else {
				set.Remove(pr)
			}
		}
		p.protos = &set
	})
}

// nodeQuery lets the / filter match the node of a flow too, with every
// node in one table: a word found in the node's name needs no other
// field. The words left for each node are worked out once a build.
type nodeQuery struct {
	nodeOf func(*conntrack.Flow) string // nil: flows have no node
	left   map[string]enrich.Query
}

// rest is what of q the flow's other fields must match.
func (nq *nodeQuery) rest(f *conntrack.Flow, q enrich.Query) enrich.Query {
	if nq.nodeOf == nil {
		return q
	}
	node := nq.nodeOf(f)
	if r, ok := nq.left[node]; ok {
		return r
	}
	var r enrich.Query
	lower := strings.ToLower(node)
	for _, t := range q {
		if exact := len(t) > 1 && t[0] == '='; exact && lower == t[1:] || !exact && strings.Contains(lower, t) {
			continue
		}
		r = append(r, t)
	}
	if nq.left == nil {
		nq.left = map[string]enrich.Query{}
	}
	nq.left[node] = r
	return r
}
