package kernel

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

// nlMessage builds one netlink message of type typ with a 4-byte body
// (the sequence number n), padded to 4 bytes like the kernel's.
func nlMessage(typ uint16, n uint32) []byte {
	b := make([]byte, nlmsgHdrLen+4)
	binary.NativeEndian.PutUint32(b, uint32(len(b)))
	binary.NativeEndian.PutUint16(b[4:], typ)
	binary.NativeEndian.PutUint32(b[nlmsgHdrLen:], n)
	return b
}

// datagramPair returns a receiver reading one end of a datagram socket
// pair, and the other end to write datagrams into.
func datagramPair(t *testing.T) (*receiver, int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fds[1]) })
	// FilePacketConn makes its own copy. The *os.File is closed through
	// itself: a raw close of fds[0] would leave the File's finalizer to
	// close that number again later, by then another test's file (the
	// "bad file descriptor" of the sysctl tests that ran after this one).
	f := os.NewFile(uintptr(fds[0]), "dump")
	c, err := net.FilePacketConn(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	rc, err := c.(*net.UnixConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	return &receiver{rc: rc, buf: make([]byte, recvBufLen)}, fds[1]
}

// TestReadDumpPipelined feeds a dump of 50 datagrams through the two-
// goroutine reader: every message arrives, in order, and the dump ends at
// NLMSG_DONE. When the callback fails half way, the error comes back and
// the rest of the dump is still read, so that nothing of it is left in
// the socket for the next dump.
func TestReadDumpPipelined(t *testing.T) {
	write := func(t *testing.T, fd int, datagrams, perDatagram int) {
		n := uint32(0)
		for d := range datagrams {
			var dg []byte
			for range perDatagram {
				dg = append(dg, nlMessage(nfnlSubsysCTNetlink<<8|ctMsgNew, n)...)
				n++
			}
			if d == datagrams-1 {
				dg = append(dg, nlMessage(nlmsgDone, 0)...)
			}
			if _, err := unix.Write(fd, dg); err != nil {
				t.Error(err) // may run on its own goroutine: no Fatal
				return
			}
		}
	}
	t.Run("all messages in order", func(t *testing.T) {
		r, peer := datagramPair(t)
		go write(t, peer, 50, 7)
		var got []uint32
		err := newDumpReceiver(r).readDump(func(h nlHeader, data []byte) error {
			got = append(got, binary.NativeEndian.Uint32(data))
			return nil
		})
		if !errors.Is(err, errDumpDone) {
			t.Fatalf("readDump = %v, want the end of the dump", err)
		}
		want := make([]uint32, 50*7)
		for i := range want {
			want[i] = uint32(i)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("got %d messages %v..., want 0..%d in order", len(got), got[:min(len(got), 10)], len(want)-1)
		}
	})
	t.Run("callback error drains the dump", func(t *testing.T) {
		r, peer := datagramPair(t)
		write(t, peer, 20, 3)
		boom := errors.New("boom")
		calls := 0
		d := newDumpReceiver(r)
		err := d.readDump(func(nlHeader, []byte) error {
			if calls++; calls == 5 {
				return boom
			}
			return nil
		})
		if !errors.Is(err, boom) {
			t.Fatalf("readDump = %v, want the callback's error", err)
		}
		if calls != 5 {
			t.Errorf("callback called %d times after failing, want it stopped at 5", calls)
		}
		var probe [64]byte
		if n, _, err := unix.Recvfrom(peerOf(t, r), probe[:], unix.MSG_DONTWAIT); err != unix.EAGAIN {
			t.Fatalf("socket still held %d bytes (err %v) after the failed dump", n, err)
		}
	})
}

// peerOf returns the receiver's file descriptor.
func peerOf(t *testing.T, r *receiver) int {
	var fd int
	if err := r.rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		t.Fatal(err)
	}
	return fd
}

func TestEndsDump(t *testing.T) {
	flow := nlMessage(nfnlSubsysCTNetlink<<8|ctMsgNew, 1)
	for _, c := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"flows only", slices.Concat(flow, flow), false},
		{"done after flows", slices.Concat(flow, nlMessage(nlmsgDone, 0)), true},
		{"error", nlMessage(nlmsgError, 1), true},
		{"truncated", slices.Concat(flow, nlMessage(nlmsgDone, 0)[:10]), false},
		{"empty", nil, false},
	} {
		if got := endsDump(c.b); got != c.want {
			t.Errorf("%s: endsDump = %v, want %v", c.name, got, c.want)
		}
	}
}
