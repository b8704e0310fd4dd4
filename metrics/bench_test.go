package metrics

import (
	"context"
	"fmt"
	"testing"

	"github.com/flowtop/flowtop/conntrack"
)

// benchFlows makes n flows of a busy router: 2000 LAN hosts (10.0.0.0/16)
// and a tenth of them over IPv6 ULA, to remote peers, TCP in a few states
// and UDP; grow is added to every counter.
func benchFlows(n int, grow uint64) []conntrack.Flow {
	flows := make([]conntrack.Flow, n)
	for i := range flows {
		h := i % 2000
		src, dst := fmt.Sprintf("10.0.%d.%d", h/250, h%250+1), fmt.Sprintf("203.0.%d.%d", i/60000, i/250%240+1)
		if h%10 == 0 {
			src, dst = fmt.Sprintf("fd00::%x", h+1), fmt.Sprintf("2001:db8::%x:%x", i>>16, i&0xffff)
		}
		f := flow(uint32(i+1), src, uint16(1024+i%60000), dst, uint16(443+i/60000))
		switch i % 5 {
		case 3:
			f.State = 7
		case 4:
			f.Proto, f.State = conntrack.ProtoUDP, 0
		}
		flows[i] = counted(f, uint64(1000+i)+grow, uint64(10000+i)+3*grow)
	}
	return flows
}

// BenchmarkScrape100k is a scrape of a 100,000-flow table whose counters
// all changed since the last scrape: fold the snapshot into the host
// counters, then write the exposition (2000 hosts). "churn" also ends 1%
// of the flows between scrapes, the table moving its last flows into
// their places, and starts as many new ones.
func BenchmarkScrape100k(b *testing.B) {
	for _, churn := range []int{0, 1000} {
		b.Run(fmt.Sprintf("churn=%d", churn), func(b *testing.B) {
			const cycle = 4
			snaps := churnSnapshots(100_000, churn, cycle)
			fx := newFixture(b, goldenConfig())
			fx.scrape(b, snap())
			for _, s := range snaps {
				fx.scrape(b, s)
			}
			var buf []byte
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				i++
				// A new snapshot value each time, as the table makes one
				// per tick.
				s := *snaps[i%cycle]
				fx.latest.Store(&s)
				var err error
				if buf, err = fx.c.Gather(context.Background(), buf[:0]); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(buf)), "bytes/scrape")
		})
	}
}

// churnSnapshots makes n snapshots in which every counter grows and
// churn flows end (the table's swap-remove) and start (appended).
func churnSnapshots(flows, churn, n int) []*conntrack.Snapshot {
	cur := benchFlows(flows, 0)
	nextID := uint32(flows + 1)
	var out []*conntrack.Snapshot
	for i := range n {
		for j := range churn {
			at := (j*7919 + i*104729) % len(cur)
			cur[at] = cur[len(cur)-1]
			cur = cur[:len(cur)-1]
		}
		for range churn {
			f := benchFlows(1, 0)[0]
			f.ID = nextID
			f.Orig.SrcPort, f.Reply.DstPort = uint16(nextID), uint16(nextID)
			nextID++
			cur = append(cur, f)
		}
		next := make([]conntrack.Flow, len(cur))
		for j, f := range cur {
			next[j] = counted(f, f.OrigCount.Bytes+500, f.ReplyCount.Bytes+1500)
		}
		cur = next
		out = append(out, snap(next...))
	}
	return out
}

// BenchmarkScrapeSameSnapshot100k is a scrape that finds the snapshot
// already folded (scrapes more often than the table's interval): the
// exposition alone.
func BenchmarkScrapeSameSnapshot100k(b *testing.B) {
	fx := newFixture(b, goldenConfig())
	fx.scrape(b, snap())
	fx.scrape(b, snap(benchFlows(100_000, 0)...))
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = fx.c.Gather(context.Background(), buf[:0]); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(buf)), "bytes/scrape")
}
