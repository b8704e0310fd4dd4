package report

import (
	"slices"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
)

// Stream makes the document of flows fed one at a time, such as those of
// a kernel dump, without keeping them: it sums every flow that passes the
// filter and keeps copies of the first Limit in the document's order.
// `flowtop --once -t 0 --limit N` reads a dump this way instead of
// building the table, which a 100k-flow dump spent a fifth of its time on.
// The document is the one Build makes of a snapshot of the same flows.
type Stream struct {
	opt    Options
	filter conntrack.Filter
	now    time.Time
	metric func(*conntrack.Flow) float64
	top    conntrack.TopK
	spare  []conntrack.Flow // storage for the kept copies
	totals totalsAcc
	seen   int // flows fed, filtered or not
}

// NewStream starts a document of the flows that pass filter as of now.
// opt.Limit must be positive: without a limit every flow is listed, and
// Build of a snapshot is the way.
func NewStream(opt Options, filter conntrack.Filter, now time.Time) *Stream {
	if opt.Limit <= 0 {
		panic("report.NewStream without a limit")
	}
	return &Stream{opt: opt, filter: filter, now: now, metric: metricOf(opt.Sort, now),
		top:   conntrack.NewTopK(opt.Limit),
		spare: make([]conntrack.Flow, 0, opt.Limit)}
}

// Add feeds one flow; f is copied if kept, so the caller may reuse it.
func (s *Stream) Add(f *conntrack.Flow) {
	s.seen++
	if !s.filter.Match(f, s.now) {
		return
	}
	s.totals.add(f)
	r := conntrack.Ranked{M: s.metric(f), F: f}
	if !s.top.Full() {
		s.spare = append(s.spare, *f)
		r.F = &s.spare[len(s.spare)-1]
		s.top.Offer(r)
		return
	}
	if !s.top.BeatsRoot(r) {
		return // would be pushed out at once: no copy
	}
	// The copy takes the storage of the flow it pushes out.
	slot := s.top.Items[0].F
	*slot = *f
	r.F = slot
	s.top.ReplaceRoot(r)
}

// SetNames gives the names of the listed flows (looked up only for them,
// when the document is made): the lookups may open while the dump runs.
func (s *Stream) SetNames(n enrich.Namer) { s.opt.Names = n }

// Prepare makes the document of the flows fed so far, to be written with
// Encode; h is the kernel side's health (the dump's duration, the
// kernel's count, the sysctls).
func (s *Stream) Prepare(h conntrack.Health) *Prepared {
	flows := sortedFlows(slices.Clone(s.top.Items))
	snap := &conntrack.Snapshot{Time: s.now, Filter: s.filter, Health: h}
	return prepare(snap, &s.totals, s.seen, flows, s.opt)
}
