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
	order := Sorted(s.Flows, opt.Sort, s.Time)
	if opt.Limit > 0 && len(order) > opt.Limit {
		order = order[:opt.Limit]
	}
	d.Flows = make([]Flow, len(order))
	for i, fl := range order {
		d.Flows[i] = flowDoc(fl, s.Time)
		if opt.Names != nil {
			addNames(&d.Flows[i], opt.Names.Names(fl))
		}
	}
	d.Totals.Listed = len(d.Flows)
	return d
}

// Sorted returns pointers to the flows in the order of key, descending,
// with the flow ID breaking ties so the order is stable between refreshes.
func Sorted(flows []conntrack.Flow, key SortKey, now time.Time) []*conntrack.Flow {
	ps := make([]*conntrack.Flow, len(flows))
	for i := range flows {
		ps[i] = &flows[i]
	}
	var metric func(*conntrack.Flow) float64
	switch key {
	case SortBytes:
		metric = func(f *conntrack.Flow) float64 { return float64(f.TotalBytes()) }
	case SortPackets:
		metric = func(f *conntrack.Flow) float64 { return float64(f.TotalPackets()) }
	case SortAge:
		metric = func(f *conntrack.Flow) float64 { a, _ := f.Age(now); return a.Seconds() }
	default:
		metric = (*conntrack.Flow).TotalRate
	}
	slices.SortStableFunc(ps, func(a, b *conntrack.Flow) int {
		if c := cmp.Compare(metric(b), metric(a)); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	return ps
}

func totals(s *conntrack.Snapshot) Totals {
	t := Totals{Flows: len(s.Flows), ByProto: map[string]int{}, TableFlows: s.TableFlows}
	for i := range s.Flows {
		f := &s.Flows[i]
		t.ByProto[f.Proto.String()]++
		t.OrigBytesPerS += f.OrigRate.Bytes
		t.ReplyBytesPerS += f.ReplyRate.Bytes
		t.OrigBytes += f.OrigCount.Bytes
		t.ReplyBytes += f.ReplyCount.Bytes
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
		Accounting:       h.Accounting,
		Timestamps:       h.Timestamps,
		LastError:        h.LastError,
	}
}

func flowDoc(f *conntrack.Flow, now time.Time) Flow {
	d := Flow{
		ID:         f.ID,
		Family:     f.Family.String(),
		Proto:      f.Proto.String(),
		ProtoNum:   uint8(f.Proto),
		State:      f.StateName(),
		Src:        addrString(f.Orig.Src),
		Sport:      f.Orig.SrcPort,
		Dst:        addrString(f.Orig.Dst),
		Dport:      f.Orig.DstPort,
		ReplySrc:   addrString(f.Reply.Src),
		ReplySport: f.Reply.SrcPort,
		ReplyDst:   addrString(f.Reply.Dst),
		ReplyDport: f.Reply.DstPort,
		NAT:        f.NAT().String(),
		Status:     f.Status.Names(),
		Counted:    f.HasCounters,
		Orig:       direction(f.HasCounters, f.OrigCount, f.OrigRate),
		Reply:      direction(f.HasCounters, f.ReplyCount, f.ReplyRate),
		TimeoutS:   f.Timeout,
		Mark:       f.Mark,
		Zone:       f.Zone,
	}
	if d.Status == nil {
		d.Status = []string{}
	}
	if f.Proto == conntrack.ProtoICMP || f.Proto == conntrack.ProtoICMPv6 {
		typ, code, id := f.Orig.ICMPType, f.Orig.ICMPCode, f.Orig.ICMPID
		d.ICMPType, d.ICMPCode, d.ICMPID = &typ, &code, &id
	}
	if f.Labels != [16]byte{} {
		d.Labels = hex.EncodeToString(f.Labels[:])
	}
	if age, ok := f.Age(now); ok {
		start := f.Start.UTC()
		secs := age.Seconds()
		d.Start, d.AgeS = &start, &secs
	}
	return d
}

func direction(counted bool, c conntrack.Counter, r conntrack.Rate) Direction {
	d := Direction{
		BytesPerS:    r.Bytes,
		PacketsPerS:  r.Packets,
		BytesPerS2s:  r.Avg2,
		BytesPerS10s: r.Avg10,
		BytesPerS40s: r.Avg40,
	}
	if counted {
		b, p := c.Bytes, c.Packets
		d.Bytes, d.Packets = &b, &p
	}
	return d
}

func addNames(d *Flow, n enrich.Names) {
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
}
