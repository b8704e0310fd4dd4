package kernel

import (
	"context"
	"errors"
	"fmt"
	"github.com/flowtop/flowtop/conntrack"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/mdlayher/netlink"
	tconntrack "github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"
)

// ctnetlink message types and groups (linux/netfilter/nfnetlink*.h).
const (
	nfnlSubsysCTNetlink = 1
	ctMsgNew            = 0
	ctMsgGet            = 1
	ctMsgDelete         = 2

	groupNew     = 1 << 0
	groupUpdate  = 1 << 1
	groupDestroy = 1 << 2

	nlmFDumpIntr = 0x10 // NLM_F_DUMP_INTR: the table changed during the dump

	// eventBuffer is the event socket's receive buffer. 64 MiB holds the
	// events of a burst of 50,000 new flows (the default 208 KiB overruns
	// within half a second).
	eventBuffer = 64 << 20
)

// ErrPermission is returned when reading conntrack lacks privilege.
var ErrPermission = errors.New("reading the conntrack table needs CAP_NET_ADMIN (run flowtop as root or grant it the capability)")

// Source talks to the kernel: streamed dumps, the event stream and
// deletion. It holds one netlink socket for dumps and one for events,
// because a socket that listens cannot also answer requests.
type Source struct {
	netns  string
	nsFile *os.File // nil for flowtop's own namespace
	dump   *netlink.Conn
	events *netlink.Conn
	// Receive buffers per socket, each used by one goroutine at a time:
	// dumps by the table's goroutine (and its reader), events by the
	// listener.
	dumpRecv  *dumpReceiver
	eventRecv *receiver
	dumps     int // dumps requested so far
	// Get's request buffer and batch counter (dump goroutine only).
	getBuf []byte
	getSeq uint32
}

// NetnsPath turns a --netns value into a path: a bare name is one made by
// `ip netns add` under /var/run/netns; anything with a slash is a path
// (e.g. /proc/PID/ns/net).
func NetnsPath(netns string) string {
	if netns == "" || strings.Contains(netns, "/") {
		return netns
	}
	return filepath.Join("/var/run/netns", netns)
}

// Open dials ctnetlink in the given network namespace ("" for flowtop's
// own; see NetnsPath) and subscribes to events.
func Open(netns string) (*Source, error) {
	s := &Source{netns: netns}
	if path := NetnsPath(netns); path != "" {
		f, err := os.Open(path)
		if err != nil {
			return nil, fmt.Errorf("network namespace %q: %w", netns, err)
		}
		s.nsFile = f
	}
	var err error
	if s.dump, err = netlink.Dial(unix.NETLINK_NETFILTER, s.config(0)); err != nil {
		s.Close()
		return nil, fmt.Errorf("dial ctnetlink: %w", permission(err))
	}
	s.events, err = netlink.Dial(unix.NETLINK_NETFILTER, s.config(groupNew|groupUpdate|groupDestroy))
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("subscribe to conntrack events: %w", permission(err))
	}
	if err := s.events.SetReadBuffer(eventBuffer); err != nil {
		s.Close()
		return nil, fmt.Errorf("size the conntrack event buffer: %w", err)
	}
	dumpRecv, err := newReceiver(s.dump)
	if err == nil {
		s.dumpRecv = newDumpReceiver(dumpRecv)
		s.eventRecv, err = newReceiver(s.events)
	}
	if err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Source) config(groups uint32) *netlink.Config {
	c := &netlink.Config{Groups: groups}
	if s.nsFile != nil {
		c.NetNS = int(s.nsFile.Fd())
	}
	return c
}

// NetnsFile is the open namespace file, nil for flowtop's own namespace.
func (s *Source) NetnsFile() *os.File { return s.nsFile }

// permission turns EPERM into ErrPermission so the user is told which
// capability is missing.
func permission(err error) error {
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		return ErrPermission
	}
	return err
}

// Dump streams the whole table: fn is called once per flow, with a Flow
// that is reused for the next one (copy what you keep). It reports whether
// the kernel flagged the dump as interrupted by concurrent changes
// (NLM_F_DUMP_INTR), in which case it may have missed flows.
func (s *Source) Dump(fn func(*conntrack.Flow)) (interrupted bool, err error) {
	var f conntrack.Flow
	return s.dumpMessages(func(data []byte) error {
		f = conntrack.Flow{}
		if _, err := decodeFlow(data, &f); err != nil {
			return fmt.Errorf("decode conntrack dump: %w", err)
		}
		fn(&f)
		return nil
	})
}

// DumpRaw reads the whole table without decoding it and returns the number
// of flows: the cost of the kernel and the socket alone, the floor that
// flowtop-bench compares against.
func (s *Source) DumpRaw() (flows int, err error) {
	_, err = s.dumpMessages(func([]byte) error { flows++; return nil })
	return flows, err
}

// dumpMessages requests a dump and hands each flow message's body to fn.
func (s *Source) dumpMessages(fn func(data []byte) error) (interrupted bool, err error) {
	req := netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(nfnlSubsysCTNetlink<<8 | ctMsgGet),
			Flags: netlink.Request | netlink.Dump,
		},
		Data: []byte{unix.AF_UNSPEC, 0, 0, 0},
	}
	sent, err := s.dump.Send(req)
	if err != nil {
		return false, fmt.Errorf("request conntrack dump: %w", permission(err))
	}
	handle := func(h nlHeader, data []byte) error {
		if h.Seq != sent.Header.Sequence {
			return nil // left over from an earlier, aborted dump
		}
		if h.Flags&nlmFDumpIntr != 0 {
			interrupted = true
		}
		if h.Type != nfnlSubsysCTNetlink<<8|ctMsgNew {
			return nil
		}
		return fn(data)
	}
	// The first dump is the one a user waits for (flowtop --once, the first
	// screen): it reads on a second goroutine so that the kernel's work and
	// decoding overlap. Later dumps are background refreshes, where the
	// hand-overs between two goroutines would cost more CPU than the
	// latency they save is worth.
	if s.dumps++; s.dumps == 1 {
		err = s.dumpRecv.readDump(handle)
	} else {
		for err = nil; err == nil; {
			err = s.dumpRecv.r.read(handle)
		}
	}
	if errors.Is(err, errDumpDone) {
		return interrupted, nil
	}
	return interrupted, fmt.Errorf("read conntrack dump: %w", permission(err))
}

// Listen reads events until ctx ends or Close is called, sending each to
// out. A receive-buffer overrun is sent as an EventOverrun and reading goes
// on: the table repairs itself with a fresh dump.
func (s *Source) Listen(ctx context.Context, out chan<- conntrack.Event) error {
	stop := context.AfterFunc(ctx, func() { s.events.SetReadDeadline(time.Unix(1, 0)) })
	defer stop()
	send := func(ev conntrack.Event) error {
		select {
		case out <- ev:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	handle := func(h nlHeader, data []byte) error {
		ev, ok := decodeEvent(h, data)
		if !ok {
			return nil
		}
		return send(ev)
	}
	for {
		err := s.eventRecv.read(handle)
		switch {
		case err == nil:
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, unix.ENOBUFS):
			// The kernel dropped events: say so, the table resyncs.
			if send(conntrack.Event{Type: conntrack.EventOverrun, Err: err}) != nil {
				return nil
			}
		case errors.Is(err, os.ErrClosed):
			return nil
		default:
			return fmt.Errorf("read conntrack events: %w", err)
		}
	}
}

func decodeEvent(h nlHeader, data []byte) (conntrack.Event, bool) {
	var ev conntrack.Event
	if h.Type>>8 != nfnlSubsysCTNetlink {
		return ev, false
	}
	switch h.Type & 0xff {
	case ctMsgNew:
		ev.Type = conntrack.EventUpdate
		if h.Flags&uint16(netlink.Create|netlink.Excl) != 0 {
			ev.Type = conntrack.EventNew
		}
	case ctMsgDelete:
		ev.Type = conntrack.EventDestroy
	default:
		return ev, false
	}
	stop, err := decodeFlow(data, &ev.Flow)
	if err != nil {
		return ev, false
	}
	ev.Stop = stop
	if ev.Type == conntrack.EventUpdate {
		ev.NoState = !hasAttr(data, ctaProtoinfo)
		ev.NoLabels = !hasAttr(data, ctaLabels)
	}
	return ev, true
}

// Delete removes a flow from the kernel's table, as `conntrack -D` does.
func (s *Source) Delete(f *conntrack.Flow) error {
	c, err := tconntrack.Dial(s.config(0))
	if err != nil {
		return fmt.Errorf("dial ctnetlink: %w", permission(err))
	}
	defer c.Close()
	tf := tconntrack.NewFlow(uint8(f.Proto), 0, f.Orig.Src.IP(), f.Orig.Dst.IP(), f.Orig.SrcPort, f.Orig.DstPort, 0, 0)
	if f.Proto == conntrack.ProtoICMP || f.Proto == conntrack.ProtoICMPv6 {
		// Keep the reply tuple: ti-mo picks the message's address family
		// from both tuples, and an IPv6 flow sent as AF_INET is EINVAL.
		// The kernel finds the flow by the original tuple alone, so the
		// reply's may carry the original's id, type and code.
		for _, p := range []*tconntrack.ProtoTuple{&tf.TupleOrig.Proto, &tf.TupleReply.Proto} {
			p.ICMPv4, p.ICMPv6 = f.Proto == conntrack.ProtoICMP, f.Proto == conntrack.ProtoICMPv6
			p.ICMPID, p.ICMPType, p.ICMPCode = f.ICMP.ID, f.ICMP.Type, f.ICMP.Code
		}
	}
	tf.Zone = f.Zone
	if err := c.Delete(tf); err != nil {
		return fmt.Errorf("delete flow %d: %w", f.ID, permission(err))
	}
	return nil
}

// Close closes both sockets and the namespace file.
func (s *Source) Close() error {
	var errs []error
	if s.events != nil {
		errs = append(errs, s.events.Close())
	}
	if s.dump != nil {
		errs = append(errs, s.dump.Close())
	}
	if s.nsFile != nil {
		errs = append(errs, s.nsFile.Close())
	}
	return errors.Join(errs...)
}
