package procs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// sock_diag constants (linux/sock_diag.h, linux/inet_diag.h).
const (
	sockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY
	inetDiagReqLen   = 56 // sizeof(struct inet_diag_req_v2)
	inetDiagMsgLen   = 72 // sizeof(struct inet_diag_msg)
	inetDiagNoCookie = ^uint32(0)
	tcpListen        = 10 // TCP_LISTEN, as idiag_state reports it
)

// sockQuery asks the kernel for the socket that would receive a packet
// from Remote to Local: the connected socket when there is one, else
// (TCP) the listener or (UDP) the unconnected socket bound to Local's
// port. Remote may be the zero address and port 0 to skip connected
// sockets altogether.
type sockQuery struct {
	Family uint8 // unix.AF_INET or AF_INET6
	Proto  uint8 // unix.IPPROTO_TCP or IPPROTO_UDP
	Local  netip.AddrPort
	Remote netip.AddrPort
}

// sockInfo is the part of an inet_diag_msg flowtop uses.
type sockInfo struct {
	Family uint8
	State  uint8
	Local  netip.AddrPort
	Remote netip.AddrPort
	UID    uint32
	Inode  uint64
}

// connected reports whether the socket has a remote end, i.e. it is not
// a listener or an unconnected UDP socket that matched by local port.
func (s sockInfo) connected() bool {
	return s.Remote.Port() != 0 || (s.Remote.Addr().IsValid() && !s.Remote.Addr().IsUnspecified())
}

// encodeSockQuery builds an inet_diag_req_v2 for an exact lookup
// (idiag_cookie = INET_DIAG_NOCOOKIE, so the kernel matches by tuple).
//
// For TCP the kernel reads id.src as the socket's local end; udp_dump_one
// passes id.src as the packet's source, i.e. the remote end, so for UDP
// the two ends are swapped.
func encodeSockQuery(q sockQuery) []byte {
	b := make([]byte, inetDiagReqLen)
	b[0] = q.Family
	b[1] = q.Proto
	// b[2] idiag_ext = 0: no extensions wanted, b[3] pad.
	binary.NativeEndian.PutUint32(b[4:8], ^uint32(0)) // idiag_states: all
	src, dst := q.Local, q.Remote
	if q.Proto != unix.IPPROTO_TCP {
		src, dst = dst, src
	}
	binary.BigEndian.PutUint16(b[8:10], src.Port())
	binary.BigEndian.PutUint16(b[10:12], dst.Port())
	putAddr(b[12:28], src.Addr(), q.Family)
	putAddr(b[28:44], dst.Addr(), q.Family)
	// b[44:48] idiag_if = 0: any interface.
	binary.NativeEndian.PutUint32(b[48:52], inetDiagNoCookie)
	binary.NativeEndian.PutUint32(b[52:56], inetDiagNoCookie)
	return b
}

// putAddr writes a in the kernel's layout: four bytes for AF_INET, 16 for
// AF_INET6 (IPv4 addresses mapped). The zero Addr leaves zeros.
func putAddr(b []byte, a netip.Addr, family uint8) {
	if !a.IsValid() {
		return
	}
	if family == unix.AF_INET {
		a4 := a.Unmap().As4()
		copy(b, a4[:])
		return
	}
	a16 := a.As16()
	copy(b, a16[:])
}

// errShortDiagMsg reports a reply too short for an inet_diag_msg.
var errShortDiagMsg = errors.New("short inet_diag_msg")

// parseSockInfo decodes the fixed part of an inet_diag_msg (the payload
// of a SOCK_DIAG_BY_FAMILY reply). IPv4-mapped IPv6 addresses, as a
// dual-stack socket reports an IPv4 peer, are unmapped so they compare
// equal to conntrack's IPv4 tuples.
func parseSockInfo(b []byte) (sockInfo, error) {
	if len(b) < inetDiagMsgLen {
		return sockInfo{}, fmt.Errorf("%w: %d bytes, want %d", errShortDiagMsg, len(b), inetDiagMsgLen)
	}
	s := sockInfo{Family: b[0], State: b[1]}
	sport := binary.BigEndian.Uint16(b[4:6])
	dport := binary.BigEndian.Uint16(b[6:8])
	src, err := getAddr(b[8:24], s.Family)
	if err != nil {
		return sockInfo{}, err
	}
	dst, err := getAddr(b[24:40], s.Family)
	if err != nil {
		return sockInfo{}, err
	}
	s.Local = netip.AddrPortFrom(src, sport)
	s.Remote = netip.AddrPortFrom(dst, dport)
	// b[40:44] idiag_if, b[44:52] cookie, b[52:64] expires, rqueue, wqueue.
	s.UID = binary.NativeEndian.Uint32(b[64:68])
	s.Inode = uint64(binary.NativeEndian.Uint32(b[68:72]))
	return s, nil
}

func getAddr(b []byte, family uint8) (netip.Addr, error) {
	switch family {
	case unix.AF_INET:
		return netip.AddrFrom4([4]byte(b[:4])), nil
	case unix.AF_INET6:
		return netip.AddrFrom16([16]byte(b[:16])).Unmap(), nil
	}
	return netip.Addr{}, fmt.Errorf("inet_diag_msg: unknown family %d", family)
}

// parseSockReplies decodes the SOCK_DIAG_BY_FAMILY messages of a reply,
// skipping any other message type.
func parseSockReplies(msgs []netlink.Message) ([]sockInfo, error) {
	var out []sockInfo
	for _, m := range msgs {
		if m.Header.Type != sockDiagByFamily {
			continue
		}
		s, err := parseSockInfo(m.Data)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// diagConn is a NETLINK_SOCK_DIAG socket in the watched namespace. It is
// used by one worker at a time.
type diagConn struct {
	c *netlink.Conn
}

// dialDiag opens a sock_diag socket in the namespace whose file is nsFD
// (0: the caller's own).
func dialDiag(nsFD int) (*diagConn, error) {
	c, err := netlink.Dial(unix.NETLINK_SOCK_DIAG, &netlink.Config{NetNS: nsFD})
	if err != nil {
		return nil, err
	}
	return &diagConn{c: c}, nil
}

// lookup runs one exact query. A socket the kernel does not find is
// reported as ok=false with no error.
func (d *diagConn) lookup(q sockQuery) (s sockInfo, ok bool, err error) {
	msgs, err := d.c.Execute(netlink.Message{
		Header: netlink.Header{Type: sockDiagByFamily, Flags: netlink.Request},
		Data:   encodeSockQuery(q),
	})
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return sockInfo{}, false, nil
		}
		return sockInfo{}, false, fmt.Errorf("sock_diag %s lookup %s -> %s: %w", protoName(q.Proto), q.Local, q.Remote, err)
	}
	socks, err := parseSockReplies(msgs)
	if err != nil {
		return sockInfo{}, false, fmt.Errorf("sock_diag reply: %w", err)
	}
	if len(socks) == 0 {
		return sockInfo{}, false, nil
	}
	return socks[0], true, nil
}

func (d *diagConn) Close() error { return d.c.Close() }

func protoName(p uint8) string {
	switch p {
	case unix.IPPROTO_TCP:
		return "tcp"
	case unix.IPPROTO_UDP:
		return "udp"
	}
	return fmt.Sprint(p)
}
