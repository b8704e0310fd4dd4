package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mdlayher/netlink"

	"github.com/flowtop/flowtop/conntrack/ctgen"
	"golang.org/x/sys/unix"
)

// benchFlow is the UDP flow number i of a bench table: 198.18.0.0/15 is
// the benchmarking range, and no packet is ever sent. Numbers below 2^24
// give distinct flows.
func benchFlow(i int) (src, dst netip.Addr, sport, dport uint16) {
	src = netip.AddrFrom4([4]byte{198, 18, byte(i >> 16), byte(i >> 8)})
	dst = netip.AddrFrom4([4]byte{198, 19, byte(i), 1})
	return src, dst, uint16(1024 + i%60000), 53
}

// ctnetlink message types and attributes
// (linux/netfilter/nfnetlink_conntrack.h).
const (
	ctMsgNew        = 1<<8 | 0 // NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_NEW
	ctMsgDelete     = 1<<8 | 2 // IPCTNL_MSG_CT_DELETE, also the DESTROY event
	ctaTupleOrig    = 1
	ctaTupleReply   = 2
	ctaStatus       = 3
	ctaTimeout      = 7
	ctaTupleIP      = 1
	ctaTupleProto   = 2
	ctaIPv4Src      = 1
	ctaIPv4Dst      = 2
	ctaProtoNum     = 1
	ctaProtoSrcPort = 2
	ctaProtoDstPort = 3
	ipsConfirmed    = 1 << 3
	// nfnlGroupDestroy is NFNLGRP_CONNTRACK_DESTROY.
	nfnlGroupDestroy = 3
)

// ctRequest is a ctnetlink request about bench flow i: a NEW that creates
// it with the given timeout, or (timeout 0) a DELETE.
func ctRequest(i int, timeout time.Duration) (netlink.Message, error) {
	src, dst, sport, dport := benchFlow(i)
	tuple := func(src, dst netip.Addr, sport, dport uint16) func(*netlink.AttributeEncoder) error {
		return func(ae *netlink.AttributeEncoder) error {
			ae.Nested(ctaTupleIP, func(ae *netlink.AttributeEncoder) error {
				ae.Bytes(ctaIPv4Src, src.AsSlice())
				ae.Bytes(ctaIPv4Dst, dst.AsSlice())
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
	typ, flags := netlink.HeaderType(ctMsgDelete), netlink.Request
	if timeout > 0 {
		typ, flags = ctMsgNew, netlink.Request|netlink.Create|netlink.Excl
		ae.Nested(ctaTupleReply, tuple(dst, src, dport, sport))
		ae.Uint32(ctaStatus, ipsConfirmed)
		ae.Uint32(ctaTimeout, uint32(timeout/time.Second))
	}
	attrs, err := ae.Encode()
	if err != nil {
		return netlink.Message{}, err
	}
	return netlink.Message{
		Header: netlink.Header{Type: typ, Flags: flags},
		// nfgenmsg: family, version 0, resource id 0.
		Data: append([]byte{unix.AF_INET, 0, 0, 0}, attrs...),
	}, nil
}

// dialCT opens a ctnetlink socket in the namespace x.
func dialCT(x *ns, groups ...uint32) (*netlink.Conn, error) {
	f, err := os.Open(x.path())
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, &netlink.Config{NetNS: int(f.Fd())})
	if err != nil {
		return nil, fmt.Errorf("dial ctnetlink: %w", err)
	}
	for _, g := range groups {
		if err := c.JoinGroup(g); err != nil {
			c.Close()
			return nil, fmt.Errorf("join ctnetlink group %d: %w", g, err)
		}
	}
	return c, nil
}

// requests returns the requests for bench flows first..first+n-1.
func requests(first, n int, timeout time.Duration) ([]netlink.Message, error) {
	msgs := make([]netlink.Message, 0, n)
	for i := first; i < first+n; i++ {
		m, err := ctRequest(i, timeout)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}

// churnTable keeps a bench table at a constant size while flows end: it
// holds flows [lo, hi), and churn deletes the oldest and creates as many
// new ones.
type churnTable struct {
	x      *ns
	c      *netlink.Conn
	lo, hi int
}

// flowTimeout is the timeout of the flows a churn table creates: longer
// than any run, so that only the deletes end flows.
const flowTimeout = 30 * time.Minute

func newChurnTable(x *ns, n int) (*churnTable, error) {
	c, err := dialCT(x)
	if err != nil {
		return nil, err
	}
	t := &churnTable{x: x, c: c}
	if err := t.create(n); err != nil {
		c.Close()
		return nil, err
	}
	return t, nil
}

func (t *churnTable) close() { t.c.Close() }

func (t *churnTable) create(n int) error {
	msgs, err := requests(t.hi, n, flowTimeout)
	if err != nil {
		return err
	}
	if err := ctgen.SendBatchedOn(t.c, msgs); err != nil {
		return fmt.Errorf("create flows %d-%d: %w", t.hi, t.hi+n-1, err)
	}
	t.hi += n
	return nil
}

// replace deletes the n oldest flows and creates n new ones.
func (t *churnTable) replace(n int) error {
	dels, err := requests(t.lo, n, 0)
	if err != nil {
		return err
	}
	if err := ctgen.SendBatchedOn(t.c, dels); err != nil {
		return fmt.Errorf("delete flows %d-%d: %w", t.lo, t.lo+n-1, err)
	}
	t.lo += n
	return t.create(n)
}

// churn ends rate flows a second (and creates as many) in steps of 100 ms
// until stop is closed; it returns how many it ended.
func (t *churnTable) churn(rate int, stop <-chan struct{}) (int, error) {
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	start, done := time.Now(), 0
	for {
		select {
		case <-stop:
			return done, nil
		case <-tick.C:
		}
		due := int(time.Since(start).Seconds()*float64(rate)) - done
		if due <= 0 {
			continue
		}
		if err := t.replace(due); err != nil {
			return done, err
		}
		done += due
	}
}

// destroyCounter counts the DESTROY events the kernel sends in a
// namespace, as a listener with a 64 MiB buffer receives them.
type destroyCounter struct {
	c                *netlink.Conn
	events, overruns atomic.Uint64
	wg               sync.WaitGroup
}

func countDestroys(x *ns) (*destroyCounter, error) {
	c, err := dialCT(x, nfnlGroupDestroy)
	if err != nil {
		return nil, err
	}
	if err := c.SetReadBuffer(64 << 20); err != nil {
		c.Close()
		return nil, fmt.Errorf("event buffer: %w", err)
	}
	d := &destroyCounter{c: c}
	d.wg.Go(func() {
		for {
			msgs, err := c.Receive()
			if errors.Is(err, unix.ENOBUFS) {
				d.overruns.Add(1)
				continue
			}
			if err != nil {
				return // closed
			}
			for _, m := range msgs {
				if m.Header.Type == ctMsgDelete {
					d.events.Add(1)
				}
			}
		}
	})
	return d, nil
}

// stop ends the listener once it has read what is queued: it returns when
// no event came for a second.
func (d *destroyCounter) stop() {
	for last := d.events.Load(); ; {
		time.Sleep(time.Second)
		now := d.events.Load()
		if now == last {
			break
		}
		last = now
	}
	d.c.SetReadDeadline(time.Now())
	d.wg.Wait()
	d.c.Close()
}
