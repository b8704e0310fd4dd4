package conntrack

import (
	"net/netip"
	"time"
)

// Addr is an IPv4 or IPv6 address stored without a pointer. netip.Addr
// holds one (for its zone), which makes the garbage collector scan every
// flow of the table and of every snapshot, and puts a write barrier on
// every copy: copying 100,000 flows cost five times more with it. Use IP
// for the netip.Addr.
type Addr struct {
	ip  [16]byte
	len uint8 // 0: invalid, 4: IPv4 in ip[:4], 16: IPv6
}

// AddrFrom converts a netip.Addr (its zone is dropped).
func AddrFrom(a netip.Addr) Addr {
	switch {
	case a.Is4():
		var x Addr
		b := a.As4()
		copy(x.ip[:], b[:])
		x.len = 4
		return x
	case a.Is6():
		return Addr{ip: a.As16(), len: 16}
	}
	return Addr{}
}

// AddrFrom4 is the IPv4 address of b's four bytes, in network order.
func AddrFrom4(b [4]byte) Addr {
	var x Addr
	copy(x.ip[:], b[:])
	x.len = 4
	return x
}

// AddrFrom16 is the IPv6 address of b's sixteen bytes, in network order.
func AddrFrom16(b [16]byte) Addr { return Addr{ip: b, len: 16} }

// As4 returns an IPv4 address's four bytes (zero for others).
func (a Addr) As4() [4]byte {
	if a.len != 4 {
		return [4]byte{}
	}
	return [4]byte(a.ip[:4])
}

// As16 returns an IPv6 address's sixteen bytes (an IPv4 address's four
// first, then zeros).
func (a Addr) As16() [16]byte { return a.ip }

// MustParseAddr parses an address and panics on error, for tests and
// constants.
func MustParseAddr(s string) Addr { return AddrFrom(netip.MustParseAddr(s)) }

// IP returns the address as a netip.Addr.
func (a Addr) IP() netip.Addr {
	switch a.len {
	case 4:
		return netip.AddrFrom4([4]byte(a.ip[:4]))
	case 16:
		return netip.AddrFrom16(a.ip)
	}
	return netip.Addr{}
}

// IsValid reports whether the address is set.
func (a Addr) IsValid() bool { return a.len != 0 }

// Is4 reports an IPv4 address.
func (a Addr) Is4() bool { return a.len == 4 }

// String formats the address as netip.Addr does ("" when invalid).
func (a Addr) String() string {
	if a.len == 0 {
		return ""
	}
	return a.IP().String()
}

// Stamp is a point in time in Unix nanoseconds, 0 when unknown: a
// time.Time holds a pointer (its location), which Flow must not.
type Stamp int64

// StampOf converts a time; the zero time gives the zero Stamp.
func StampOf(t time.Time) Stamp {
	if t.IsZero() {
		return 0
	}
	return Stamp(t.UnixNano())
}

// IsZero reports an unknown time.
func (s Stamp) IsZero() bool { return s == 0 }

// Time returns the time, the zero time.Time when unknown.
func (s Stamp) Time() time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(s))
}

// AsSlice returns the 4 or 16 bytes of the address (nil when invalid).
func (a Addr) AsSlice() []byte {
	if a.len == 0 {
		return nil
	}
	return append([]byte(nil), a.ip[:a.len]...)
}

// Equal reports whether a and b are the same address (go-cmp uses it).
func (a Addr) Equal(b Addr) bool { return a == b }
