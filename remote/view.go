package remote

import (
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
	"github.com/flowtop/flowtop/report"
)

// View is a node's latest document as a table snapshot: what the screen
// shows for one remote node. Nothing in it is modified after it is
// published; every reader shares it.
type View struct {
	// Node is the node's name in the topics.
	Node string
	// Snapshot holds the flows listed (the top Totals.Listed by the
	// router's sort when it applied a limit), Time the router's time,
	// Interval its refresh interval, TableFlows and Health its own.
	Snapshot *conntrack.Snapshot
	// Totals are the router's sums over every flow that passed its
	// filters, the unlisted ones too: show these, not sums of Flows.
	Totals report.Totals
	// Health is the router's, with its exporters' counters.
	Health report.Health
	// Host and Netns are the document's; Filter the families and
	// protocols the router shows ("IPv4,IPv6,TCP,UDP").
	Host, Netns, Filter string
	// Complete is false when parts of the document never came: Flows then
	// holds the parts that did (PartsReceived of Parts). The missing
	// flows did not end; they are only not known. Totals are whole
	// either way (every part carries them).
	Complete             bool
	Parts, PartsReceived int
	// Live tells a document of the watch stream (<node>/live) from a
	// periodic one (<node>/snapshot).
	Live bool
	// Received is when the document's last part arrived.
	Received time.Time
	// Skipped counts flows left out because they could not be read.
	Skipped int

	names     []enrich.Names // parallel to the flow records; nil when none
	records   []conntrack.Flow
	indexOnce sync.Once
	index     map[*conntrack.Flow]int32
}

// Names returns what the router sent about f (service, reverse DNS,
// GeoIP, process), the zero Names for a flow of another view or one it
// sent nothing for. View is an enrich.Namer; see PreferRouter to fill
// the gaps with local lookups.
func (v *View) Names(f *conntrack.Flow) enrich.Names {
	if v == nil || v.names == nil {
		return enrich.Names{}
	}
	// The index is made at the first call: views replaced before anyone
	// looked (a node not on screen) never pay for it.
	v.indexOnce.Do(func() {
		v.index = make(map[*conntrack.Flow]int32, len(v.names))
		for i := range v.names {
			if v.names[i] != (enrich.Names{}) {
				v.index[&v.records[i]] = int32(i)
			}
		}
	})
	if i, ok := v.index[f]; ok {
		return v.names[i]
	}
	return enrich.Names{}
}

// Age is how old the view's data is at now, by the router's clock.
func (v *View) Age(now time.Time) time.Duration { return now.Sub(v.Snapshot.Time) }

// newView makes the view of a finished document.
func newView(node string, h *header, flows []conntrack.Flow, names []enrich.Names, complete bool, received int, live bool, at time.Time, skipped int) *View {
	s := &conntrack.Snapshot{
		Time:       h.Time,
		Interval:   time.Duration(h.IntervalS * float64(time.Second)),
		Flows:      conntrack.Pointers(flows),
		TableFlows: h.Totals.TableFlows,
		Filter:     parseFilter(h.Filter),
		Health:     health(&h.Health),
	}
	parts := h.Parts
	if parts == 0 {
		parts, received = 1, 1
	}
	return &View{
		Node: node, Snapshot: s, Totals: h.Totals, Health: h.Health,
		Host: h.Host, Netns: h.Netns, Filter: h.Filter,
		Complete: complete, Parts: parts, PartsReceived: received,
		Live: live, Received: at, Skipped: skipped,
		names: names, records: flows,
	}
}

// health is the table health of a document's.
func health(h *report.Health) conntrack.Health {
	return conntrack.Health{
		Events: h.Events, Overruns: h.Overruns, Resyncs: h.Resyncs,
		Refresh:      time.Duration(h.RefreshMS * float64(time.Millisecond)),
		RefreshEvery: time.Duration(h.RefreshIntervalS * float64(time.Second)),
		Refreshes:    h.Refreshes,
		HotFlows:     h.HotFlows, HotRefresh: time.Duration(h.HotRefreshMS * float64(time.Millisecond)),
		KernelFlows: h.KernelFlows, Accounting: h.Accounting, Timestamps: h.Timestamps,
		LastError: h.LastError,
	}
}

// parseFilter reads a document's filter ("IPv4,IPv6,TCP,UDP", what
// conntrack.Filter.String prints) back into the families and protocols;
// an empty one is everything.
func parseFilter(s string) conntrack.Filter {
	var f conntrack.Filter
	if s == "" {
		f.IPv4, f.IPv6 = true, true
		f.AllProtos()
		return f
	}
	for w := range strings.SplitSeq(s, ",") {
		switch w = strings.TrimSpace(w); w {
		case "IPv4":
			f.IPv4 = true
		case "IPv6":
			f.IPv6 = true
		default:
			if n, ok := protoNumbers[strings.ToLower(w)]; ok {
				f.Protos.Add(conntrack.Proto(n))
			}
		}
	}
	return f
}

// FleetView is every node's view at once: the flows of all, each known
// by its node. Like View it is immutable and shared.
type FleetView struct {
	// Snapshot holds the flows of every node; Time is the newest
	// document's, Interval the shortest, TableFlows and the Health
	// counters are sums.
	Snapshot *conntrack.Snapshot
	// Nodes are the views merged, by node name.
	Nodes []*View
	// Totals sums the nodes' totals.
	Totals report.Totals
	// Complete is false when a node's view is.
	Complete bool

	indexOnce sync.Once
	index     map[*conntrack.Flow]*View
}

// newFleet merges views (sorted by node).
func newFleet(views []*View) *FleetView {
	fv := &FleetView{Nodes: views, Complete: true,
		Totals: report.Totals{ByProto: map[string]int{}}}
	s := &conntrack.Snapshot{}
	n := 0
	for _, v := range views {
		n += len(v.Snapshot.Flows)
	}
	s.Flows = make([]*conntrack.Flow, 0, n)
	for i, v := range views {
		vs := v.Snapshot
		s.Flows = append(s.Flows, vs.Flows...)
		if vs.Time.After(s.Time) {
			s.Time = vs.Time
		}
		if i == 0 || vs.Interval < s.Interval {
			s.Interval = vs.Interval
		}
		s.TableFlows += vs.TableFlows
		addHealth(&s.Health, &vs.Health, i == 0)
		if i == 0 {
			s.Filter = vs.Filter
		} else {
			s.Filter = unionFilter(s.Filter, vs.Filter)
		}
		addTotals(&fv.Totals, &v.Totals)
		fv.Complete = fv.Complete && v.Complete
	}
	fv.Snapshot = s
	return fv
}

func addHealth(sum, h *conntrack.Health, first bool) {
	sum.Events += h.Events
	sum.Overruns += h.Overruns
	sum.Resyncs += h.Resyncs
	sum.Refreshes += h.Refreshes
	sum.Refresh = max(sum.Refresh, h.Refresh)
	sum.RefreshEvery = max(sum.RefreshEvery, h.RefreshEvery)
	sum.HotFlows += h.HotFlows
	sum.HotRefresh = max(sum.HotRefresh, h.HotRefresh)
	if h.KernelFlows < 0 || (!first && sum.KernelFlows < 0) {
		sum.KernelFlows = -1
	} else {
		sum.KernelFlows += h.KernelFlows
	}
	if first {
		sum.Accounting, sum.Timestamps = h.Accounting, h.Timestamps
	} else {
		sum.Accounting = sum.Accounting && h.Accounting
		sum.Timestamps = sum.Timestamps && h.Timestamps
	}
	if h.LastError != "" {
		sum.LastError = h.LastError
	}
}

func addTotals(sum, t *report.Totals) {
	sum.Flows += t.Flows
	sum.OrigBytesPerS += t.OrigBytesPerS
	sum.ReplyBytesPerS += t.ReplyBytesPerS
	sum.OrigBytes += t.OrigBytes
	sum.ReplyBytes += t.ReplyBytes
	sum.TableFlows += t.TableFlows
	sum.Listed += t.Listed
	for p, n := range t.ByProto {
		sum.ByProto[p] += n
	}
}

func unionFilter(a, b conntrack.Filter) conntrack.Filter {
	a.IPv4 = a.IPv4 || b.IPv4
	a.IPv6 = a.IPv6 || b.IPv6
	for i := range a.Protos {
		a.Protos[i] |= b.Protos[i]
	}
	return a
}

// NodeOf returns the name of the node f came from, "" for a flow of
// another fleet view.
func (fv *FleetView) NodeOf(f *conntrack.Flow) string {
	if v := fv.view(f); v != nil {
		return v.Node
	}
	return ""
}

// Names returns what f's node sent about it; FleetView is an
// enrich.Namer.
func (fv *FleetView) Names(f *conntrack.Flow) enrich.Names {
	return fv.view(f).Names(f)
}

func (fv *FleetView) view(f *conntrack.Flow) *View {
	if fv == nil {
		return nil
	}
	fv.indexOnce.Do(func() {
		fv.index = make(map[*conntrack.Flow]*View, len(fv.Snapshot.Flows))
		for _, v := range fv.Nodes {
			for _, fl := range v.Snapshot.Flows {
				fv.index[fl] = v
			}
		}
	})
	return fv.index[f]
}

// PreferRouter is a Namer that gives what the router sent about a flow
// and asks local for what it did not: the screen keeps its own services,
// reverse DNS and GeoIP for a router that has none. The process is never
// asked of local: a laptop's sockets say nothing of a router's flow.
func PreferRouter(router, local enrich.Namer) enrich.Namer {
	return preferRouter{router, local}
}

type preferRouter struct{ router, local enrich.Namer }

func (p preferRouter) Names(f *conntrack.Flow) enrich.Names {
	n := p.router.Names(f)
	if p.local == nil || n.Service != "" && n.SrcName != "" && n.DstName != "" && n.SrcGeo.Known() && n.DstGeo.Known() {
		return n
	}
	l := p.local.Names(f)
	if n.Service == "" {
		n.Service = l.Service
	}
	if n.SrcService == "" {
		n.SrcService = l.SrcService
	}
	if n.SrcName == "" {
		n.SrcName = l.SrcName
	}
	if n.DstName == "" {
		n.DstName = l.DstName
	}
	if !n.SrcGeo.Known() {
		n.SrcGeo = l.SrcGeo
	}
	if !n.DstGeo.Known() {
		n.DstGeo = l.DstGeo
	}
	return n
}

// sortedViews returns the views of m by node name.
func sortedViews(m map[string]*View) []*View {
	out := make([]*View, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b *View) int { return strings.Compare(a.Node, b.Node) })
	return out
}
