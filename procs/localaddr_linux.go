package procs

import (
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// localAddrs knows the addresses of the watched namespace. A socket bound
// to the wildcard address matches a lookup for any local address of its
// port, so such a match is only believed when the address asked about is
// really local: an inbound flow from a remote port 53 must not be pinned
// on the local DNS server listening on *:53.
type localAddrs struct {
	every time.Duration
	now   func() time.Time
	fetch func() (map[netip.Addr]bool, error)

	mu      sync.Mutex
	set     map[netip.Addr]bool
	fetched time.Time
}

// isLocal reports whether a is an address of the namespace, refreshing
// the list when it is older than every.
func (l *localAddrs) isLocal(a netip.Addr) (bool, error) {
	a = a.Unmap()
	if a.IsLoopback() {
		return true, nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if now := l.now(); l.set == nil || now.Sub(l.fetched) >= l.every {
		set, err := l.fetch()
		if err != nil {
			return false, err
		}
		l.set, l.fetched = set, now
	}
	return l.set[a], nil
}

// remote reports whether every one of addrs is known not to be an address
// of the namespace: the list is fresh and none is in it or a loopback
// address. It never waits (Owner must not block): while a worker holds the
// list to fetch it anew, nothing is known remote.
func (l *localAddrs) remote(addrs ...netip.Addr) bool {
	for _, a := range addrs {
		if a.Unmap().IsLoopback() {
			return false
		}
	}
	if !l.mu.TryLock() {
		return false
	}
	defer l.mu.Unlock()
	if l.set == nil || l.now().Sub(l.fetched) >= l.every {
		return false
	}
	for _, a := range addrs {
		if l.set[a.Unmap()] {
			return false
		}
	}
	return true
}

// routeConn is a NETLINK_ROUTE socket that lists addresses.
type routeConn struct {
	mu sync.Mutex
	c  *netlink.Conn
}

func dialRoute(nsFD int) (*routeConn, error) {
	c, err := netlink.Dial(unix.NETLINK_ROUTE, &netlink.Config{NetNS: nsFD})
	if err != nil {
		return nil, err
	}
	return &routeConn{c: c}, nil
}

// addrs dumps the namespace's interface addresses (RTM_GETADDR).
func (r *routeConn) addrs() (map[netip.Addr]bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	msgs, err := r.c.Execute(netlink.Message{
		Header: netlink.Header{Type: unix.RTM_GETADDR, Flags: netlink.Request | netlink.Dump},
		Data:   make([]byte, unix.SizeofIfAddrmsg), // family 0: all
	})
	if err != nil {
		return nil, fmt.Errorf("list addresses: %w", err)
	}
	return parseAddrs(msgs)
}

func (r *routeConn) Close() error { return r.c.Close() }

// parseAddrs collects the local addresses of RTM_NEWADDR messages:
// IFA_LOCAL when present (on point-to-point links IFA_ADDRESS is the
// peer), else IFA_ADDRESS.
func parseAddrs(msgs []netlink.Message) (map[netip.Addr]bool, error) {
	set := map[netip.Addr]bool{}
	for _, m := range msgs {
		if m.Header.Type != unix.RTM_NEWADDR {
			continue
		}
		if len(m.Data) < unix.SizeofIfAddrmsg {
			return nil, fmt.Errorf("short ifaddrmsg: %d bytes", len(m.Data))
		}
		ad, err := netlink.NewAttributeDecoder(m.Data[unix.SizeofIfAddrmsg:])
		if err != nil {
			return nil, fmt.Errorf("ifaddrmsg attributes: %w", err)
		}
		var local, address netip.Addr
		for ad.Next() {
			a, ok := netip.AddrFromSlice(ad.Bytes())
			if !ok {
				continue
			}
			switch ad.Type() {
			case unix.IFA_LOCAL:
				local = a
			case unix.IFA_ADDRESS:
				address = a
			}
		}
		if err := ad.Err(); err != nil {
			return nil, fmt.Errorf("ifaddrmsg attributes: %w", err)
		}
		if local.IsValid() {
			set[local.Unmap()] = true
		} else if address.IsValid() {
			set[address.Unmap()] = true
		}
	}
	return set, nil
}
