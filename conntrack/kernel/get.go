package kernel

import (
	"encoding/binary"
	"fmt"
	"github.com/flowtop/flowtop/conntrack"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// getBatch is how many GET requests go out in one sendmsg. The kernel
// queues all the answers (some 300 bytes each) before flowtop reads one,
// so a batch must fit the socket's receive buffer (208 KiB by default)
// with room to spare.
const getBatch = 128

const (
	nlaFNested   = 0x8000
	nfnetlinkV0  = 0
	getSeqOrigin = 1 << 30 // GET sequence numbers stay clear of the dump's
)

// Get reads the current state of the given flows, one ctnetlink GET per
// flow sent in batches: how a table too big to dump every interval keeps
// its busiest flows fresh in between. fn is called with the kernel's
// answer for each flow it still holds (the Flow is reused, as with Dump);
// a flow the kernel no longer holds is skipped, its DESTROY event or the
// next dump removes it. Called from the goroutine that dumps, never during
// a dump.
func (s *Source) Get(flows []*conntrack.Flow, fn func(*conntrack.Flow)) error {
	r := s.dumpRecv.r
	var firstErr error
	var f conntrack.Flow
	for len(flows) > 0 {
		batch := flows[:min(len(flows), getBatch)]
		flows = flows[len(batch):]
		// Sequence numbers run over [getSeqOrigin, 2·getSeqOrigin) and
		// wrap there: never 0, which netlink would replace with its own.
		s.getSeq = (s.getSeq + 1) % (getSeqOrigin / getBatch)
		first := getSeqOrigin + s.getSeq*getBatch
		// The bodies go into one reused buffer; the messages slice it once
		// it no longer grows.
		s.getBuf = s.getBuf[:0]
		ends := make([]int, len(batch))
		for i, fl := range batch {
			s.getBuf = appendGetRequest(s.getBuf, fl)
			ends[i] = len(s.getBuf)
		}
		msgs := make([]netlink.Message, len(batch))
		for i := range batch {
			start := 0
			if i > 0 {
				start = ends[i-1]
			}
			msgs[i] = netlink.Message{
				Header: netlink.Header{Type: netlink.HeaderType(nfnlSubsysCTNetlink<<8 | ctMsgGet),
					Flags: netlink.Request, Sequence: first + uint32(i)},
				Data: s.getBuf[start:ends[i]],
			}
		}
		// One sendmsg for the batch.
		if _, err := s.dump.SendMessages(msgs); err != nil {
			return fmt.Errorf("request conntrack flows: %w", permission(err))
		}
		pending := len(batch)
		for pending > 0 {
			err := r.readAnswers(func(h nlHeader, data []byte, errno unix.Errno) error {
				if h.Seq < first || h.Seq >= first+uint32(len(batch)) {
					return nil // an answer to an earlier, abandoned request
				}
				pending--
				switch {
				case h.Type == nlmsgError:
					if errno != unix.ENOENT && firstErr == nil {
						firstErr = fmt.Errorf("get flow %d: %w", batch[h.Seq-first].ID, errno)
					}
				case h.Type == nfnlSubsysCTNetlink<<8|ctMsgNew:
					f = conntrack.Flow{}
					if _, err := decodeFlow(data, &f); err != nil {
						return fmt.Errorf("decode conntrack flow: %w", err)
					}
					fn(&f)
				}
				return nil
			})
			if err != nil {
				return fmt.Errorf("read conntrack flows: %w", permission(err))
			}
		}
	}
	return firstErr
}

// appendGetRequest appends the body of an IPCTNL_MSG_CT_GET request
// (netfilter header and attributes) for f's original tuple and zone to b.
func appendGetRequest(b []byte, f *conntrack.Flow) []byte {
	b = append(b, byte(f.Family), nfnetlinkV0, 0, 0)

	tuple := beginNested(&b, ctaTupleOrig)
	ip := beginNested(&b, ctaTupleIP)
	if f.Family == conntrack.IPv4 {
		src, dst := f.Orig.Src.As4(), f.Orig.Dst.As4()
		b = appendAttr(b, ctaIPv4Src, src[:])
		b = appendAttr(b, ctaIPv4Dst, dst[:])
	} else {
		src, dst := f.Orig.Src.As16(), f.Orig.Dst.As16()
		b = appendAttr(b, ctaIPv6Src, src[:])
		b = appendAttr(b, ctaIPv6Dst, dst[:])
	}
	endNested(b, ip)
	proto := beginNested(&b, ctaTupleProto)
	b = appendAttr(b, ctaProtoNum, []byte{byte(f.Proto)})
	switch f.Proto {
	case conntrack.ProtoICMP:
		b = appendAttr(b, ctaProtoICMPID, binary.BigEndian.AppendUint16(nil, f.ICMP.ID))
		b = appendAttr(b, ctaProtoICMPType, []byte{f.ICMP.Type})
		b = appendAttr(b, ctaProtoICMPCode, []byte{f.ICMP.Code})
	case conntrack.ProtoICMPv6:
		b = appendAttr(b, ctaProtoICMPv6ID, binary.BigEndian.AppendUint16(nil, f.ICMP.ID))
		b = appendAttr(b, ctaProtoICMPv6Type, []byte{f.ICMP.Type})
		b = appendAttr(b, ctaProtoICMPv6Code, []byte{f.ICMP.Code})
	case conntrack.ProtoTCP, conntrack.ProtoUDP, conntrack.ProtoUDPLite, conntrack.ProtoSCTP, conntrack.ProtoDCCP, conntrack.ProtoGRE:
		b = appendAttr(b, ctaProtoSrcPort, binary.BigEndian.AppendUint16(nil, f.Orig.SrcPort))
		b = appendAttr(b, ctaProtoDstPort, binary.BigEndian.AppendUint16(nil, f.Orig.DstPort))
	}
	endNested(b, proto)
	endNested(b, tuple)
	if f.Zone != 0 {
		b = appendAttr(b, ctaZone, binary.BigEndian.AppendUint16(nil, f.Zone))
	}
	return b
}

// appendAttr appends one netlink attribute, padded to 4 bytes.
func appendAttr(b []byte, typ uint16, v []byte) []byte {
	b = binary.NativeEndian.AppendUint16(b, uint16(4+len(v)))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, v...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

// beginNested starts a nested attribute and returns where it begins, for
// endNested to write its length.
func beginNested(b *[]byte, typ uint16) int {
	at := len(*b)
	*b = binary.NativeEndian.AppendUint16(*b, 0)
	*b = binary.NativeEndian.AppendUint16(*b, typ|nlaFNested)
	return at
}

func endNested(b []byte, at int) {
	binary.NativeEndian.PutUint16(b[at:], uint16(len(b)-at))
}

// readAnswers reads one datagram and calls fn for each message in it,
// NLMSG_ERROR ones included (with their error number): unlike a dump, the
// answers to a batch of requests go on after one of them failed.
func (r *receiver) readAnswers(fn func(h nlHeader, data []byte, errno unix.Errno) error) error {
	n, err := r.recv(r.buf)
	if err != nil {
		return err
	}
	return walkMessages(r.buf[:n], func(h nlHeader, data []byte) error {
		var errno unix.Errno
		if h.Type == nlmsgError {
			errno = messageErrno(data)
		}
		return fn(h, data, errno)
	})
}
