package report

import (
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack"
)

// A Stream fed the flows of a table one at a time, through one reused
// Flow as a dump hands them out, makes the same document as Build of a
// snapshot of those flows: totals, the listed flows and their order
// (with many ties), for every sort key, filter and limit.
func TestStreamMatchesBuild(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	now := time.Unix(1_700_000_000, 0)
	flows := make([]conntrack.Flow, 3000)
	protos := []conntrack.Proto{conntrack.ProtoTCP, conntrack.ProtoUDP, conntrack.ProtoICMP, conntrack.ProtoSCTP}
	for i := range flows {
		src := netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)})
		dst := netip.AddrFrom4([4]byte{192, 0, 2, byte(r.IntN(4))})
		flows[i] = conntrack.Flow{
			ID: r.Uint32(), Family: conntrack.IPv4, Proto: protos[r.IntN(len(protos))],
			Orig:        conntrack.Tuple{Src: conntrack.AddrFrom(src), Dst: conntrack.AddrFrom(dst), SrcPort: uint16(1024 + i), DstPort: uint16(r.IntN(3))},
			Reply:       conntrack.Tuple{Src: conntrack.AddrFrom(dst), Dst: conntrack.AddrFrom(src), SrcPort: uint16(r.IntN(3)), DstPort: uint16(1024 + i)},
			Timeout:     uint32(r.IntN(100)),
			Start:       conntrack.StampOf(now.Add(-time.Duration(r.IntN(5)) * time.Second)),
			HasCounters: i%7 != 0, // some began while accounting was off
			// Few distinct values: ties everywhere, broken by ID.
			OrigCount:  conntrack.Counter{Packets: uint64(r.IntN(3)), Bytes: uint64(r.IntN(4) * 100)},
			ReplyCount: conntrack.Counter{Packets: uint64(r.IntN(3)), Bytes: uint64(r.IntN(4) * 100)},
			OrigRate:   conntrack.Rate{Bytes: float32(r.IntN(5))},
		}
	}
	h := conntrack.Health{Refresh: 12 * time.Millisecond, Refreshes: 1, KernelFlows: len(flows), Accounting: true}
	tcpUDP := conntrack.DefaultFilter()
	tcpUDP.Protos = conntrack.ProtoSet{}
	tcpUDP.Protos.Add(conntrack.ProtoTCP)
	tcpUDP.Protos.Add(conntrack.ProtoUDP)
	all := conntrack.DefaultFilter()
	all.AllProtos()
	for _, filter := range []conntrack.Filter{all, tcpUDP} {
		for _, key := range []SortKey{SortRate, SortBytes, SortPackets, SortAge} {
			for _, limit := range []int{1, 10, 999, 5000} {
				opt := Options{Host: "h", Netns: "n", Sort: key, Limit: limit}
				snap := &conntrack.Snapshot{Time: now, Filter: filter, Health: h, TableFlows: len(flows)}
				for i := range flows {
					if filter.Match(&flows[i], now) {
						snap.Flows = append(snap.Flows, &flows[i])
					}
				}
				uncounted := 0
				for _, f := range snap.Flows {
					if !f.HasCounters {
						uncounted++
					}
				}
				built := Build(snap, opt)
				if built.Health.UncountedFlows != uncounted || uncounted == 0 {
					t.Fatalf("health.uncounted_flows %d, want %d", built.Health.UncountedFlows, uncounted)
				}
				want, _ := json.Marshal(built)

				s := NewStream(opt, filter, now)
				var reused conntrack.Flow
				for i := range flows {
					reused = flows[i]
					s.Add(&reused)
				}
				got, _ := json.Marshal(s.Prepare(h).Full())
				if string(got) != string(want) {
					t.Fatalf("filter %s, sort %s, limit %d: stream\n%.600s\nbuild\n%.600s", filter.String(), key, limit, got, want)
				}
			}
		}
	}
}
