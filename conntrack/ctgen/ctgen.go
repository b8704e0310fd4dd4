// Package ctgen creates conntrack entries through ctnetlink, fast enough
// for a burst (tens of thousands per second): the tests and the benchmark
// use it to fill a namespace's table without sending a packet.
package ctgen

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// CreateUDPFlows creates n UDP flows in the namespace whose file is nsFd.
func CreateUDPFlows(nsFd int, n int) error {
	msgs, err := UDPFlowMessages(n)
	if err != nil {
		return err
	}
	return SendBatched(nsFd, msgs)
}

// UDPFlowMessages returns ctnetlink NEW requests for n UDP flows,
// alternately IPv4 and IPv6, with distinct ports, a 60 s timeout and status
// CONFIRMED. Addresses are from the documentation ranges: no packet is
// ever sent.
func UDPFlowMessages(n int) ([]netlink.Message, error) {
	srcs := []netip.Addr{netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("2001:db8:1::1")}
	dsts := []netip.Addr{netip.MustParseAddr("198.51.100.2"), netip.MustParseAddr("2001:db8:1::2")}
	msgs := make([]netlink.Message, n)
	for i := range msgs {
		v6 := i % 2
		var err error
		if msgs[i], err = ctNewMessage(srcs[v6], dsts[v6], uint16(1024+i/2%60000), uint16(53+i/2/60000)); err != nil {
			return nil, err
		}
	}
	return msgs, nil
}

// SendBatched sends ctnetlink requests to the namespace nsFd. ti-mo's
// Conn.Create waits for an ACK per flow: about 8,000 flows/s in a -race
// test binary on a busy 2-core machine (20-40k/s without), no burst. Here the requests go out
// a thousand per sendmsg and only the last one asks for an ACK: the kernel
// handles the messages of one sendmsg in order before it returns, and
// reports a failure as an error message that Receive returns.
func SendBatched(nsFd int, msgs []netlink.Message) error {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: nsFd})
	if err != nil {
		return err
	}
	defer c.Close()
	return SendBatchedOn(c, msgs)
}

// SendBatchedOn is SendBatched on a connection the caller keeps (one that
// sends requests over and over, as flowtop-bench's churn does).
func SendBatchedOn(c *netlink.Conn, msgs []netlink.Message) error {
	if len(msgs) == 0 {
		return nil
	}
	msgs[len(msgs)-1].Header.Flags |= netlink.Acknowledge
	var last netlink.Message
	for batch := range slices.Chunk(msgs, 1000) {
		sent, err := c.SendMessages(batch)
		if err != nil {
			return fmt.Errorf("send ctnetlink requests: %w", err)
		}
		last = sent[len(sent)-1]
	}
	// A busy machine is slow to answer a thousand requests at once.
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		replies, err := c.Receive()
		if err != nil {
			return fmt.Errorf("ctnetlink: %w", err)
		}
		for _, r := range replies {
			if r.Header.Sequence == last.Header.Sequence {
				return nil
			}
		}
	}
}

// ctnetlink attribute types (linux/netfilter/nfnetlink_conntrack.h).
const (
	ctaTupleOrig    = 1
	ctaTupleReply   = 2
	ctaStatus       = 3
	ctaTimeout      = 7
	ctaTupleIP      = 1
	ctaTupleProto   = 2
	ctaIPv4Src      = 1
	ctaIPv4Dst      = 2
	ctaIPv6Src      = 3
	ctaIPv6Dst      = 4
	ctaProtoNum     = 1
	ctaProtoSrcPort = 2
	ctaProtoDstPort = 3
	ipsConfirmed    = 1 << 3
)

// ctNewMessage is a ctnetlink IPCTNL_MSG_CT_NEW request creating a UDP flow.
func ctNewMessage(src, dst netip.Addr, sport, dport uint16) (netlink.Message, error) {
	tuple := func(src, dst netip.Addr, sport, dport uint16) func(*netlink.AttributeEncoder) error {
		return func(ae *netlink.AttributeEncoder) error {
			ae.Nested(ctaTupleIP, func(ae *netlink.AttributeEncoder) error {
				if src.Is4() {
					ae.Bytes(ctaIPv4Src, src.AsSlice())
					ae.Bytes(ctaIPv4Dst, dst.AsSlice())
				} else {
					ae.Bytes(ctaIPv6Src, src.AsSlice())
					ae.Bytes(ctaIPv6Dst, dst.AsSlice())
				}
				return nil
			})
			ae.Nested(ctaTupleProto, func(ae *netlink.AttributeEncoder) error {
				ae.Uint8(ctaProtoNum, unix.IPPROTO_UDP)
				ae.Uint16(ctaProtoSrcPort, sport)
				ae.Uint16(ctaProtoDstPort, dport)
				return nil
			})
			return nil
		}
	}
	ae := netlink.NewAttributeEncoder()
	ae.ByteOrder = binary.BigEndian
	ae.Nested(ctaTupleOrig, tuple(src, dst, sport, dport))
	ae.Nested(ctaTupleReply, tuple(dst, src, dport, sport))
	ae.Uint32(ctaStatus, ipsConfirmed)
	ae.Uint32(ctaTimeout, 60)
	attrs, err := ae.Encode()
	if err != nil {
		return netlink.Message{}, err
	}
	family := byte(unix.AF_INET)
	if src.Is6() {
		family = unix.AF_INET6
	}
	return netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(nfnlSubsysCTNetlink<<8 | ipctnlMsgCTNew),
			Flags: netlink.Request | netlink.Create | netlink.Excl,
		},
		// nfgenmsg: family, version 0, resource id 0.
		Data: append([]byte{family, 0, 0, 0}, attrs...),
	}, nil
}

const (
	nfnlSubsysCTNetlink = 1
	ipctnlMsgCTNew      = 0
)
