package report

import (
	"cmp"
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

// Build makes the document of a snapshot. It does not modify s.
func Build(s *conntrack.Snapshot, opt Options) *Document {
	d := &Document{
		Version:   Version,
		Host:      opt.Host,
		Time:      s.Time.UTC(),
		IntervalS: s.Interval.Seconds(),
		Netns:     opt.Netns,
		Filter:    s.Filter.String(),
		Totals:    totals(s),
		Health:    health(&s.Health),
	}
	order := Top(s.Flows, opt.Sort, s.Time, opt.Limit)
	d.Flows = make([]Flow, len(order))
	for i, fl := range order {
		d.Flows[i] = flowDoc(fl, s.Time)
		if opt.Names != nil {
			d.Flows[i].Names = namesDoc(opt.Names.Names(fl))
		}
	}
	d.Totals.Listed = len(d.Flows)
	return d
}

// Sorted returns pointers to the flows in the order of key, descending,
// with the flow ID breaking ties so the order is stable between refreshes.
func Sorted(flows []*conntrack.Flow, key SortKey, now time.Time) []*conntrack.Flow {
	return Top(flows, key, now, 0)
}

// Top returns the first limit flows in the order of Sorted (all of them
// when limit is 0) without sorting the rest: selecting the top 10 of a
// million flows is a heap walk, not a sort.
func Top(flows []*conntrack.Flow, key SortKey, now time.Time, limit int) []*conntrack.Flow {
	metric := metricOf(key, now)
	less := func(a, b rankedFlow) int {
		if c := cmp.Compare(b.m, a.m); c != 0 {
			return c
		}
		return cmp.Compare(a.f.ID, b.f.ID)
	}
	var ranked []rankedFlow
	if limit > 0 && limit < len(flows) {
		ranked = selectTop(flows, metric, limit, less)
	} else {
		ranked = make([]rankedFlow, len(flows))
		for i, f := range flows {
			ranked[i] = rankedFlow{metric(f), f}
		}
	}
	slices.SortFunc(ranked, less)
	out := make([]*conntrack.Flow, len(ranked))
	for i, r := range ranked {
		out[i] = r.f
	}
	return out
}

// rankedFlow pairs a flow with its sort metric, computed once.
type rankedFlow struct {
	m float64
	f *conntrack.Flow
}

// selectTop returns the k first flows in the order of less (unsorted),
// keeping a max-heap of the best k seen: memory for k, not for every flow
// (a 100k-flow table with --limit 10 made 1.6 MB of garbage per document).
func selectTop(flows []*conntrack.Flow, metric func(*conntrack.Flow) float64, k int,
	less func(a, b rankedFlow) int) []rankedFlow {
	h := make([]rankedFlow, k)
	for i, f := range flows[:k] {
		h[i] = rankedFlow{metric(f), f}
	}
	// worst-at-root heap: the root is the element the others beat.
	down := func(i int) {
		for {
			l := 2*i + 1
			if l >= len(h) {
				return
			}
			w := l
			if r := l + 1; r < len(h) && less(h[r], h[l]) > 0 {
				w = r
			}
			if less(h[w], h[i]) <= 0 {
				return
			}
			h[i], h[w] = h[w], h[i]
			i = w
		}
	}
	for i := len(h)/2 - 1; i >= 0; i-- {
		down(i)
	}
	for _, f := range flows[k:] {
		if r := (rankedFlow{metric(f), f}); less(r, h[0]) < 0 {
			h[0] = r
			down(0)
		}
	}
	return h
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

func totals(s *conntrack.Snapshot) Totals {
	t := Totals{Flows: len(s.Flows), ByProto: map[string]int{}, TableFlows: s.TableFlows}
	// Counted by protocol number first: a map update with the protocol's
	// name per flow was most of a 100k-flow document's cost.
	var byProto [256]int
	for _, f := range s.Flows {
		byProto[f.Proto]++
		t.OrigBytesPerS += float64(f.OrigRate.Bytes)
		t.ReplyBytesPerS += float64(f.ReplyRate.Bytes)
		t.OrigBytes += f.OrigCount.Bytes
		t.ReplyBytes += f.ReplyCount.Bytes
	}
	for p, n := range byProto {
		if n > 0 {
			t.ByProto[conntrack.Proto(p).String()] += n
		}
	}
	return t
}

func health(h *conntrack.Health) Health {
	return Health{
		Events:           h.Events,
		Overruns:         h.Overruns,
		Resyncs:          h.Resyncs,
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
		typ, code, id := f.Orig.ICMPType, f.Orig.ICMPCode, f.Orig.ICMPID
		d.ICMPType, d.ICMPCode, d.ICMPID = &typ, &code, &id
	}
	return d
}

func labels(f *conntrack.Flow) string {
	if f.Labels == [16]byte{} {
		return ""
	}
	return hex.EncodeToString(f.Labels[:])
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
