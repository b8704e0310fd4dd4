package ui

import (
	"net/netip"

	"github.com/flowtop/flowtop/conntrack"
)

// The Hosts and Remote tabs split each flow into a local end and a remote
// end. flowtop does not know the machine's own addresses (it may watch a
// router's namespace), so the rule is:
//
//  1. the original source when it is a local address (a LAN client going
//     out, or the machine itself);
//  2. else the reply source when it is local: the real destination after
//     DNAT, i.e. the LAN server behind a port forward;
//  3. else the original destination when it is local;
//  4. else (both ends public) the original source, the initiator.
//
// A local address is one in the private ranges: RFC 1918 (10/8,
// 172.16/12, 192.168/16), IPv6 ULA (fc00::/7), link-local (169.254/16,
// fe80::/10) and loopback. Traffic "up" is what the local end sent.

// isLocalAddr reports whether a is in the ranges the Hosts tab calls local.
func isLocalAddr(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLoopback()
}

// side names which end of a flow's original tuple an address is.
type side uint8

const (
	sideSrc   side = iota // the original source
	sideDst               // the original destination
	sideReply             // the reply source (the DNAT target)
)

// localEnd returns the local address of f and which end it is.
func localEnd(f *conntrack.Flow) (netip.Addr, side) {
	switch {
	case isLocalAddr(f.Orig.Src.IP()):
		return f.Orig.Src.IP().Unmap(), sideSrc
	case f.Reply.Src.IP().IsValid() && isLocalAddr(f.Reply.Src.IP()):
		if f.Reply.Src.IP() == f.Orig.Dst.IP() {
			return f.Orig.Dst.IP().Unmap(), sideDst
		}
		return f.Reply.Src.IP().Unmap(), sideReply
	case isLocalAddr(f.Orig.Dst.IP()):
		return f.Orig.Dst.IP().Unmap(), sideDst
	}
	return f.Orig.Src.IP().Unmap(), sideSrc
}

// upDown returns what the local end sent (up) and received (down): bytes
// and rates.
func upDown(f *conntrack.Flow, local side) (up, down conntrack.Counter, upRate, downRate float64) {
	if local == sideSrc {
		return f.OrigCount, f.ReplyCount, float64(f.OrigRate.Bytes), float64(f.ReplyRate.Bytes)
	}
	return f.ReplyCount, f.OrigCount, float64(f.ReplyRate.Bytes), float64(f.OrigRate.Bytes)
}

// remoteEnd returns the address at the other end from localEnd: the
// original destination when the local end is the source, else the
// original source.
func remoteEnd(f *conntrack.Flow, local side) (netip.Addr, side) {
	if local == sideSrc {
		return f.Orig.Dst.IP().Unmap(), sideDst
	}
	return f.Orig.Src.IP().Unmap(), sideSrc
}

// sideAddr returns the address at end s of f, as localEnd and remoteEnd
// return it.
func sideAddr(f *conntrack.Flow, s side) netip.Addr {
	switch s {
	case sideDst:
		return f.Orig.Dst.IP().Unmap()
	case sideReply:
		return f.Reply.Src.IP().Unmap()
	}
	return f.Orig.Src.IP().Unmap()
}
