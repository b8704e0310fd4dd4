package report

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
)

// SortKey orders the flows of a document, always descending.
type SortKey string

// Sort keys accepted by --sort.
const (
	SortRate    SortKey = "rate"
	SortBytes   SortKey = "bytes"
	SortPackets SortKey = "packets"
	SortAge     SortKey = "age"
)

// ParseSortKey checks a --sort value.
func ParseSortKey(s string) (SortKey, error) {
	switch k := SortKey(strings.ToLower(s)); k {
	case SortRate, SortBytes, SortPackets, SortAge:
		return k, nil
	}
	return "", fmt.Errorf("unknown sort key %q (want rate, bytes, packets or age)", s)
}

// Options shape a document.
type Options struct {
	Host  string
	Netns string
	Sort  SortKey // default rate
	// Limit keeps the first Limit flows after sorting; 0 keeps all.
	Limit int
	// Names, when set, adds what is known about each listed flow.
	Names enrich.Namer
}

// Prepared is a document whose flows are made only when it is written or
// completed: the header, totals and health are in the Document (the
// caller may still change them), the flows are the order to list. A
// document of 100k flows is some 60 MB of JSON; written with Encode it
// never exists whole in memory.
type Prepared struct {
	Document // without Flows
	order    []*conntrack.Flow
	now      time.Time
	names    enrich.Namer
}

// Prepare makes the header, totals and order of the document of s. It
// does not modify s, whose flows it shares until the document is written.
func Prepare(s *conntrack.Snapshot, opt Options) *Prepared {
	var t totalsAcc
	for _, f := range s.Flows {
		t.add(f)
	}
	return prepare(s, &t, s.TableFlows, Top(s.Flows, opt.Sort, s.Time, opt.Limit), opt)
}

// prepare makes the document of the flows order (already sorted and cut to
// the limit) with the totals of t and the rest from s (whose Flows it does
// not read).
func prepare(s *conntrack.Snapshot, t *totalsAcc, tableFlows int, order []*conntrack.Flow, opt Options) *Prepared {
	p := &Prepared{
		Document: Document{
			Version:   Version,
			Host:      opt.Host,
			Time:      s.Time.UTC(),
			IntervalS: s.Interval.Seconds(),
			Netns:     opt.Netns,
			Filter:    s.Filter.String(),
			Sort:      sortOrRate(opt.Sort),
			Totals:    t.totals(tableFlows),
			Health:    health(&s.Health),
		},
		order: order,
		now:   s.Time,
		names: opt.Names,
	}
	p.Totals.Listed = len(order)
	p.Health.UncountedFlows = t.uncounted
	return p
}

// flow is the document of the i-th listed flow.
func (p *Prepared) flow(i int) Flow {
	f := p.order[i]
	d := flowDoc(f, p.now)
	if p.names != nil {
		d.Names = namesDoc(p.names.Names(f))
	}
	return d
}

// Listed returns the flows the document lists, in its order. They are
// shared with the document: not to be modified.
func (p *Prepared) Listed() []*conntrack.Flow { return p.order }

// Full returns the whole document, flows included.
func (p *Prepared) Full() *Document {
	d := p.Document
	d.Flows = make([]Flow, len(p.order))
	for i := range p.order {
		d.Flows[i] = p.flow(i)
	}
	return &d
}

// Top returns the first limit flows in the order of key, descending, with
// the flow ID breaking ties so the order is stable between refreshes (all
// of them when limit is 0), without sorting the rest: selecting the top
// 10 of a million flows is a heap walk, not a sort.
func Top(flows []*conntrack.Flow, key SortKey, now time.Time, limit int) []*conntrack.Flow {
	metric := metricOf(key, now)
	var ranked []conntrack.Ranked
	if limit > 0 && limit < len(flows) {
		h := conntrack.NewTopK(limit)
		for _, f := range flows {
			h.Offer(conntrack.Ranked{M: metric(f), F: f})
		}
		ranked = h.Items
	} else {
		ranked = make([]conntrack.Ranked, len(flows))
		for i, f := range flows {
			ranked[i] = conntrack.Ranked{M: metric(f), F: f}
		}
	}
	return sortedFlows(ranked)
}

// sortedFlows sorts ranked in RankOrder and returns its flows.
func sortedFlows(ranked []conntrack.Ranked) []*conntrack.Flow {
	slices.SortFunc(ranked, conntrack.RankOrder)
	return conntrack.AppendFlows(make([]*conntrack.Flow, 0, len(ranked)), ranked)
}

// sortOrRate is key, or rate (metricOf's default) when key is not a sort
// key.
func sortOrRate(key SortKey) SortKey {
	switch key {
	case SortBytes, SortPackets, SortAge:
		return key
	}
	return SortRate
}

func metricOf(key SortKey, now time.Time) func(*conntrack.Flow) float64 {
	switch key {
	case SortBytes:
		return func(f *conntrack.Flow) float64 { return float64(f.TotalBytes()) }
	case SortPackets:
		return func(f *conntrack.Flow) float64 { return float64(f.TotalPackets()) }
	case SortAge:
		return func(f *conntrack.Flow) float64 { a, _ := f.Age(now); return a.Seconds() }
	}
	return (*conntrack.Flow).TotalRate
}

// totalsAcc sums the flows that pass the filters, one at a time.
type totalsAcc struct {
	flows                         int
	byProto                       [256]int // by number: a map update by name per flow was most of a document's cost
	origBytesPerS, replyBytesPerS float64
	origBytes, replyBytes         uint64
	uncounted                     int // flows without counters (health)
}

func (t *totalsAcc) add(f *conntrack.Flow) {
	t.flows++
	if !f.HasCounters {
		t.uncounted++
	}
	t.byProto[f.Proto]++
	t.origBytesPerS += float64(f.OrigRate.Bytes)
	t.replyBytesPerS += float64(f.ReplyRate.Bytes)
	t.origBytes += f.OrigCount.Bytes
	t.replyBytes += f.ReplyCount.Bytes
}

func (t *totalsAcc) totals(tableFlows int) Totals {
	out := Totals{Flows: t.flows, ByProto: map[string]int{}, TableFlows: tableFlows,
		OrigBytesPerS: t.origBytesPerS, ReplyBytesPerS: t.replyBytesPerS,
		OrigBytes: t.origBytes, ReplyBytes: t.replyBytes}
	for p, n := range t.byProto {
		if n > 0 {
			out.ByProto[conntrack.Proto(p).String()] += n
		}
	}
	return out
}

func health(h *conntrack.Health) Health {
	return Health{
		Events:           h.Events,
		Overruns:         h.Overruns,
		Resyncs:          h.Resyncs,
		Vanished:         h.Vanished,
		RefreshMS:        float64(h.Refresh.Microseconds()) / 1000,
		KernelFlows:      h.KernelFlows,
		RefreshIntervalS: h.RefreshEvery.Seconds(),
		HotFlows:         h.HotFlows,
		HotRefreshMS:     float64(h.HotRefresh.Microseconds()) / 1000,
		Refreshes:        h.Refreshes,
		Accounting:       h.Accounting,
		Timestamps:       h.Timestamps,
		LastError:        h.LastError,
	}
}

func flowDoc(f *conntrack.Flow, now time.Time) Flow {
	d := Flow{
		Endpoints: endpoints(f),
		Counted:   f.HasCounters,
		Orig:      direction(f.HasCounters, f.OrigCount, f.OrigRate),
		Reply:     direction(f.HasCounters, f.ReplyCount, f.ReplyRate),
		TimeoutS:  uint32(f.TimeLeft(now).Seconds()),
		Mark:      f.Mark,
		Zone:      f.Zone,
		Labels:    labels(f),
	}
	if age, ok := f.Age(now); ok {
		start := f.Start.Time().UTC()
		secs := age.Seconds()
		d.Start, d.AgeS = &start, &secs
	}
	return d
}

func endpoints(f *conntrack.Flow) Endpoints {
	d := Endpoints{
		ID:         f.ID,
		Family:     f.Family.String(),
		Proto:      f.Proto.String(),
		ProtoNum:   uint8(f.Proto),
		State:      f.StateName(),
		Src:        addrString(f.Orig.Src.IP()),
		Sport:      f.Orig.SrcPort,
		Dst:        addrString(f.Orig.Dst.IP()),
		Dport:      f.Orig.DstPort,
		ReplySrc:   addrString(f.Reply.Src.IP()),
		ReplySport: f.Reply.SrcPort,
		ReplyDst:   addrString(f.Reply.Dst.IP()),
		ReplyDport: f.Reply.DstPort,
		NAT:        f.NAT().String(),
		Status:     f.Status.Names(),
	}
	if d.Status == nil {
		d.Status = []string{}
	}
	if f.Proto == conntrack.ProtoICMP || f.Proto == conntrack.ProtoICMPv6 {
		typ, code, id := f.ICMP.Type, f.ICMP.Code, f.ICMP.ID
		d.ICMPType, d.ICMPCode, d.ICMPID = &typ, &code, &id
	}
	return d
}

func labels(f *conntrack.Flow) string {
	if f.Labels.IsZero() {
		return ""
	}
	l := f.Labels.Get()
	return hex.EncodeToString(l[:])
}

func direction(counted bool, c conntrack.Counter, r conntrack.Rate) Direction {
	d := Direction{
		BytesPerS:    float64(r.Bytes),
		PacketsPerS:  float64(r.Packets),
		BytesPerS2s:  float64(r.Avg2),
		BytesPerS10s: float64(r.Avg10),
		BytesPerS40s: float64(r.Avg40),
	}
	if counted {
		b, p := c.Bytes, c.Packets
		d.Bytes, d.Packets = &b, &p
	}
	return d
}

func namesDoc(n enrich.Names) Names {
	var d Names
	d.Service, d.SService = n.Service, n.SrcService
	d.SrcName, d.DstName = n.SrcName, n.DstName
	if n.SrcGeo.Known() {
		g := Geo(n.SrcGeo)
		d.SrcGeo = &g
	}
	if n.DstGeo.Known() {
		g := Geo(n.DstGeo)
		d.DstGeo = &g
	}
	if n.Process.Known() {
		p := Process(n.Process)
		d.Process = &p
	}
	return d
}
