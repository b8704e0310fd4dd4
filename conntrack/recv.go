package conntrack

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Netlink header constants (linux/netlink.h).
const (
	nlmsgHdrLen = 16
	nlmsgError  = 2
	nlmsgDone   = 3
	// recvBufLen fits the largest datagram the kernel builds for a dump
	// (32 KiB, once the reader has shown it can take that much) with room
	// to spare. One read of it replaces mdlayher/netlink's peek-then-read
	// pair per datagram and its buffer allocation.
	recvBufLen = 64 << 10
)

// nlHeader is the part of a netlink message header flowtop uses.
type nlHeader struct {
	Type, Flags uint16
	Seq         uint32
}

// errDumpDone ends a receive loop at the end of a dump.
var errDumpDone = errors.New("dump done")

// receiver reads netlink datagrams into one reused buffer and hands each
// message to a callback: no allocation per datagram or per message.
type receiver struct {
	rc  syscall.RawConn
	buf []byte
}

func newReceiver(c *netlink.Conn) (*receiver, error) {
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("netlink raw connection: %w", err)
	}
	return &receiver{rc: rc, buf: make([]byte, recvBufLen)}, nil
}

// read reads one datagram and calls fn for each message in it. It returns
// errDumpDone after NLMSG_DONE, the kernel's error for NLMSG_ERROR with a
// non-zero code, the read error (ENOBUFS on overrun, os.ErrDeadlineExceeded,
// os.ErrClosed), or fn's error.
func (r *receiver) read(fn func(h nlHeader, data []byte) error) error {
	var n int
	var rerr error
	err := r.rc.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), r.buf, unix.MSG_DONTWAIT)
		return rerr != unix.EAGAIN && rerr != unix.EWOULDBLOCK
	})
	if err != nil {
		return err
	}
	if rerr != nil {
		return rerr
	}
	return parseMessages(r.buf[:n], fn)
}

// parseMessages walks the netlink messages of one datagram.
func parseMessages(b []byte, fn func(h nlHeader, data []byte) error) error {
	for len(b) >= nlmsgHdrLen {
		l := int(binary.NativeEndian.Uint32(b))
		if l < nlmsgHdrLen || l > len(b) {
			return fmt.Errorf("netlink message of length %d in %d bytes: %w", l, len(b), errShort)
		}
		h := nlHeader{
			Type:  binary.NativeEndian.Uint16(b[4:]),
			Flags: binary.NativeEndian.Uint16(b[6:]),
			Seq:   binary.NativeEndian.Uint32(b[8:]),
		}
		data := b[nlmsgHdrLen:l]
		switch h.Type {
		case nlmsgDone:
			return errDumpDone
		case nlmsgError:
			if len(data) >= 4 {
				if code := int32(binary.NativeEndian.Uint32(data)); code != 0 {
					return unix.Errno(-code)
				}
			}
		default:
			if err := fn(h, data); err != nil {
				return err
			}
		}
		next := (l + 3) &^ 3
		if next > len(b) {
			break
		}
		b = b[next:]
	}
	return nil
}
