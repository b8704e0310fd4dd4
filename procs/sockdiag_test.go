package procs

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// diagMsg builds an inet_diag_msg the way the kernel lays it out.
func diagMsg(family, state uint8, local, remote netip.AddrPort, uid, inode uint32) []byte {
	b := make([]byte, inetDiagMsgLen)
	b[0], b[1] = family, state
	binary.BigEndian.PutUint16(b[4:6], local.Port())
	binary.BigEndian.PutUint16(b[6:8], remote.Port())
	putAddr(b[8:24], local.Addr(), family)
	putAddr(b[24:40], remote.Addr(), family)
	binary.NativeEndian.PutUint32(b[40:44], 3)          // idiag_if
	binary.NativeEndian.PutUint32(b[44:48], 0xdeadbeef) // cookie
	binary.NativeEndian.PutUint32(b[64:68], uid)
	binary.NativeEndian.PutUint32(b[68:72], inode)
	return b
}

func TestParseSockInfo(t *testing.T) {
	ap := netip.MustParseAddrPort
	tests := []struct {
		name string
		in   []byte
		want sockInfo
	}{
		{
			name: "tcp4 established",
			in:   diagMsg(unix.AF_INET, 1, ap("192.0.2.1:40000"), ap("198.51.100.7:443"), 1000, 12345),
			want: sockInfo{Family: unix.AF_INET, State: 1, Local: ap("192.0.2.1:40000"),
				Remote: ap("198.51.100.7:443"), UID: 1000, Inode: 12345},
		},
		{
			name: "tcp6 listener",
			in:   diagMsg(unix.AF_INET6, tcpListen, ap("[::]:22"), ap("[::]:0"), 0, 7),
			want: sockInfo{Family: unix.AF_INET6, State: tcpListen, Local: ap("[::]:22"),
				Remote: ap("[::]:0"), Inode: 7},
		},
		{
			name: "dual-stack socket with an IPv4 peer is unmapped",
			in:   diagMsg(unix.AF_INET6, 1, ap("[::ffff:192.0.2.1]:22"), ap("[::ffff:192.0.2.2]:50000"), 0, 9),
			want: sockInfo{Family: unix.AF_INET6, State: 1, Local: ap("192.0.2.1:22"),
				Remote: ap("192.0.2.2:50000"), Inode: 9},
		},
		{
			name: "trailing attributes are ignored",
			in:   append(diagMsg(unix.AF_INET, 7, ap("0.0.0.0:53"), ap("0.0.0.0:0"), 101, 4242), 8, 0, 1, 0, 0, 0, 0, 0),
			want: sockInfo{Family: unix.AF_INET, State: 7, Local: ap("0.0.0.0:53"),
				Remote: ap("0.0.0.0:0"), UID: 101, Inode: 4242},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSockInfo(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("parseSockInfo (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSockInfoErrors(t *testing.T) {
	if _, err := parseSockInfo(make([]byte, inetDiagMsgLen-1)); !errors.Is(err, errShortDiagMsg) {
		t.Errorf("short message: err = %v, want errShortDiagMsg", err)
	}
	b := diagMsg(unix.AF_INET, 1, netip.MustParseAddrPort("192.0.2.1:1"), netip.MustParseAddrPort("192.0.2.2:2"), 0, 1)
	b[0] = 99
	if _, err := parseSockInfo(b); err == nil {
		t.Error("unknown family: no error")
	}
}

func TestParseSockReplies(t *testing.T) {
	ap := netip.MustParseAddrPort
	msgs := []netlink.Message{
		{Header: netlink.Header{Type: sockDiagByFamily}, Data: diagMsg(unix.AF_INET, 1, ap("192.0.2.1:1"), ap("192.0.2.2:2"), 0, 11)},
		{Header: netlink.Header{Type: netlink.Done}, Data: []byte{0, 0, 0, 0}},
		{Header: netlink.Header{Type: sockDiagByFamily}, Data: diagMsg(unix.AF_INET6, 1, ap("[2001:db8::1]:3"), ap("[2001:db8::2]:4"), 0, 12)},
	}
	got, err := parseSockReplies(msgs)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Inode != 11 || got[1].Inode != 12 {
		t.Errorf("parseSockReplies = %+v, want inodes 11 and 12", got)
	}
	msgs[0].Data = msgs[0].Data[:10]
	if _, err := parseSockReplies(msgs); err == nil {
		t.Error("truncated message: no error")
	}
}

func TestEncodeSockQuery(t *testing.T) {
	ap := netip.MustParseAddrPort
	tcp := encodeSockQuery(sockQuery{Family: unix.AF_INET, Proto: unix.IPPROTO_TCP,
		Local: ap("192.0.2.1:40000"), Remote: ap("198.51.100.7:443")})
	want := make([]byte, inetDiagReqLen)
	want[0], want[1] = unix.AF_INET, unix.IPPROTO_TCP
	binary.NativeEndian.PutUint32(want[4:], 0xffffffff)
	copy(want[8:], []byte{0x9c, 0x40, 0x01, 0xbb, 192, 0, 2, 1})
	copy(want[28:], []byte{198, 51, 100, 7})
	binary.NativeEndian.PutUint32(want[48:], 0xffffffff)
	binary.NativeEndian.PutUint32(want[52:], 0xffffffff)
	if diff := cmp.Diff(want, tcp); diff != "" {
		t.Errorf("tcp4 request (-want +got):\n%s", diff)
	}

	// UDP: the kernel reads id.src as the packet's source, the remote end.
	udp := encodeSockQuery(sockQuery{Family: unix.AF_INET6, Proto: unix.IPPROTO_UDP,
		Local: ap("[2001:db8::1]:53"), Remote: ap("[2001:db8::2]:5353")})
	if got := binary.BigEndian.Uint16(udp[8:]); got != 5353 {
		t.Errorf("udp6 sport = %d, want the remote port 5353", got)
	}
	if got := binary.BigEndian.Uint16(udp[10:]); got != 53 {
		t.Errorf("udp6 dport = %d, want the local port 53", got)
	}
	if got := netip.AddrFrom16([16]byte(udp[12:28])); got != netip.MustParseAddr("2001:db8::2") {
		t.Errorf("udp6 src = %v, want the remote address", got)
	}
	if got := netip.AddrFrom16([16]byte(udp[28:44])); got != netip.MustParseAddr("2001:db8::1") {
		t.Errorf("udp6 dst = %v, want the local address", got)
	}
}

func TestParseAddrs(t *testing.T) {
	msg := func(attrs ...netlink.Attribute) netlink.Message {
		b, err := netlink.MarshalAttributes(attrs)
		if err != nil {
			t.Fatal(err)
		}
		return netlink.Message{Header: netlink.Header{Type: unix.RTM_NEWADDR},
			Data: append(make([]byte, unix.SizeofIfAddrmsg), b...)}
	}
	ip := func(s string) []byte { return netip.MustParseAddr(s).AsSlice() }
	msgs := []netlink.Message{
		msg(netlink.Attribute{Type: unix.IFA_ADDRESS, Data: ip("192.0.2.1")},
			netlink.Attribute{Type: unix.IFA_LOCAL, Data: ip("192.0.2.1")}),
		// Point-to-point: IFA_ADDRESS is the peer.
		msg(netlink.Attribute{Type: unix.IFA_ADDRESS, Data: ip("10.9.9.2")},
			netlink.Attribute{Type: unix.IFA_LOCAL, Data: ip("10.9.9.1")}),
		msg(netlink.Attribute{Type: unix.IFA_ADDRESS, Data: ip("2001:db8::1")}),
		{Header: netlink.Header{Type: netlink.Done}},
	}
	got, err := parseAddrs(msgs)
	if err != nil {
		t.Fatal(err)
	}
	want := map[netip.Addr]bool{
		netip.MustParseAddr("192.0.2.1"):   true,
		netip.MustParseAddr("10.9.9.1"):    true,
		netip.MustParseAddr("2001:db8::1"): true,
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("parseAddrs (-want +got):\n%s", diff)
	}
}
