package metrics

import (
	"time"

	"github.com/flowtop/flowtop/conntrack"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// flow makes a TCP flow from src to dst without NAT.
func flow(id uint32, src string, sport uint16, dst string, dport uint16) conntrack.Flow {
	o := conntrack.Tuple{Src: conntrack.MustParseAddr(src), Dst: conntrack.MustParseAddr(dst), SrcPort: sport, DstPort: dport}
	fam := conntrack.IPv4
	if o.Src.IP().Is6() {
		fam = conntrack.IPv6
	}
	return conntrack.Flow{ID: id, Family: fam, Proto: conntrack.ProtoTCP, State: 3, HasCounters: true, Orig: o,
		Reply: conntrack.Tuple{Src: o.Dst, Dst: o.Src, SrcPort: dport, DstPort: sport}}
}

// counted returns f with the given byte counts (and a packet per 100
// bytes).
func counted(f conntrack.Flow, orig, reply uint64) conntrack.Flow {
	f.OrigCount = conntrack.Counter{Bytes: orig, Packets: orig / 100}
	f.ReplyCount = conntrack.Counter{Bytes: reply, Packets: reply / 100}
	return f
}

var seqTime = t0

// snap makes a snapshot of the flows, each later than the last.
func snap(flows ...conntrack.Flow) *conntrack.Snapshot {
	seqTime = seqTime.Add(time.Second)
	return &conntrack.Snapshot{Time: seqTime, Flows: conntrack.Pointers(flows), TableFlows: len(flows),
		Filter: allFilter()}
}

func allFilter() conntrack.Filter {
	f := conntrack.Filter{IPv4: true, IPv6: true}
	f.AllProtos()
	return f
}
