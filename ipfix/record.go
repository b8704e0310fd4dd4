package ipfix

import (
	"time"

	"github.com/flowtop/flowtop/conntrack"
)

// record is one data record to export: a flow's counters over an interval
// (start to end) or a NAT session event. It is a plain value without
// pointers, copied through the senders' queues.
type record struct {
	kind   recordKind
	proto  conntrack.Proto
	reason uint8 // flowEndReason
	event  uint8 // natEvent, for kindNATEvent
	id     uint32
	// icmp is type<<8 | code for ICMP and ICMPv6 flows.
	icmp uint16

	src, dst, postSrc, postDst                 conntrack.Addr
	srcPort, dstPort, postSrcPort, postDstPort uint16

	// start and end are Unix milliseconds; a NAT event's time is start.
	start, end  int64
	orig, reply conntrack.Counter
}

// flowRecord makes the record of f's counters orig and reply (deltas)
// between start and end.
func flowRecord(f *conntrack.Flow, orig, reply conntrack.Counter, start, end int64, reason uint8) record {
	r := record{
		proto: f.Proto, reason: reason, id: f.ID,
		src: f.Orig.Src, dst: f.Orig.Dst, srcPort: f.Orig.SrcPort, dstPort: f.Orig.DstPort,
		start: start, end: end, orig: orig, reply: reply,
	}
	if f.Proto == conntrack.ProtoICMP || f.Proto == conntrack.ProtoICMPv6 {
		r.icmp = uint16(f.ICMP.Type)<<8 | uint16(f.ICMP.Code)
	}
	nat := f.NAT() != conntrack.NATNone
	if nat {
		r.setPostNAT(f)
	}
	switch {
	case f.Family == conntrack.IPv6 && nat:
		r.kind = kindIPv6NAT
	case f.Family == conntrack.IPv6:
		r.kind = kindIPv6
	case nat:
		r.kind = kindIPv4NAT
	default:
		r.kind = kindIPv4
	}
	return r
}

// natEventRecord makes an RFC 8158 NAT44 session event of f at ms.
func natEventRecord(f *conntrack.Flow, event uint8, ms int64) record {
	r := record{
		kind: kindNATEvent, proto: f.Proto, event: event, id: f.ID,
		src: f.Orig.Src, dst: f.Orig.Dst, srcPort: f.Orig.SrcPort, dstPort: f.Orig.DstPort,
		start: ms,
	}
	r.setPostNAT(f)
	return r
}

// setPostNAT takes the post-NAT endpoints from the reply tuple: its
// destination is where the source was translated to, its source where
// the destination was.
func (r *record) setPostNAT(f *conntrack.Flow) {
	r.postSrc, r.postSrcPort = f.Reply.Dst, f.Reply.DstPort
	r.postDst, r.postDstPort = f.Reply.Src, f.Reply.SrcPort
}

// isNAT44 reports a flow whose session RFC 8158's NAT44 events describe.
func isNAT44(f *conntrack.Flow) bool {
	return f.Family == conntrack.IPv4 && f.NAT() != conntrack.NATNone
}

// endReason is flowEndReason for a flow the kernel destroyed: a TCP
// connection closed by its ends (TIME_WAIT or CLOSE) ended, everything
// else timed out (or was deleted, which conntrack does not tell apart).
func endReason(f *conntrack.Flow) uint8 {
	const tcpTimeWait, tcpClose = 7, 8
	if f.Proto == conntrack.ProtoTCP && (f.State == tcpTimeWait || f.State == tcpClose) {
		return endOfFlow
	}
	return endIdleTimeout
}

// unixMs is t in Unix milliseconds.
func unixMs(t time.Time) int64 { return t.UnixMilli() }

// stampMs is a conntrack Stamp in Unix milliseconds.
func stampMs(s conntrack.Stamp) int64 { return int64(s) / int64(time.Millisecond) }

// sub is a-b for counters that only grow, 0 when b is ahead (a counter
// read before the other was reset by a new entry with the same key).
func sub(a, b conntrack.Counter) conntrack.Counter {
	var d conntrack.Counter
	if a.Bytes >= b.Bytes {
		d.Bytes = a.Bytes - b.Bytes
	}
	if a.Packets >= b.Packets {
		d.Packets = a.Packets - b.Packets
	}
	return d
}
