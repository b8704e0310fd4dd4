package kernel

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
	n, err := r.recv(r.buf)
	if err != nil {
		return err
	}
	return parseMessages(r.buf[:n], fn)
}

// recv reads one datagram into b.
func (r *receiver) recv(b []byte) (int, error) {
	var n int
	var rerr error
	err := r.rc.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), b, unix.MSG_DONTWAIT)
		return rerr != unix.EAGAIN && rerr != unix.EWOULDBLOCK
	})
	if err != nil {
		return 0, err
	}
	return n, rerr
}

// dumpBuffers is how many datagrams (of up to 64 KiB) a dump may have read
// ahead of the decoder. Sixteen absorb the jitter of either side: with
// four, each side waited on the other for a fifth of a 100k-flow dump,
// and the dump took 10 ms longer.
const dumpBuffers = 16

// dumpReceiver reads a dump on its own goroutine while the caller decodes
// what came before. The kernel builds each next datagram of a dump inside
// the read that empties the socket, so on two cores the kernel's half of a
// dump (a 100k-flow table: ~90 ms) and flowtop's half (decoding and the
// table update: about as much) overlap instead of adding up.
type dumpReceiver struct {
	r *receiver
}

func newDumpReceiver(r *receiver) *dumpReceiver { return &dumpReceiver{r: r} }

// datagram is what one read got: bytes in one of the buffers, or the error
// that ended reading.
type datagram struct {
	b   []byte
	err error
}

// readDump reads datagrams until the one that ends the dump (NLMSG_DONE
// or NLMSG_ERROR) and calls fn for each message, like read. It reads to
// the end even after fn failed, so that no rest of this dump is left in
// the socket to be mistaken for the next one. It returns errDumpDone when
// the dump ended normally.
//
// The read-ahead buffers live for this dump only (flowtop reads only its
// first dump this way), and are allocated as the reader runs ahead: a
// small table's dump takes one or two.
func (d *dumpReceiver) readDump(fn func(h nlHeader, data []byte) error) error {
	full := make(chan datagram, dumpBuffers)
	free := make(chan []byte, dumpBuffers)
	go func() {
		defer close(full)
		allocated := 0
		for {
			var b []byte
			select {
			case b = <-free:
			default:
				if allocated < dumpBuffers {
					allocated++
					b = make([]byte, recvBufLen)
				} else {
					b = <-free
				}
			}
			n, err := d.r.recv(b)
			if err != nil {
				full <- datagram{err: err}
				return
			}
			full <- datagram{b: b[:n]}
			if endsDump(b[:n]) {
				return
			}
		}
	}()
	var ferr error
	for dg := range full {
		if ferr == nil {
			if ferr = dg.err; ferr == nil {
				ferr = parseMessages(dg.b, fn)
			}
		}
		if dg.b != nil {
			free <- dg.b[:cap(dg.b)]
		}
	}
	if ferr == nil {
		// The reader stopped at an NLMSG_ERROR that parseMessages did not
		// see as an error (code 0): not a normal end.
		ferr = errors.New("netlink dump ended by an acknowledgement instead of NLMSG_DONE")
	}
	return ferr
}

// endsDump reports whether a datagram holds the message that ends a dump.
// It reads the headers only; a malformed datagram is left to
// parseMessages to report.
func endsDump(b []byte) bool {
	for len(b) >= nlmsgHdrLen {
		l := int(binary.NativeEndian.Uint32(b))
		if l < nlmsgHdrLen || l > len(b) {
			return false
		}
		if t := binary.NativeEndian.Uint16(b[4:]); t == nlmsgDone || t == nlmsgError {
			return true
		}
		next := (l + 3) &^ 3
		if next > len(b) {
			return false
		}
		b = b[next:]
	}
	return false
}

// parseMessages walks the netlink messages of one datagram as a dump's:
// NLMSG_DONE ends it (errDumpDone), an NLMSG_ERROR with a non-zero code
// is returned as that error, the others go to fn.
func parseMessages(b []byte, fn func(h nlHeader, data []byte) error) error {
	return walkMessages(b, func(h nlHeader, data []byte) error {
		switch h.Type {
		case nlmsgDone:
			return errDumpDone
		case nlmsgError:
			if errno := messageErrno(data); errno != 0 {
				return errno
			}
			return nil
		}
		return fn(h, data)
	})
}

// walkMessages calls fn for each netlink message of one datagram, until fn
// returns an error.
func walkMessages(b []byte, fn func(h nlHeader, data []byte) error) error {
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
		if err := fn(h, b[nlmsgHdrLen:l]); err != nil {
			return err
		}
		b = b[min((l+3)&^3, len(b)):]
	}
	return nil
}

// messageErrno is the error number of an NLMSG_ERROR message's body, 0 for
// an acknowledgement.
func messageErrno(data []byte) unix.Errno {
	if len(data) < 4 {
		return 0
	}
	return unix.Errno(-int32(binary.NativeEndian.Uint32(data)))
}
