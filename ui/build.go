package ui

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
	"github.com/flowtop/flowtop/procs"
)

// params is what the row builder needs from the screen's state. A value is
// immutable once published: the UI goroutine makes a new one on every
// change and the builder reads whichever is newest.
type params struct {
	gen     uint64 // bumped on every change; a view built from an older one is stale
	tab     tabID
	sort    [numTabs]sortSpec
	terms   []string // the / filter, lower-cased words that must all match
	active  bool     // a: only flows with a non-zero rate
	numeric bool
	bits    bool
	paused  bool
	frozen  *conntrack.Snapshot // the snapshot shown while paused
}

// group is one row of the Processes, Hosts or Remote tab: the sum of the
// flows that share a process or an address.
type group struct {
	proc procs.Info // Processes tab
	addr netip.Addr // Hosts and Remote tabs
	// rep is one flow of the group and side the end of it that addr is,
	// for the names and GeoIP of the group, read when drawn.
	rep     *conntrack.Flow
	side    side
	flows   int
	counted bool // at least one flow has counters
	// up and down are, on the Processes tab, what the original source and
	// destination sent; on Hosts and Remote, what the local end sent and
	// received.
	up, down         uint64
	upRate, downRate float64
}

func (g *group) rate() float64 { return g.upRate + g.downRate }

// view is one built row set: the rows of the current tab in display order
// and the totals of the header. Views are immutable once built.
type view struct {
	p      *params
	snap   *conntrack.Snapshot // nil before the first snapshot
	flows  []*conntrack.Flow   // Flows tab
	groups []*group            // other tabs
	// shown counts the flows that pass the screen's filters; total the
	// flows of the snapshot.
	shown, total     int
	srcRate, dstRate float64 // sums over shown flows, each direction
	eventsPerS       float64
	status           string
	warnings         []string
	buildTime        time.Duration
}

func (v *view) rowCount() int {
	if v.p.tab == tabFlows {
		return len(v.flows)
	}
	return len(v.groups)
}

// snapTime is the time ages are measured at: the snapshot's.
func snapTime(s *conntrack.Snapshot, now func() time.Time) time.Time {
	if s != nil && !s.Time.IsZero() {
		return s.Time
	}
	return now()
}

// buildRows filters, aggregates and sorts the flows of snap for p. It runs
// off the UI goroutine and does not modify snap.
func buildRows(v *view, snap *conntrack.Snapshot, p *params, names enrich.Namer, now time.Time) {
	v.snap = snap
	if snap == nil {
		return
	}
	v.total = len(snap.Flows)
	o := fmtOpts{now: now, bits: p.bits, numeric: p.numeric}
	sc := p.sort[p.tab]
	wantNames := len(p.terms) > 0 || p.tab != tabFlows || needsNames(sc.col, p.numeric)

	type keyed struct {
		f *conntrack.Flow
		k sortKey
	}
	var rows []keyed
	var groups map[any]*group
	if p.tab == tabFlows {
		rows = make([]keyed, 0, len(snap.Flows))
	} else {
		groups = make(map[any]*group)
	}
	var m matcher
	for i := range snap.Flows {
		f := &snap.Flows[i]
		if p.active && f.TotalRate() == 0 {
			continue
		}
		var n enrich.Names
		if wantNames {
			n = names.Names(f)
		}
		if len(p.terms) > 0 && !m.match(f, &n, p.terms) {
			continue
		}
		v.shown++
		v.srcRate += f.OrigRate.Bytes
		v.dstRate += f.ReplyRate.Bytes
		switch p.tab {
		case tabFlows:
			rows = append(rows, keyed{f, flowKey(sc.col, f, &n, &o)})
		case tabProcesses:
			addToGroup(groups, n.Process.PID, f, func(g *group) {
				g.proc = n.Process
			}, f.OrigCount, f.ReplyCount, f.OrigRate.Bytes, f.ReplyRate.Bytes)
		case tabHosts, tabRemote:
			local, ls := localEnd(f)
			up, down, upR, downR := upDown(f, ls)
			addr, s := local, ls
			if p.tab == tabRemote {
				addr, s = remoteEnd(f, ls)
			}
			addToGroup(groups, addr, f, func(g *group) {
				g.addr, g.side = addr, s
			}, up, down, upR, downR)
		}
	}

	if p.tab == tabFlows {
		slices.SortFunc(rows, func(a, b keyed) int {
			c := compareKeys(&a.k, &b.k)
			if sc.desc {
				c = -c
			}
			if c != 0 {
				return c
			}
			return cmp.Compare(a.f.ID, b.f.ID)
		})
		v.flows = make([]*conntrack.Flow, len(rows))
		for i := range rows {
			v.flows[i] = rows[i].f
		}
		return
	}

	type gkeyed struct {
		g *group
		k sortKey
	}
	grows := make([]gkeyed, 0, len(groups))
	for _, g := range groups {
		grows = append(grows, gkeyed{g, groupKey(sc.col, g, names, &o)})
	}
	slices.SortFunc(grows, func(a, b gkeyed) int {
		c := compareKeys(&a.k, &b.k)
		if sc.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
		if c := cmp.Compare(a.g.proc.PID, b.g.proc.PID); c != 0 {
			return c
		}
		return a.g.addr.Compare(b.g.addr)
	})
	v.groups = make([]*group, len(grows))
	for i := range grows {
		v.groups[i] = grows[i].g
	}
}

func addToGroup(groups map[any]*group, key any, f *conntrack.Flow, init func(*group),
	up, down conntrack.Counter, upRate, downRate float64) {
	g := groups[key]
	if g == nil {
		g = &group{rep: f}
		init(g)
		groups[key] = g
	} else if f.ID < g.rep.ID {
		g.rep = f // the lowest ID, so names come from the same flow every tick
		init(g)
	}
	g.flows++
	if f.HasCounters {
		g.counted = true
		g.up += up.Bytes
		g.down += down.Bytes
	}
	g.upRate += upRate
	g.downRate += downRate
}

// groupNames returns the names of a group's representative flow.
func groupNames(g *group, names enrich.Namer) enrich.Names {
	if g.rep == nil {
		return enrich.Names{}
	}
	return names.Names(g.rep)
}

// sideName and sideGeo pick the name and GeoIP of one end of a flow.
func sideName(n *enrich.Names, s side) string {
	switch s {
	case sideSrc:
		return n.SrcName
	case sideDst:
		return n.DstName
	}
	return ""
}

func groupCell(c colID, g *group, n *enrich.Names, o *fmtOpts) string {
	switch c {
	case cProcess:
		if !g.proc.Known() {
			return "-"
		}
		return g.proc.Name
	case cPID:
		return pidText(g.proc.PID)
	case cUser:
		return g.proc.User
	case cFlows:
		return fmtCount(uint64(g.flows))
	case cHost:
		return addrString(g.addr)
	case cName:
		return sideName(n, g.side)
	case cGeo, cCountry, cAS:
		gi := n.DstGeo
		if g.side == sideSrc {
			gi = n.SrcGeo
		} else if g.side == sideReply {
			return ""
		}
		switch c {
		case cGeo:
			return gi.Country
		case cCountry:
			return gi.CountryName
		}
		if gi.ASN == 0 {
			return ""
		}
		if gi.ASOrg == "" {
			return "AS" + strconv.FormatUint(uint64(gi.ASN), 10)
		}
		return "AS" + strconv.FormatUint(uint64(gi.ASN), 10) + " " + gi.ASOrg
	case cBytesSrc, cBytesUp:
		return counted(g.counted, fmtBytes(g.up))
	case cBytesDst, cBytesDown:
		return counted(g.counted, fmtBytes(g.down))
	case cRateSrc, cRateUp:
		return fmtRate(g.upRate, o.bits)
	case cRateDst, cRateDown:
		return fmtRate(g.downRate, o.bits)
	case cRate:
		return fmtRate(g.rate(), o.bits)
	}
	return ""
}

func groupKey(c colID, g *group, names enrich.Namer, o *fmtOpts) sortKey {
	switch c {
	case cProcess:
		return sortKey{str: g.proc.Name}
	case cPID:
		return sortKey{num: float64(g.proc.PID)}
	case cUser:
		return sortKey{str: g.proc.User}
	case cFlows:
		return sortKey{num: float64(g.flows)}
	case cHost:
		return sortKey{addr: g.addr}
	case cName, cGeo, cCountry, cAS:
		n := groupNames(g, names)
		if c == cName {
			return addrKey(g.addr, sideName(&n, g.side), false)
		}
		return sortKey{str: strings.ToLower(groupCell(c, g, &n, o))}
	case cBytesSrc, cBytesUp:
		return sortKey{num: float64(g.up)}
	case cBytesDst, cBytesDown:
		return sortKey{num: float64(g.down)}
	case cRateSrc, cRateUp:
		return sortKey{num: g.upRate}
	case cRateDst, cRateDown:
		return sortKey{num: g.downRate}
	}
	return sortKey{num: g.rate()}
}

// matcher tests flows against the / filter. Its buffer is reused so
// matching allocates nothing.
type matcher struct{ buf []byte }

// match reports whether every term occurs (case-insensitively) in one of
// the flow's fields: addresses of both tuples, ports, protocol, state,
// service, names, process, user, country and AS.
func (m *matcher) match(f *conntrack.Flow, n *enrich.Names, terms []string) bool {
	for _, t := range terms {
		if !m.matchTerm(f, n, t) {
			return false
		}
	}
	return true
}

func (m *matcher) matchTerm(f *conntrack.Flow, n *enrich.Names, t string) bool {
	exact := len(t) > 1 && t[0] == '='
	if exact {
		t = t[1:]
	}
	test := func(s []byte) bool {
		if exact {
			return len(s) == len(t) && containsFold(s, t)
		}
		return containsFold(s, t)
	}
	for _, s := range [...]string{
		f.Proto.String(), f.StateName(), n.Service, n.SrcService, n.SrcName, n.DstName,
		n.Process.Name, n.Process.User, n.SrcGeo.Country, n.SrcGeo.CountryName,
		n.DstGeo.Country, n.DstGeo.CountryName, n.SrcGeo.City, n.DstGeo.City,
		n.SrcGeo.ASOrg, n.DstGeo.ASOrg,
	} {
		if exact && len(s) == len(t) && containsFold(s, t) || !exact && containsFold(s, t) {
			return true
		}
	}
	for _, a := range [...]netip.Addr{f.Orig.Src, f.Orig.Dst, f.Reply.Src, f.Reply.Dst} {
		if a.IsValid() {
			m.buf = a.Unmap().AppendTo(m.buf[:0])
			if test(m.buf) {
				return true
			}
		}
	}
	// Numbers match whole: "22" finds port 22, not 2222.
	if f.Proto.HasPorts() {
		for _, p := range [...]uint16{f.Orig.SrcPort, f.Orig.DstPort, f.Reply.SrcPort, f.Reply.DstPort} {
			m.buf = strconv.AppendUint(m.buf[:0], uint64(p), 10)
			if string(m.buf) == t {
				return true
			}
		}
	}
	if pid := n.Process.PID; pid != 0 {
		m.buf = strconv.AppendUint(m.buf[:0], uint64(pid), 10)
		if string(m.buf) == t {
			return true
		}
	}
	return false
}

// containsFold reports whether s contains t, ignoring ASCII case; t is
// lower case.
func containsFold[S ~string | ~[]byte](s S, t string) bool {
	if len(t) == 0 {
		return true
	}
	for i := 0; i+len(t) <= len(s); i++ {
		j := 0
		for ; j < len(t); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != t[j] {
				break
			}
		}
		if j == len(t) {
			return true
		}
	}
	return false
}

// parseQuery splits a / filter into lower-cased words.
func parseQuery(q string) []string {
	return strings.Fields(strings.ToLower(q))
}
