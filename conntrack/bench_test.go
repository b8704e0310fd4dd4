package conntrack

import (
	"context"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"
)

// benchFlows makes n distinct UDP flows with counters and start times.
func benchFlows(n int) []Flow {
	fs := make([]Flow, n)
	start := time.Unix(1_700_000_000, 0)
	for i := range fs {
		src := netip.AddrFrom4([4]byte{198, 18, byte(i >> 16), byte(i >> 8)})
		dst := netip.AddrFrom4([4]byte{198, 19, byte(i), 1})
		sport := uint16(1024 + i%60000)
		fs[i] = Flow{
			ID: uint32(i*2654435761 + 1), Family: IPv4, Proto: ProtoUDP,
			Orig:        Tuple{Src: AddrFrom(src), Dst: AddrFrom(dst), SrcPort: sport, DstPort: 53},
			Reply:       Tuple{Src: AddrFrom(dst), Dst: AddrFrom(src), SrcPort: 53, DstPort: sport},
			Status:      StatusConfirmed | StatusSeenReply,
			Timeout:     30,
			Start:       StampOf(start),
			HasCounters: true,
			OrigCount:   Counter{Packets: 1, Bytes: 60},
			ReplyCount:  Counter{Packets: 1, Bytes: 120},
		}
	}
	return fs
}

// sliceKernel replays a fixed table as dumps; each dump grows every
// flow's counters so that rates are computed.
type sliceKernel struct{ flows []Flow }

func (k *sliceKernel) Dump(fn func(*Flow)) (bool, error) {
	for i := range k.flows {
		f := &k.flows[i]
		f.OrigCount.Bytes += 100
		f.OrigCount.Packets++
		fn(f)
	}
	return false, nil
}

func (k *sliceKernel) Listen(ctx context.Context, _ chan<- Event) error {
	<-ctx.Done()
	return nil
}

// BenchmarkTableRefresh is one counter refresh and snapshot of a table in
// steady state (every flow known, every flow's counters grown: the worst
// case, since each changed flow gets a new record): table update, rate
// maths and publishing, without the kernel and decoding.
func BenchmarkTableRefresh(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(itoa(uint64(n)), func(b *testing.B) {
			k := &sliceKernel{flows: benchFlows(n)}
			now := time.Unix(1_700_000_100, 0)
			tb := NewTable(TableConfig{Kernel: k, Interval: time.Second, Filter: DefaultFilter(),
				Now: func() time.Time { return now }})
			if err := tb.refresh(); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			allocs := ms.Mallocs
			for b.Loop() {
				now = now.Add(time.Second)
				if err := tb.refresh(); err != nil {
					b.Fatal(err)
				}
				tb.publish()
			}
			runtime.ReadMemStats(&ms)
			b.ReportMetric(float64(ms.Mallocs-allocs)/float64(b.N)/float64(n), "allocs/flow")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(n), "ns/flow")
		})
	}
}

// BenchmarkPublish builds the immutable snapshot of a 100k-flow table.
func BenchmarkPublish(b *testing.B) {
	k := &sliceKernel{flows: benchFlows(100_000)}
	f := DefaultFilter()
	f.AllProtos()
	tb := NewTable(TableConfig{Kernel: k, Interval: time.Second, Filter: f})
	if err := tb.refresh(); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		tb.publish()
	}
	if got := len(tb.Latest().Flows); got != 100_000 {
		b.Fatalf("snapshot has %d flows", got)
	}
}

func BenchmarkRateAdvance(b *testing.B) {
	var r Rate
	r.advance(1000, 10, time.Second, true)
	b.ReportAllocs()
	for b.Loop() {
		r.advance(1000, 10, time.Second, false)
	}
}

func BenchmarkFilterMatch(b *testing.B) {
	fs := benchFlows(1024)
	f := DefaultFilter()
	f.AllProtos()
	f.ExcludePorts = []uint16{22, 443}
	f.Nets = []netip.Prefix{netip.MustParsePrefix("198.18.0.0/15")}
	now := time.Unix(1_700_000_100, 0)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		f.Match(&fs[i&1023], now)
		i++
	}
}

// BenchmarkFirstDump is the table's side of flowtop's start on a 100k-flow
// table (what --once pays besides the kernel and decoding): an empty table
// sized from nf_conntrack_count takes in every flow and publishes.
func BenchmarkFirstDump(b *testing.B) {
	const n = 100_000
	k := &sliceKernel{flows: benchFlows(n)}
	f := DefaultFilter()
	f.AllProtos()
	b.ReportAllocs()
	for b.Loop() {
		tb := NewTable(TableConfig{Kernel: k, Interval: time.Second, Filter: f,
			KernelFlows: func() int { return n }})
		if err := tb.refresh(); err != nil {
			b.Fatal(err)
		}
		tb.publish()
		if len(tb.Latest().Flows) != n {
			b.Fatalf("snapshot has %d flows", len(tb.Latest().Flows))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/flow")
}

// BenchmarkLabels is what a labelled flow costs the label list: "ref", a
// decoder numbering a set already seen (every labelled flow of a dump);
// "get", a reader resolving it (every labelled flow written or shown);
// "concurrent", both at once on every core, as the table's decoder and
// the screen or an exporter.
func BenchmarkLabels(b *testing.B) {
	var x labelList
	sets := make([]Labels, 16)
	refs := make([]LabelsRef, len(sets))
	for i := range sets {
		sets[i] = Labels{0: byte(i + 1), 15: 0x80}
		refs[i] = x.ref(sets[i])
	}
	b.Run("ref", func(b *testing.B) {
		i := 0
		for b.Loop() {
			x.ref(sets[i&15])
			i++
		}
	})
	b.Run("get", func(b *testing.B) {
		i := 0
		for b.Loop() {
			x.labels(refs[i&15])
			i++
		}
	})
	b.Run("concurrent", func(b *testing.B) {
		var n atomic.Int64
		b.RunParallel(func(pb *testing.PB) {
			decoder := n.Add(1)%2 == 0
			i := 0
			for pb.Next() {
				if decoder {
					x.ref(sets[i&15])
				} else {
					x.labels(refs[i&15])
				}
				i++
			}
		})
	})
}
