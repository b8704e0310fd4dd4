package ui

import (
	"cmp"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
	"github.com/flowtop/flowtop/geo"
)

// tabID names a tab of the screen.
type tabID int

const (
	tabFlows tabID = iota
	tabProcesses
	tabHosts
	tabRemote
	numTabs // of flows; tabs holds them
	// tabNodes lists a Fleet's nodes (fleetTabs), with nodesTab's columns.
	tabNodes = numTabs
)

// tab is one tab of the screen: its name in the tab bar and its columns,
// in display order.
type tab struct {
	name    string
	columns []*column
}

// column is one column of a tab, all of it in one place: its title, how
// it is laid out, its cell and its sort key. Each tab's columns are one
// slice literal (tabs): adding a column is adding an entry there.
type column struct {
	title string
	// prio decides which columns a narrow terminal drops first (the
	// lowest); max caps names so one long name cannot push every other
	// column off the screen (longer text ends in an ellipsis).
	prio, max int
	// minWidth, when set, is the narrowest the column may be, so that
	// numbers do not make it jitter as they change: rates and byte counts
	// get room for their widest value.
	minWidth func(bits bool) int
	// withS: shown only with -s / the s key (the flows' SOURCE).
	withS bool
	// allNodes: shown only with every node of a Fleet in one table.
	allNodes bool
	// alert, when set, tells the cells to show in red (an offline node).
	alert func(r row) bool
	// cell is the text of the column in a row (not yet escaped).
	cell func(r row) string
	// num is the sort key of a column of numbers: right-aligned, sorted
	// descending first, and by the sorter's fast path. A column without
	// num sorts by key, ascending first, or when key is nil too by the
	// text of its cells.
	num func(r row) float64
	key func(r row) sortKey
	// sortNames tells when sorting by the column needs every row's names.
	sortNames namesNeed
}

// namesNeed tells when sorting by a column needs the names of every row.
type namesNeed uint8

const (
	namesNever namesNeed = iota
	namesAlways
	namesUnlessNumeric // a name when names are shown, else an address
)

// row is what a cell or a sort key reads: the flow of a row of the Flows
// tab or the group of a row of the others, and the names of the flow (of
// the group's representative flow), &noNames when not looked up. Cells
// and keys take it by value: a pointer passed to a function value escapes,
// which would cost an allocation per row.
type row struct {
	f    *conntrack.Flow
	g    *group
	node *nodeRow // Nodes tab
	n    *enrich.Names
	o    *fmtOpts
}

// tabs are the tabs and their columns. SOURCE shows only with -s / the s
// key; every tab starts sorted by its RATE (defaultSort).
var tabs = [numTabs]tab{
	tabFlows: {"Flows", []*column{
		flowNode,
		{title: "PROCESS", prio: 60, max: 16, sortNames: namesAlways,
			cell: func(r row) string { return r.n.Process.Name }},
		{title: "PID", prio: 20, sortNames: namesAlways,
			cell: func(r row) string { return pidText(r.n.Process.PID) },
			num:  func(r row) float64 { return float64(r.n.Process.PID) }},
		{title: "PROTO", prio: 70, cell: func(r row) string { return r.f.Proto.String() }},
		{title: "STATE", prio: 30, cell: func(r row) string { return r.f.StateName() }},
		{title: "AGE", prio: 40, minWidth: width(3),
			cell: func(r row) string { return flowAge(r.f, r.o.now) },
			num:  func(r row) float64 { return ageKey(r.f, r.o.now) }},
		{title: "SOURCE", prio: 95, max: 40, withS: true, sortNames: namesUnlessNumeric,
			cell: func(r row) string { return addrOrName(r.f.Orig.Src.IP(), r.n.SrcName, r.o.numeric) },
			key:  func(r row) sortKey { return addrKey(r.f.Orig.Src.IP(), r.n.SrcName, r.o.numeric) }},
		{title: "DESTINATION", prio: 100, max: 40, sortNames: namesUnlessNumeric,
			cell: func(r row) string { return addrOrName(r.f.Orig.Dst.IP(), r.n.DstName, r.o.numeric) },
			key:  func(r row) sortKey { return addrKey(r.f.Orig.Dst.IP(), r.n.DstName, r.o.numeric) }},
		{title: "PORT", prio: 80, max: 16, sortNames: namesAlways,
			cell: func(r row) string { return portText(r.f, r.n) },
			key:  func(r row) sortKey { return portKey(r.f, r.n) }},
		{title: "GEO", prio: 25, sortNames: namesAlways, cell: func(r row) string { return r.n.DstGeo.Country }},
		flowBytes("BYTES_SRC", 35, func(f *conntrack.Flow) uint64 { return f.OrigCount.Bytes }),
		flowRate("RATE_SRC", 50, func(f *conntrack.Flow) float64 { return float64(f.OrigRate.Bytes) }),
		flowBytes("BYTES_DST", 45, func(f *conntrack.Flow) uint64 { return f.ReplyCount.Bytes }),
		flowRate("RATE_DST", 55, func(f *conntrack.Flow) float64 { return float64(f.ReplyRate.Bytes) }),
		flowRate("RATE", 90, (*conntrack.Flow).TotalRate),
	}},
	tabProcesses: {"Processes", []*column{
		{title: "PROCESS", prio: 60, max: 16,
			cell: func(r row) string {
				if !r.g.proc.Known() {
					return "-"
				}
				return r.g.proc.Name
			},
			key: func(r row) sortKey { return sortKey{str: r.g.proc.Name} }},
		{title: "PID", prio: 20,
			cell: func(r row) string { return pidText(r.g.proc.PID) },
			num:  func(r row) float64 { return float64(r.g.proc.PID) }},
		{title: "USER", prio: 30, max: 16, cell: func(r row) string { return r.g.proc.User }},
		groupFlows,
		groupBytes("BYTES_SRC", 35, groupUp),
		groupRate("RATE_SRC", 50, groupUpRate),
		groupBytes("BYTES_DST", 45, groupDown),
		groupRate("RATE_DST", 55, groupDownRate),
		groupTotalRate,
	}},
	tabHosts: {"Hosts", []*column{
		hostAddress,
		hostName,
		groupFlows,
		groupBytes("BYTES_UP", 45, groupUp),
		groupRate("RATE_UP", 75, groupUpRate),
		groupBytes("BYTES_DOWN", 40, groupDown),
		groupRate("RATE_DOWN", 78, groupDownRate),
		groupTotalRate,
	}},
	tabRemote: {"Remote", []*column{
		hostAddress,
		hostName,
		hostGeo("GEO", 25, 0, func(gi *geo.Info) string { return gi.Country }),
		hostGeo("COUNTRY", 28, 24, func(gi *geo.Info) string { return gi.CountryName }),
		hostGeo("AS", 22, 30, asText),
		groupFlows,
		groupBytes("BYTES_UP", 45, groupUp),
		groupRate("RATE_UP", 75, groupUpRate),
		groupBytes("BYTES_DOWN", 40, groupDown),
		groupRate("RATE_DOWN", 78, groupDownRate),
		groupTotalRate,
	}},
}

// nodesTab is the Nodes tab, shown with a Fleet only.
var nodesTab = tab{"Nodes", nodeColumns}

// tabOf is tab t.
func tabOf(t tabID) *tab {
	if t == tabNodes {
		return &nodesTab
	}
	return &tabs[t]
}

// The columns of several group tabs.
var (
	groupFlows = &column{title: "FLOWS", prio: 85,
		cell: func(r row) string { return fmtCount(uint64(r.g.flows)) },
		num:  func(r row) float64 { return float64(r.g.flows) }}
	groupTotalRate = groupRate("RATE", 90, (*group).rate)
	// hostAddress and hostName are the address of a group of the Hosts
	// or Remote tab and its name, which sorts as a name even with -n.
	hostAddress = &column{title: "ADDRESS", prio: 100, max: 40,
		cell: func(r row) string { return addrString(r.g.addr()) },
		key:  func(r row) sortKey { return addrKey(r.g.addr(), "", true) }}
	hostName = &column{title: "NAME", prio: 65, max: 40, sortNames: namesAlways,
		cell: func(r row) string { return sideName(r.n, r.g.side) },
		key:  func(r row) sortKey { return addrKey(r.g.addr(), sideName(r.n, r.g.side), false) }}
)

// flowBytes is a column of a byte count of flows, "-" for a flow without
// counters.
func flowBytes(title string, prio int, bytes func(*conntrack.Flow) uint64) *column {
	return &column{title: title, prio: prio, minWidth: width(len("999.9MB")),
		cell: func(r row) string { return counted(r.f.HasCounters, fmtBytes(bytes(r.f))) },
		num:  func(r row) float64 { return float64(bytes(r.f)) }}
}

// flowRate is a column of a rate of flows, "-" for a flow without
// counters.
func flowRate(title string, prio int, rate func(*conntrack.Flow) float64) *column {
	return &column{title: title, prio: prio, minWidth: rateWidth,
		cell: func(r row) string { return counted(r.f.HasCounters, fmtRate(rate(r.f), r.o.bits)) },
		num:  func(r row) float64 { return rate(r.f) }}
}

// groupBytes is a column of a byte count of groups, "-" for a group none
// of whose flows has counters.
func groupBytes(title string, prio int, bytes func(*group) uint64) *column {
	return &column{title: title, prio: prio, minWidth: width(len("999.9MB")),
		cell: func(r row) string { return counted(r.g.counted, fmtBytes(bytes(r.g))) },
		num:  func(r row) float64 { return float64(bytes(r.g)) }}
}

// groupRate is a column of a rate of groups.
func groupRate(title string, prio int, rate func(*group) float64) *column {
	return &column{title: title, prio: prio, minWidth: rateWidth,
		cell: func(r row) string { return fmtRate(rate(r.g), r.o.bits) },
		num:  func(r row) float64 { return rate(r.g) }}
}

// hostGeo is a column of the GeoIP record of the groups of the Remote
// tab, which sorts case-insensitively.
func hostGeo(title string, prio, max int, text func(*geo.Info) string) *column {
	cell := func(r row) string {
		if gi := sideGeo(r.n, r.g.side); gi != nil {
			return text(gi)
		}
		return ""
	}
	return &column{title: title, prio: prio, max: max, sortNames: namesAlways, cell: cell,
		key: func(r row) sortKey { return sortKey{str: strings.ToLower(cell(r))} }}
}

func groupUp(g *group) uint64        { return g.up }
func groupDown(g *group) uint64      { return g.down }
func groupUpRate(g *group) float64   { return g.upRate }
func groupDownRate(g *group) float64 { return g.downRate }

// width is a minWidth of n columns, whatever the units.
func width(n int) func(bool) int { return func(bool) int { return n } }

// numeric reports whether the column holds numbers (see column.num).
func (c *column) numeric() bool { return c.num != nil }

// narrowest is the column's minimum width (see column.minWidth).
func (c *column) narrowest(bits bool) int {
	if c.minWidth == nil {
		return 0
	}
	return c.minWidth(bits)
}

// sortKey is what row r sorts by in the column.
func (c *column) sortKey(r row) sortKey {
	switch {
	case c.num != nil:
		return sortKey{num: c.num(r)}
	case c.key != nil:
		return c.key(r)
	}
	return sortKey{str: c.cell(r)}
}

// needsNames reports whether sorting by the column needs each row's names.
func (c *column) needsNames(numeric bool) bool {
	return c.sortNames == namesAlways || c.sortNames == namesUnlessNumeric && !numeric
}

// column returns the tab's column titled title; it panics when there is
// none, which only a wrong title in the code can cause.
func (t *tab) column(title string) *column {
	for _, c := range t.columns {
		if c.title == title {
			return c
		}
	}
	panic("ui: tab " + t.name + " has no column " + title)
}

// defaultSort is each tab's starting order: total rate, descending.
func defaultSort() [numTabs]sortSpec {
	var s [numTabs]sortSpec
	for i := range s {
		s[i] = sortSpec{col: tabs[i].column("RATE"), desc: true}
	}
	return s
}

// defaultNodeSort is the Nodes tab's starting order: by name, a list that
// stays still as the nodes report.
func defaultNodeSort() sortSpec { return sortSpec{col: nodesTab.column("NODE")} }

// sortSpec is a tab's sort column and direction.
type sortSpec struct {
	col  *column
	desc bool
}

// fmtOpts are the display toggles that change cell text.
type fmtOpts struct {
	now     time.Time // the snapshot's time, for ages
	bits    bool
	numeric bool
	// nodeOf names a flow's node with every node in one table, else nil.
	nodeOf func(*conntrack.Flow) string
}

// addrOrName prints name when names are on and one is known, else the
// address.
func addrOrName(a netip.Addr, name string, numeric bool) string {
	if !numeric && name != "" {
		return name
	}
	return addrString(a)
}

// portText is the PORT column: the service name when known, else the
// number; ICMP shows type/code.
func portText(f *conntrack.Flow, n *enrich.Names) string {
	switch {
	case f.Proto.HasPorts():
		if n.Service != "" {
			return n.Service
		}
		return strconv.Itoa(int(f.Orig.DstPort))
	case f.Proto == conntrack.ProtoICMP || f.Proto == conntrack.ProtoICMPv6:
		return strconv.Itoa(int(f.ICMP.Type)) + "/" + strconv.Itoa(int(f.ICMP.Code))
	}
	return ""
}

// portKey sorts by port number, then service; flows without ports first.
func portKey(f *conntrack.Flow, n *enrich.Names) sortKey {
	if f.Proto.HasPorts() {
		return sortKey{num: float64(f.Orig.DstPort), str: n.Service}
	}
	return sortKey{num: -1}
}

// ageKey is the age of f in seconds, -1 when the kernel gave no start.
func ageKey(f *conntrack.Flow, now time.Time) float64 {
	age, ok := f.Age(now)
	if !ok {
		return -1
	}
	return age.Seconds()
}

func pidText(pid int) string {
	if pid == 0 {
		return ""
	}
	return strconv.Itoa(pid)
}

// counted prints a counter, "-" when the flow has none (accounting was off
// when it began: unknown, not zero).
func counted(ok bool, s string) string {
	if !ok {
		return "-"
	}
	return s
}

// sideName picks the name of one end of a flow.
func sideName(n *enrich.Names, s side) string {
	switch s {
	case sideSrc:
		return n.SrcName
	case sideDst:
		return n.DstName
	}
	return ""
}

// sideGeo picks the GeoIP record of one end of a flow; nil for the reply
// source (a DNAT target), which has none.
func sideGeo(n *enrich.Names, s side) *geo.Info {
	switch s {
	case sideSrc:
		return &n.SrcGeo
	case sideDst:
		return &n.DstGeo
	}
	return nil
}

// asText prints an AS: "AS3320 Deutsche Telekom AG", "" for none.
func asText(gi *geo.Info) string {
	if gi.ASN == 0 {
		return ""
	}
	if gi.ASOrg == "" {
		return "AS" + strconv.FormatUint(uint64(gi.ASN), 10)
	}
	return "AS" + strconv.FormatUint(uint64(gi.ASN), 10) + " " + gi.ASOrg
}

// sortKey is what a row sorts by in one column: a number, or a string, or
// an address (compared as addresses, not as text).
type sortKey struct {
	num  float64
	str  string
	addr netip.Addr
}

func compareKeys(a, b *sortKey) int {
	if c := cmp.Compare(a.num, b.num); c != 0 {
		return c
	}
	if c := strings.Compare(a.str, b.str); c != 0 {
		return c
	}
	return a.addr.Compare(b.addr)
}

// addrKey sorts by name when one is shown, else by address.
func addrKey(a netip.Addr, name string, numeric bool) sortKey {
	if !numeric && name != "" {
		return sortKey{str: strings.ToLower(name)}
	}
	// Addresses sort after names and among themselves numerically.
	return sortKey{str: addrMarker, addr: a.Unmap()}
}

// addrMarker is the string key of rows that sort by address: larger than
// any name.
const addrMarker = "\xff"
