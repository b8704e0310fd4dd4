package kernel

import (
	"encoding/binary"
	"github.com/flowtop/flowtop/conntrack"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/mdlayher/netlink"
	tconntrack "github.com/ti-mo/conntrack"
)

// cmpOpts compares the types of Flow that cmp cannot look into.
var cmpOpts = cmp.Options{
	// Seen is when the table read the flow, not something the kernel says.
	cmpopts.IgnoreFields(conntrack.Flow{}, "Seen"),
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
}

// encodeTuple writes one CTA_TUPLE_* the way the kernel does.
func encodeTuple(ae *netlink.AttributeEncoder, typ uint16, t conntrack.Tuple, p conntrack.Proto, ic conntrack.ICMP) {
	ae.Nested(typ, func(nae *netlink.AttributeEncoder) error {
		nae.Nested(ctaTupleIP, func(ip *netlink.AttributeEncoder) error {
			if t.Src.Is4() {
				ip.Bytes(ctaIPv4Src, t.Src.AsSlice())
				ip.Bytes(ctaIPv4Dst, t.Dst.AsSlice())
			} else {
				ip.Bytes(ctaIPv6Src, t.Src.AsSlice())
				ip.Bytes(ctaIPv6Dst, t.Dst.AsSlice())
			}
			return nil
		})
		nae.Nested(ctaTupleProto, func(pa *netlink.AttributeEncoder) error {
			pa.Uint8(ctaProtoNum, uint8(p))
			switch p {
			case conntrack.ProtoICMP:
				pa.Uint16(ctaProtoICMPID, ic.ID)
				pa.Uint8(ctaProtoICMPType, ic.Type)
				pa.Uint8(ctaProtoICMPCode, ic.Code)
			case conntrack.ProtoICMPv6:
				pa.Uint16(ctaProtoICMPv6ID, ic.ID)
				pa.Uint8(ctaProtoICMPv6Type, ic.Type)
				pa.Uint8(ctaProtoICMPv6Code, ic.Code)
			default:
				pa.Uint16(ctaProtoSrcPort, t.SrcPort)
				pa.Uint16(ctaProtoDstPort, t.DstPort)
			}
			return nil
		})
		return nil
	})
}

func encodeCounter(ae *netlink.AttributeEncoder, typ uint16, c conntrack.Counter) {
	ae.Nested(typ, func(nae *netlink.AttributeEncoder) error {
		nae.Uint64(ctaCountersPackets, c.Packets)
		nae.Uint64(ctaCountersBytes, c.Bytes)
		return nil
	})
}

// encodeFlow builds the body of a ctnetlink message (nfgenmsg and
// attributes) for f, in big-endian like the kernel. Counters are sent when
// f.HasCounters, the timestamp when f.Start or stop is set, the protoinfo
// for TCP, SCTP and DCCP.
func encodeFlow(t testing.TB, f *conntrack.Flow, stop time.Time) []byte {
	t.Helper()
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	encodeTuple(ae, ctaTupleOrig, f.Orig, f.Proto, f.ICMP)
	// The reply's type differs, as an echo reply's does: the decoder must
	// keep the original's.
	encodeTuple(ae, ctaTupleReply, f.Reply, f.Proto, conntrack.ICMP{ID: f.ICMP.ID, Type: f.ICMP.Type + 1, Code: f.ICMP.Code})
	ae.Uint32(ctaStatus, uint32(f.Status))
	if nest := map[conntrack.Proto]uint16{conntrack.ProtoTCP: 1, conntrack.ProtoDCCP: 2, conntrack.ProtoSCTP: 3}[f.Proto]; nest != 0 {
		ae.Nested(ctaProtoinfo, func(pi *netlink.AttributeEncoder) error {
			pi.Nested(nest, func(p *netlink.AttributeEncoder) error {
				p.Uint8(ctaProtoinfoState, f.State)
				if f.Proto == conntrack.ProtoTCP {
					p.Uint8(2, 7) // window scales, which we skip
					p.Uint8(3, 7)
				}
				return nil
			})
			return nil
		})
	}
	ae.Uint32(ctaTimeout, f.Timeout)
	ae.Uint32(ctaMark, f.Mark)
	if f.HasCounters {
		encodeCounter(ae, ctaCountersOrig, f.OrigCount)
		encodeCounter(ae, ctaCountersReply, f.ReplyCount)
	}
	ae.Uint32(ctaID, f.ID)
	ae.Uint16(ctaZone, f.Zone)
	if !f.Start.IsZero() || !stop.IsZero() {
		ae.Nested(ctaTimestamp, func(ts *netlink.AttributeEncoder) error {
			if !f.Start.IsZero() {
				ts.Uint64(ctaTimestampStart, uint64(int64(f.Start)))
			}
			if !stop.IsZero() {
				ts.Uint64(ctaTimestampStop, uint64(stop.UnixNano()))
			}
			return nil
		})
	}
	if l := f.Labels.Get(); l != (conntrack.Labels{}) {
		ae.Bytes(ctaLabels, l[:])
	}
	b, err := ae.Encode()
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	return append([]byte{byte(f.Family), 0, 0, 0}, b...)
}

var (
	tsStart = time.Unix(1740830400, 123456789)
	tsStop  = tsStart.Add(90 * time.Second)
)

// decodeCases are flows as the kernel would send them. The first sets
// every field decodeFlow fills.
var decodeCases = []struct {
	name string
	flow conntrack.Flow
	stop time.Time
}{{
	name: "tcp4 nat with everything",
	flow: conntrack.Flow{
		ID: 0xdeadbeef, Family: conntrack.IPv4, Proto: conntrack.ProtoTCP,
		Orig: conntrack.Tuple{Src: conntrack.MustParseAddr("10.0.0.2"), Dst: conntrack.MustParseAddr("93.184.216.34"),
			SrcPort: 40000, DstPort: 443},
		Reply: conntrack.Tuple{Src: conntrack.MustParseAddr("93.184.216.34"), Dst: conntrack.MustParseAddr("203.0.113.1"),
			SrcPort: 443, DstPort: 61000},
		State:       3,
		Status:      conntrack.StatusAssured | conntrack.StatusConfirmed | conntrack.StatusSeenReply | conntrack.StatusSrcNAT,
		Mark:        0x1234,
		Zone:        7,
		Labels:      conntrack.RefLabels(conntrack.Labels{0: 1, 15: 0x80}),
		Timeout:     431999,
		Start:       conntrack.StampOf(tsStart),
		HasCounters: true,
		OrigCount:   conntrack.Counter{Packets: 1 << 33, Bytes: 1 << 40},
		ReplyCount:  conntrack.Counter{Packets: 20, Bytes: 30000},
	},
	stop: tsStop,
}, {
	name: "udp6 no counters no timestamp",
	flow: conntrack.Flow{
		ID: 2, Family: conntrack.IPv6, Proto: conntrack.ProtoUDP,
		Orig: conntrack.Tuple{Src: conntrack.MustParseAddr("2001:db8::1"), Dst: conntrack.MustParseAddr("2001:db8::2"),
			SrcPort: 5353, DstPort: 53},
		Reply: conntrack.Tuple{Src: conntrack.MustParseAddr("2001:db8::2"), Dst: conntrack.MustParseAddr("2001:db8::1"),
			SrcPort: 53, DstPort: 5353},
		Status:  conntrack.StatusConfirmed,
		Timeout: 30,
	},
}, {
	name: "icmp4 echo",
	flow: conntrack.Flow{
		ID: 3, Family: conntrack.IPv4, Proto: conntrack.ProtoICMP,
		Orig:        conntrack.Tuple{Src: conntrack.MustParseAddr("192.0.2.1"), Dst: conntrack.MustParseAddr("192.0.2.2")},
		Reply:       conntrack.Tuple{Src: conntrack.MustParseAddr("192.0.2.2"), Dst: conntrack.MustParseAddr("192.0.2.1")},
		ICMP:        conntrack.ICMP{ID: 4242, Type: 8},
		Status:      conntrack.StatusConfirmed | conntrack.StatusSeenReply,
		Timeout:     29,
		Start:       conntrack.StampOf(tsStart),
		HasCounters: true,
		OrigCount:   conntrack.Counter{Packets: 1, Bytes: 84},
		ReplyCount:  conntrack.Counter{Packets: 1, Bytes: 84},
	},
}, {
	name: "icmp6 echo",
	flow: conntrack.Flow{
		ID: 4, Family: conntrack.IPv6, Proto: conntrack.ProtoICMPv6,
		Orig:    conntrack.Tuple{Src: conntrack.MustParseAddr("2001:db8::1"), Dst: conntrack.MustParseAddr("2001:db8::2")},
		Reply:   conntrack.Tuple{Src: conntrack.MustParseAddr("2001:db8::2"), Dst: conntrack.MustParseAddr("2001:db8::1")},
		ICMP:    conntrack.ICMP{ID: 7, Type: 128, Code: 0},
		Status:  conntrack.StatusConfirmed,
		Timeout: 30,
	},
}, {
	name: "sctp state",
	flow: conntrack.Flow{
		ID: 5, Family: conntrack.IPv4, Proto: conntrack.ProtoSCTP,
		Orig:    conntrack.Tuple{Src: conntrack.MustParseAddr("10.0.0.1"), Dst: conntrack.MustParseAddr("10.0.0.2"), SrcPort: 1, DstPort: 2},
		Reply:   conntrack.Tuple{Src: conntrack.MustParseAddr("10.0.0.2"), Dst: conntrack.MustParseAddr("10.0.0.1"), SrcPort: 2, DstPort: 1},
		State:   4,
		Timeout: 100,
	},
}, {
	name: "dccp state",
	flow: conntrack.Flow{
		ID: 6, Family: conntrack.IPv6, Proto: conntrack.ProtoDCCP,
		Orig:    conntrack.Tuple{Src: conntrack.MustParseAddr("2001:db8::1"), Dst: conntrack.MustParseAddr("2001:db8::2"), SrcPort: 3, DstPort: 4},
		Reply:   conntrack.Tuple{Src: conntrack.MustParseAddr("2001:db8::2"), Dst: conntrack.MustParseAddr("2001:db8::1"), SrcPort: 4, DstPort: 3},
		State:   7,
		Timeout: 100,
	},
}}

func TestDecodeFlow(t *testing.T) {
	for _, tc := range decodeCases {
		t.Run(tc.name, func(t *testing.T) {
			var got conntrack.Flow
			stop, err := decodeFlow(encodeFlow(t, &tc.flow, tc.stop), &got)
			if err != nil {
				t.Fatalf("decodeFlow: %v", err)
			}
			if diff := cmp.Diff(tc.flow, got, cmpOpts); diff != "" {
				t.Errorf("flow (-want +got):\n%s", diff)
			}
			if !stop.Equal(tc.stop) {
				t.Errorf("stop = %v, want %v", stop, tc.stop)
			}
		})
	}
}

// TestDecodeFlowFillsEveryField guards against a field added to Flow that
// the decoder forgets: the first case must set every field but the rates
// and Seen, which come from the table, not the kernel, and ICMP, which a
// TCP flow has not (the ICMP cases check it).
func TestDecodeFlowFillsEveryField(t *testing.T) {
	v := reflect.ValueOf(decodeCases[0].flow)
	for i := 0; i < v.NumField(); i++ {
		name := v.Type().Field(i).Name
		if name == "OrigRate" || name == "ReplyRate" || name == "Seen" || name == "ICMP" {
			continue
		}
		if v.Field(i).IsZero() {
			t.Errorf("decodeCases[0] leaves Flow.%s zero: it does not test that the decoder fills it", name)
		}
	}
}

func TestDecodeFlowCounters32(t *testing.T) {
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.Nested(ctaCountersOrig, func(n *netlink.AttributeEncoder) error {
		n.Uint32(ctaCounters32Packets, 3)
		n.Uint32(ctaCounters32Bytes, 300)
		return nil
	})
	b, err := ae.Encode()
	if err != nil {
		t.Fatal(err)
	}
	var f conntrack.Flow
	if _, err := decodeFlow(append([]byte{byte(conntrack.IPv4), 0, 0, 0}, b...), &f); err != nil {
		t.Fatal(err)
	}
	if want := (conntrack.Counter{Packets: 3, Bytes: 300}); f.OrigCount != want || !f.HasCounters {
		t.Errorf("32-bit counters: got %+v (HasCounters %v), want %+v", f.OrigCount, f.HasCounters, want)
	}
}

// TestDecodeFlowAgreesWithTiMo decodes the same bytes with ti-mo/conntrack,
// whose decoder is the reference our faster one replaces.
func TestDecodeFlowAgreesWithTiMo(t *testing.T) {
	for _, tc := range decodeCases {
		t.Run(tc.name, func(t *testing.T) {
			data := encodeFlow(t, &tc.flow, tc.stop)
			var got conntrack.Flow
			stop, err := decodeFlow(data, &got)
			if err != nil {
				t.Fatal(err)
			}
			var ev tconntrack.Event
			msg := netlink.Message{
				Header: netlink.Header{Type: netlink.HeaderType(nfnlSubsysCTNetlink<<8 | ctMsgDelete)},
				Data:   data,
			}
			if err := ev.Unmarshal(msg); err != nil {
				t.Fatalf("ti-mo Unmarshal: %v", err)
			}
			ref := ev.Flow
			tuple := func(tt tconntrack.Tuple) conntrack.Tuple {
				p := tt.Proto
				return conntrack.Tuple{Src: conntrack.AddrFrom(tt.IP.SourceAddress), Dst: conntrack.AddrFrom(tt.IP.DestinationAddress),
					SrcPort: p.SourcePort, DstPort: p.DestinationPort}
			}
			var refStart, refStop time.Time
			if !ref.Timestamp.Start.IsZero() && ref.Timestamp.Start.UnixNano() != 0 {
				refStart = ref.Timestamp.Start
			}
			if !ref.Timestamp.Stop.IsZero() && ref.Timestamp.Stop.UnixNano() != 0 {
				refStop = ref.Timestamp.Stop
			}
			var state uint8
			switch pi := ref.ProtoInfo; {
			case pi.TCP != nil:
				state = pi.TCP.State
			case pi.SCTP != nil:
				state = pi.SCTP.State
			case pi.DCCP != nil:
				state = pi.DCCP.State
			}
			var labels conntrack.Labels
			copy(labels[:], ref.Labels)
			var ic conntrack.ICMP
			if p := ref.TupleOrig.Proto; p.ICMPv4 || p.ICMPv6 {
				ic = conntrack.ICMP{ID: p.ICMPID, Type: p.ICMPType, Code: p.ICMPCode}
			}
			want := conntrack.Flow{
				ID: ref.ID, Family: got.Family, Proto: conntrack.Proto(ref.TupleOrig.Proto.Protocol),
				Orig: tuple(ref.TupleOrig), Reply: tuple(ref.TupleReply),
				State: state, Status: conntrack.Status(ref.Status), Mark: ref.Mark, Zone: ref.Zone,
				Labels: conntrack.RefLabels(labels), ICMP: ic, Timeout: ref.Timeout, Start: conntrack.StampOf(refStart),
				HasCounters: got.HasCounters,
				OrigCount:   conntrack.Counter{Packets: ref.CountersOrig.Packets, Bytes: ref.CountersOrig.Bytes},
				ReplyCount:  conntrack.Counter{Packets: ref.CountersReply.Packets, Bytes: ref.CountersReply.Bytes},
			}
			if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
				t.Errorf("ours vs ti-mo (-ti-mo +ours):\n%s", diff)
			}
			if !stop.Equal(refStop) {
				t.Errorf("stop = %v, ti-mo says %v", stop, refStop)
			}
		})
	}
}

// topBoundaries lists the lengths at which a message body ends cleanly
// after a whole top-level attribute, with all, some or none of its padding.
func topBoundaries(data []byte) map[int]bool {
	ends := map[int]bool{nfgenmsgLen: true}
	for off := nfgenmsgLen; off+4 <= len(data); {
		l := int(binary.NativeEndian.Uint16(data[off:]))
		for n := off + l; n <= off+(l+3)&^3; n++ {
			ends[n] = true
		}
		off += (l + 3) &^ 3
	}
	return ends
}

func TestDecodeFlowTruncated(t *testing.T) {
	for _, tc := range decodeCases {
		data := encodeFlow(t, &tc.flow, tc.stop)
		clean := topBoundaries(data)
		for n := 0; n < len(data); n++ {
			var f conntrack.Flow
			_, err := decodeFlow(data[:n], &f)
			if clean[n] {
				if err != nil {
					t.Errorf("%s: cut at attribute boundary %d: %v", tc.name, n, err)
				}
				continue
			}
			if err == nil {
				t.Errorf("%s: truncated to %d of %d bytes: no error", tc.name, n, len(data))
			}
		}
	}
}

func TestDecodeFlowGarbage(t *testing.T) {
	hdr := []byte{byte(conntrack.IPv4), 0, 0, 0}
	attr := func(typ uint16, val ...byte) []byte {
		b := make([]byte, 4, 4+len(val))
		binary.NativeEndian.PutUint16(b, uint16(4+len(val)))
		binary.NativeEndian.PutUint16(b[2:], typ)
		return append(b, val...)
	}
	// An inner attribute claiming 200 bytes inside a 12-byte nest.
	badInner := []byte{200, 0, 1, 0, 0, 0, 0, 0}
	cases := map[string][]byte{
		"empty":              nil,
		"short header":       {2, 0, 0},
		"unknown family":     {7, 0, 0, 0},
		"attr len below 4":   append(hdr, 2, 0, 1, 0),
		"attr len too long":  append(hdr, 40, 0, 3, 0, 0, 0, 0, 0),
		"bad tuple":          append(hdr, attr(ctaTupleOrig|netlink.Nested, badInner...)...),
		"bad ip in tuple":    append(hdr, attr(ctaTupleOrig|netlink.Nested, attr(ctaTupleIP, badInner...)...)...),
		"bad proto in tuple": append(hdr, attr(ctaTupleReply|netlink.Nested, attr(ctaTupleProto, badInner...)...)...),
		"bad counters":       append(hdr, attr(ctaCountersOrig|netlink.Nested, badInner...)...),
		"bad timestamp":      append(hdr, attr(ctaTimestamp|netlink.Nested, badInner...)...),
		"bad protoinfo":      append(hdr, attr(ctaProtoinfo|netlink.Nested, badInner...)...),
	}
	for name, data := range cases {
		var f conntrack.Flow
		if _, err := decodeFlow(data, &f); err == nil {
			t.Errorf("%s: no error (flow %+v)", name, f)
		}
	}
}

func FuzzDecodeFlow(f *testing.F) {
	for _, tc := range decodeCases {
		f.Add(encodeFlow(f, &tc.flow, tc.stop))
	}
	f.Add([]byte{2, 0, 0, 0, 4, 0, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		var a, b conntrack.Flow
		_, errA := decodeFlow(data, &a)
		_, errB := decodeFlow(data, &b)
		if (errA == nil) != (errB == nil) || !cmp.Equal(a, b, cmpOpts) {
			t.Fatalf("decoding the same bytes twice differs")
		}
		if errA == nil && a.Family != conntrack.IPv4 && a.Family != conntrack.IPv6 {
			t.Fatalf("accepted family %d", a.Family)
		}
	})
}
