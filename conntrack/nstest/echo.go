package nstest

import (
	"io"
	"net"
	"sync"
	"testing"
)

// EchoUDP serves UDP echo inside ns on addr ("192.0.2.2:0" picks a port)
// until the test ends, and returns the address it listens on.
func EchoUDP(t testing.TB, ns *NS, addr string) *net.UDPAddr {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() (err error) { pc, err = net.ListenPacket("udp", addr); return err }); err != nil {
		t.Fatalf("udp echo on %s in %s: %v", addr, ns.Name, err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { pc.Close(); wg.Wait() })
	wg.Go(func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	})
	return pc.LocalAddr().(*net.UDPAddr)
}

// ListenTCP listens for TCP inside ns on addr ("192.0.2.2:0" picks a
// port); the listener closes when the test ends.
func ListenTCP(t testing.TB, ns *NS, addr string) net.Listener {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) { ln, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatalf("tcp listen on %s in %s: %v", addr, ns.Name, err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}

// EchoTCP serves TCP echo inside ns on addr ("192.0.2.2:0" picks a port)
// until the test ends, when the listener and every connection it accepted
// close; it returns the address it listens on.
func EchoTCP(t testing.TB, ns *NS, addr string) *net.TCPAddr {
	t.Helper()
	ln := ListenTCP(t, ns, addr)
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		conns []net.Conn
	)
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { io.Copy(c, c); c.Close() })
		}
	})
	return ln.Addr().(*net.TCPAddr)
}
