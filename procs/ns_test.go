package procs

import (
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/conntrack/nstest"
)

// peers are sockets of the test process in namespace B that A's helpers
// talk to.
type peers struct {
	tcpPort, udpPort uint16
}

func startPeers(t *testing.T, b *nstest.NS) peers {
	t.Helper()
	var ln net.Listener
	var pc net.PacketConn
	err := b.Do(func() (err error) {
		if ln, err = net.Listen("tcp", "[::]:0"); err != nil {
			return err
		}
		pc, err = net.ListenPacket("udp", "[::]:0")
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close(); pc.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	go func() {
		buf := make([]byte, 64)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return peers{
		tcpPort: uint16(ln.Addr().(*net.TCPAddr).Port),
		udpPort: uint16(pc.LocalAddr().(*net.UDPAddr).Port),
	}
}

// dialFrom connects from namespace ns and returns the connection, closed
// when the test ends.
func dialFrom(t *testing.T, ns *nstest.NS, network, addr string) net.Conn {
	t.Helper()
	var c net.Conn
	if err := ns.Do(func() (err error) {
		c, err = net.DialTimeout(network, addr, 5*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// flowOf builds the conntrack flow of a connection seen from its
// initiator, without NAT.
func flowOf(t testing.TB, id uint32, proto conntrack.Proto, src, dst string) *conntrack.Flow {
	t.Helper()
	s, err := netip.ParseAddrPort(src)
	if err != nil {
		t.Fatal(err)
	}
	d, err := netip.ParseAddrPort(dst)
	if err != nil {
		t.Fatal(err)
	}
	s = netip.AddrPortFrom(s.Addr().Unmap(), s.Port())
	d = netip.AddrPortFrom(d.Addr().Unmap(), d.Port())
	return flow(id, proto, s.String(), d.String())
}

// withAddr replaces the wildcard address an unconnected socket prints.
func withAddr(t *testing.T, addrPort, addr string) string {
	t.Helper()
	ap, err := netip.ParseAddrPort(addrPort)
	if err != nil {
		t.Fatal(err)
	}
	return netip.AddrPortFrom(netip.MustParseAddr(addr), ap.Port()).String()
}

func hostPort(addr string, port uint16) string {
	return net.JoinHostPort(addr, strconv.Itoa(int(port)))
}

// awaitOwner polls Owner as a screen would, until the flow has an owner.
func awaitOwner(t *testing.T, f *Finder, fl *conntrack.Flow) Info {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if in := f.Owner(fl); in.Known() || time.Now().After(deadline) {
			return in
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestOwnerInNamespace starts real processes in namespace A that connect
// out to B and accept connections from B, over TCP and UDP, IPv4 and
// IPv6, and checks that a Finder watching A names each one.
func TestOwnerInNamespace(t *testing.T) {
	nstest.Require(t, "nft")
	a, b := nstest.Pair(t)
	p := startPeers(t, b)
	f, err := New(Config{NetNS: a.Path(), RetryEvery: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })

	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	wantName := filepath.Base(exe)
	if len(wantName) > 15 { // TASK_COMM_LEN - 1
		wantName = wantName[:15]
	}

	tcp, udp := conntrack.ProtoTCP, conntrack.ProtoUDP
	tests := []struct {
		name string
		// run starts the helper and returns it with the flow to ask about.
		run func(t *testing.T, id uint32) (*helperProc, *conntrack.Flow)
	}{
		{"tcp4 outbound", outbound(a, tcp, "tcp-dial", hostPort(nstest.AddrB4, p.tcpPort))},
		{"tcp6 outbound", outbound(a, tcp, "tcp-dial", hostPort(nstest.AddrB6, p.tcpPort))},
		{"udp4 outbound connected", outbound(a, udp, "udp-dial", hostPort(nstest.AddrB4, p.udpPort))},
		{"udp6 outbound connected", outbound(a, udp, "udp-dial", hostPort(nstest.AddrB6, p.udpPort))},
		{"udp4 outbound unconnected (sendto)", func(t *testing.T, id uint32) (*helperProc, *conntrack.Flow) {
			h := startHelper(t, a, "udp-sendto", "udp4", hostPort(nstest.AddrB4, p.udpPort))
			l, r := h.addrs()
			return h, flowOf(t, id, udp, withAddr(t, l, nstest.AddrA4), r)
		}},
		{"udp6 outbound unconnected (sendto)", func(t *testing.T, id uint32) (*helperProc, *conntrack.Flow) {
			h := startHelper(t, a, "udp-sendto", "udp6", hostPort(nstest.AddrB6, p.udpPort))
			l, r := h.addrs()
			return h, flowOf(t, id, udp, withAddr(t, l, nstest.AddrA6), r)
		}},
		{"tcp4 inbound", inbound(a, b, "tcp", "tcp-serve", hostPort(nstest.AddrA4, 0), nstest.AddrA4, "")},
		{"tcp6 inbound", inbound(a, b, "tcp", "tcp-serve", hostPort(nstest.AddrA6, 0), nstest.AddrA6, "")},
		{"tcp4 inbound to a dual-stack listener", inbound(a, b, "tcp", "tcp-serve", "[::]:0", nstest.AddrA4, "")},
		{"tcp4 inbound, accepted socket closed: the listener", inbound(a, b, "tcp", "tcp-serve", "0.0.0.0:0", nstest.AddrA4, "close")},
		{"udp4 inbound to an unconnected socket", inbound(a, b, "udp", "udp-serve", "0.0.0.0:0", nstest.AddrA4, "")},
		{"udp6 inbound to an unconnected socket", inbound(a, b, "udp", "udp-serve", "[::]:0", nstest.AddrA6, "")},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, fl := tt.run(t, uint32(i+1))
			got := awaitOwner(t, f, fl)
			if got.PID != h.pid || got.Name != wantName {
				t.Fatalf("Owner(%v %v -> %v) = %+v, want pid %d name %q (stats %+v)",
					fl.Proto, netip.AddrPortFrom(fl.Orig.Src.IP(), fl.Orig.SrcPort),
					netip.AddrPortFrom(fl.Orig.Dst.IP(), fl.Orig.DstPort), got, h.pid, wantName, f.Stats())
			}
			if got.User != lookupUserName("0") || !strings.Contains(got.Cmdline, exe) {
				t.Errorf("Owner user/cmdline = %q / %q, want root's name and %q", got.User, got.Cmdline, exe)
			}
		})
	}
	t.Logf("stats: %+v", f.Stats())
}

// outbound runs a helper in a that connects to addr.
func outbound(a *nstest.NS, proto conntrack.Proto, mode, addr string) func(*testing.T, uint32) (*helperProc, *conntrack.Flow) {
	return func(t *testing.T, id uint32) (*helperProc, *conntrack.Flow) {
		h := startHelper(t, a, mode, addr)
		l, r := h.addrs()
		return h, flowOf(t, id, proto, l, r)
	}
}

// inbound runs a server helper in a on listen and connects to it from b
// at dialAddr.
func inbound(a, b *nstest.NS, network, mode, listen, dialAddr, opt string) func(*testing.T, uint32) (*helperProc, *conntrack.Flow) {
	return func(t *testing.T, id uint32) (*helperProc, *conntrack.Flow) {
		args := []string{mode, listen}
		if opt != "" {
			args = append(args, opt)
		}
		h := startHelper(t, a, args...)
		l, _ := h.addrs()
		lap, err := netip.ParseAddrPort(l)
		if err != nil {
			t.Fatal(err)
		}
		c := dialFrom(t, b, network, hostPort(dialAddr, lap.Port()))
		proto := conntrack.ProtoTCP
		if network == "udp" {
			proto = conntrack.ProtoUDP
			if _, err := c.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := io.ReadFull(c, make([]byte, 1)); err != nil {
				t.Fatalf("no answer from the udp server: %v", err)
			}
		}
		h.addrs() // accepted (or answered): the server's socket exists
		return h, flowOf(t, id, proto, c.LocalAddr().String(), c.RemoteAddr().String())
	}
}

// BenchmarkBurst asks about 20,000 new flows at once, as a screen would
// after a flood of connections: Owner is called for each, and the burst
// is timed until every lookup has finished. It reports
// the time to resolve them all, the caller's cost per Owner call, and
// how many /proc walks and sock_diag queries it took.
//
//	go test -run '^$' -bench Burst -benchtime 3x ./procs/
func BenchmarkBurst(b *testing.B) {
	nstest.Require(b, "nft")
	a, _ := nstest.Pair(b)
	const perHelper, helpers = 5000, 4 // a helper holds at most ~20,000 fds
	var flows []*conntrack.Flow
	for i := range helpers {
		local, remote := nstest.AddrA4, nstest.AddrB4
		if i%2 == 1 {
			local, remote = nstest.AddrA6, nstest.AddrB6
		}
		h := startHelper(b, a, "udp-many", strconv.Itoa(perHelper), hostPort(remote, 9))
		for _, port := range strings.Fields(h.line()) {
			fl := flowOf(b, uint32(len(flows)+1), conntrack.ProtoUDP, net.JoinHostPort(local, port), hostPort(remote, 9))
			flows = append(flows, fl)
		}
	}
	if len(flows) != perHelper*helpers {
		b.Fatalf("%d flows, want %d", len(flows), perHelper*helpers)
	}
	b.ResetTimer()
	var resolve, call time.Duration
	var st Stats
	for range b.N {
		f, err := New(Config{NetNS: a.Path()})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		pending := make([]*conntrack.Flow, 0, len(flows))
		for _, fl := range flows {
			if !f.Owner(fl).Known() {
				pending = append(pending, fl)
			}
		}
		call += time.Since(start)
		// Every flow's socket and process exist before the burst, so no
		// lookup needs a retry: wait for the answers through Stats, which
		// costs the workers less CPU than asking 20,000 flows again.
		deadline := start.Add(time.Minute)
		for f.Stats().Resolved+f.Stats().Unowned < uint64(len(pending)) && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		resolve += time.Since(start)
		st = f.Stats()
		left := pending[:0]
		for _, fl := range pending {
			if !f.Owner(fl).Known() {
				left = append(left, fl)
			}
		}
		pending = left
		f.Close()
		if len(pending) > 0 {
			b.Fatalf("%d of %d flows unresolved after a minute: %+v", len(pending), len(flows), st)
		}
		if st.Scans > 1 {
			b.Fatalf("/proc walked %d times for one burst, want 1", st.Scans)
		}
	}
	b.ReportMetric(float64(resolve.Milliseconds())/float64(b.N), "ms/burst")
	b.ReportMetric(float64(call.Nanoseconds())/float64(b.N*len(flows)), "ns/Owner")
	b.ReportMetric(float64(st.Scans), "scans/burst")
	b.ReportMetric(float64(st.Queries), "queries/burst")
	b.ReportMetric(float64(st.LastScan.Milliseconds()), "ms/scan")
}
