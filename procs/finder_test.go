package procs

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"golang.org/x/sys/unix"
)

// fakeSock is a socket of the fake kernel.
type fakeSock struct {
	proto uint8
	sockInfo
}

// fakeKernel answers exact sock_diag lookups the way the kernel does: a
// connected socket on the full tuple first, else a listener or
// unconnected socket on the local port, bound to the address or the
// wildcard.
type fakeKernel struct {
	socks   []fakeSock
	queries atomic.Int64
}

func (k *fakeKernel) lookup(q sockQuery) (sockInfo, bool, error) {
	k.queries.Add(1)
	for _, s := range k.socks {
		if s.proto == q.Proto && s.Local == q.Local && s.Remote == q.Remote {
			return s.sockInfo, true, nil
		}
	}
	for _, s := range k.socks {
		if s.proto == q.Proto && !s.connected() && s.Local.Port() == q.Local.Port() &&
			(s.Local.Addr() == q.Local.Addr() || s.Local.Addr().IsUnspecified()) {
			return s.sockInfo, true, nil
		}
	}
	return sockInfo{}, false, nil
}

func (k *fakeKernel) Close() error { return nil }

func (k *fakeKernel) add(proto uint8, local, remote string, inode uint64) {
	k.socks = append(k.socks, fakeSock{proto, sockInfo{
		Local: netip.MustParseAddrPort(local), Remote: netip.MustParseAddrPort(remote), Inode: inode}})
}

// testLocal is the address list of the fake namespace.
func testLocal() (map[netip.Addr]bool, error) {
	return map[netip.Addr]bool{
		netip.MustParseAddr("192.0.2.1"):   true,
		netip.MustParseAddr("2001:db8::1"): true,
	}, nil
}

func newTestFinder(t *testing.T, cfg Config, k *fakeKernel, root string) *Finder {
	t.Helper()
	cfg.ProcRoot = root
	cfg = withDefaults(cfg)
	lookers := make([]sockLooker, cfg.Workers)
	for i := range lookers {
		lookers[i] = k
	}
	f := newFinder(cfg, lookers, testLocal)
	f.index.userName = testUserName
	t.Cleanup(func() { f.Close() })
	return f
}

// flow builds a flow without NAT from its original direction.
func flow(id uint32, proto conntrack.Proto, src, dst string) *conntrack.Flow {
	s, d := netip.MustParseAddrPort(src), netip.MustParseAddrPort(dst)
	fam := conntrack.IPv4
	if s.Addr().Is6() {
		fam = conntrack.IPv6
	}
	return &conntrack.Flow{ID: id, Family: fam, Proto: proto,
		Orig:  conntrack.Tuple{Src: conntrack.AddrFrom(s.Addr()), Dst: conntrack.AddrFrom(d.Addr()), SrcPort: s.Port(), DstPort: d.Port()},
		Reply: conntrack.Tuple{Src: conntrack.AddrFrom(d.Addr()), Dst: conntrack.AddrFrom(s.Addr()), SrcPort: d.Port(), DstPort: s.Port()},
	}
}

// await calls Owner until the flow is answered (owned or given up on).
func await(t *testing.T, f *Finder, fl *conntrack.Flow) Info {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if in := f.Owner(fl); in.Known() {
			return in
		}
		f.mu.Lock()
		done := false
		for _, e := range f.cache {
			if e.key.id == fl.ID && e.state == stateDone {
				done = true
			}
		}
		f.mu.Unlock()
		if done {
			return f.Owner(fl) // final: owned or not
		}
		time.Sleep(2 * time.Millisecond)
	}
	t.Fatalf("flow %d: no answer within 5s", fl.ID)
	return Info{}
}

func TestOwner(t *testing.T) {
	p := newFakeProc(t)
	p.process(100, "sshd", "0", "sshd")
	p.fd(100, 3, "socket:[1111]") // listener [::]:22
	p.fd(100, 4, "socket:[1112]") // accepted from ::2
	p.process(200, "curl", "1000", "curl", "https://example.org/")
	p.fd(200, 3, "socket:[2222]")
	p.process(300, "dig", "1000", "dig")
	p.fd(300, 3, "socket:[3333]") // unconnected *:5353
	p.process(400, "dnsmasq", "0", "dnsmasq")
	p.fd(400, 3, "socket:[4444]") // unconnected *:53
	p.process(500, "nginx", "33", "nginx: worker process")
	p.fd(500, 7, "socket:[5555]")

	k := &fakeKernel{}
	tcp, udp := uint8(unix.IPPROTO_TCP), uint8(unix.IPPROTO_UDP)
	k.add(tcp, "[::]:22", "[::]:0", 1111)
	k.add(tcp, "[2001:db8::1]:22", "[2001:db8::2]:50000", 1112)
	k.add(tcp, "192.0.2.1:22", "192.0.2.2:50001", 0) // TIME_WAIT
	k.add(tcp, "192.0.2.1:40000", "198.51.100.7:443", 2222)
	k.add(udp, "0.0.0.0:5353", "0.0.0.0:0", 3333)
	k.add(udp, "0.0.0.0:53", "0.0.0.0:0", 4444)
	k.add(tcp, "192.0.2.1:80", "198.51.100.7:41000", 5555)

	dnat := flow(7, conntrack.ProtoTCP, "198.51.100.7:41000", "203.0.113.1:8080")
	dnat.Reply.Src, dnat.Reply.SrcPort = conntrack.MustParseAddr("192.0.2.1"), 80

	f := newTestFinder(t, Config{RetryEvery: time.Millisecond}, k, p.root)
	tests := []struct {
		name string
		fl   *conntrack.Flow
		want Info
	}{
		{"outbound tcp4", flow(1, conntrack.ProtoTCP, "192.0.2.1:40000", "198.51.100.7:443"),
			Info{PID: 200, Name: "curl", User: "alice", Cmdline: "curl https://example.org/"}},
		{"inbound tcp6 to an accepted socket", flow(2, conntrack.ProtoTCP, "[2001:db8::2]:50000", "[2001:db8::1]:22"),
			Info{PID: 100, Name: "sshd", User: "0", Cmdline: "sshd"}},
		{"inbound tcp4 in TIME_WAIT falls back to the listener", flow(3, conntrack.ProtoTCP, "192.0.2.2:50001", "192.0.2.1:22"),
			Info{PID: 100, Name: "sshd", User: "0", Cmdline: "sshd"}},
		{"outbound udp from an unconnected socket, not the local *:53", flow(4, conntrack.ProtoUDP, "192.0.2.1:5353", "192.0.2.9:53"),
			Info{PID: 300, Name: "dig", User: "alice", Cmdline: "dig"}},
		{"inbound udp to *:53, not the local *:5353", flow(5, conntrack.ProtoUDP, "192.0.2.9:5353", "192.0.2.1:53"),
			Info{PID: 400, Name: "dnsmasq", User: "0", Cmdline: "dnsmasq"}},
		{"inbound through DNAT: the server's view is the reply tuple", dnat,
			Info{PID: 500, Name: "nginx", User: "33", Cmdline: "nginx: worker process"}},
		{"forwarded flow: neither end is local", flow(6, conntrack.ProtoUDP, "198.51.100.7:53", "203.0.113.9:5353"), Info{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := await(t, f, tt.fl); got != tt.want {
				t.Errorf("Owner = %+v, want %+v", got, tt.want)
			}
		})
	}
	if st := f.Stats(); st.Scans != 1 {
		t.Errorf("Scans = %d, want 1 (every inode was in the first scan)", st.Scans)
	}
	if in := f.Owner(&conntrack.Flow{ID: 99, Family: conntrack.IPv4, Proto: conntrack.ProtoICMP}); in.Known() {
		t.Errorf("ICMP flow has owner %+v", in)
	}
	if in := f.Owner(nil); in.Known() {
		t.Errorf("nil flow has owner %+v", in)
	}
}

func TestOwnerRetriesThenGivesUp(t *testing.T) {
	p := newFakeProc(t)
	k := &fakeKernel{}
	f := newTestFinder(t, Config{MaxRetries: 3, RetryEvery: time.Millisecond, Workers: 1}, k, p.root)
	fl := flow(1, conntrack.ProtoTCP, "192.0.2.1:40000", "198.51.100.7:443")
	if got := await(t, f, fl); got.Known() {
		t.Fatalf("Owner = %+v, want none", got)
	}
	st := f.Stats()
	if st.Unowned != 1 || st.Retries != 3 {
		t.Errorf("Unowned = %d, Retries = %d; want 1, 3", st.Unowned, st.Retries)
	}
	q := k.queries.Load()
	for range 10 {
		f.Owner(fl)
	}
	time.Sleep(10 * time.Millisecond)
	if k.queries.Load() != q {
		t.Errorf("a flow remembered as unowned was looked up again")
	}
}

func TestOwnerSocketAppearsLater(t *testing.T) {
	p := newFakeProc(t)
	p.process(200, "curl", "1000", "curl")
	k := &fakeKernel{}
	k.add(uint8(unix.IPPROTO_TCP), "192.0.2.1:40000", "198.51.100.7:443", 2222)
	f := newTestFinder(t, Config{RetryEvery: time.Millisecond, Workers: 1}, k, p.root)
	fl := flow(1, conntrack.ProtoTCP, "192.0.2.1:40000", "198.51.100.7:443")
	f.Owner(fl)
	// First lookup: socket found, inode not in /proc yet (scan 1). Then the
	// fd appears; the retry may only rescan once minEvery has passed.
	deadline := time.Now().Add(5 * time.Second)
	for f.Stats().Scans == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	p.fd(200, 3, "socket:[2222]")
	if got := await(t, f, fl); got.PID != 200 {
		t.Fatalf("Owner = %+v, want pid 200", got)
	}
	if st := f.Stats(); st.Scans != 2 {
		t.Errorf("Scans = %d, want 2", st.Scans)
	}
}

func TestOwnerCacheBounded(t *testing.T) {
	p := newFakeProc(t)
	f := newTestFinder(t, Config{Workers: 1}, &fakeKernel{}, p.root)
	f.mu.Lock()
	f.maxEntries = 100
	f.mu.Unlock()
	for i := range 1000 {
		f.Owner(flow(uint32(i), conntrack.ProtoUDP, "192.0.2.1:1000", "192.0.2.2:53"))
	}
	st := f.Stats()
	if st.Cached > 100 || st.Queued > 100 || st.Evicted < 900 {
		t.Errorf("Cached = %d, Queued = %d, Evicted = %d; want <= 100, <= 100, >= 900", st.Cached, st.Queued, st.Evicted)
	}
}

func TestOwnerIdleEntriesDropped(t *testing.T) {
	p := newFakeProc(t)
	f := newTestFinder(t, Config{MaxRetries: -1, Workers: 1}, &fakeKernel{}, p.root)
	clk := newFakeClock()
	f.mu.Lock()
	f.now = clk.now
	f.mu.Unlock()
	old := flow(1, conntrack.ProtoUDP, "192.0.2.1:1000", "192.0.2.2:53")
	await(t, f, old)
	clk.add(idleTTL)
	f.Owner(flow(2, conntrack.ProtoUDP, "192.0.2.1:1001", "192.0.2.2:53"))
	f.mu.Lock()
	_, kept := f.cache[keyOf(old)]
	f.mu.Unlock()
	if kept {
		t.Error("flow not asked about for idleTTL still cached")
	}
}

func TestClose(t *testing.T) {
	p := newFakeProc(t)
	f := newTestFinder(t, Config{Workers: 3}, &fakeKernel{}, p.root)
	f.Owner(flow(1, conntrack.ProtoUDP, "192.0.2.1:1000", "192.0.2.2:53"))
	done := make(chan error)
	go func() { done <- f.Close() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return")
	}
	if err := f.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	f.Owner(flow(2, conntrack.ProtoUDP, "192.0.2.1:1001", "192.0.2.2:53"))
	if st := f.Stats(); st.Queued != 0 {
		t.Errorf("Owner after Close queued a lookup: %+v", st)
	}
}

// TestBurst asks about many new flows at once: every one is resolved
// with a single walk of /proc. BenchmarkBurst does the same with 20,000
// real sockets.
func TestBurst(t *testing.T) {
	if testing.Short() {
		t.Skip("creates 5,000 fixture links")
	}
	const n = 5000
	p := newFakeProc(t)
	p.process(200, "burst", "1000", "burst")
	flows := make([]*conntrack.Flow, n)
	// The fake kernel's linear search is too slow for 20,000 sockets: index
	// them by local port.
	byPort := map[uint16]sockInfo{}
	for i := range n {
		port := uint16(20000 + i)
		local := netip.AddrPortFrom(netip.MustParseAddr("192.0.2.1"), port)
		remote := netip.MustParseAddrPort("192.0.2.2:9")
		byPort[port] = sockInfo{Local: local, Remote: remote, Inode: uint64(100000 + i)}
		p.fd(200, 10+i, "socket:["+strconv.Itoa(100000+i)+"]")
		flows[i] = flow(uint32(i), conntrack.ProtoUDP, local.String(), remote.String())
	}
	f := newFinderWith(t, p.root, &portKernel{byPort: byPort})

	start := time.Now()
	resolved := 0
	for _, fl := range flows {
		if f.Owner(fl).Known() {
			resolved++
		}
	}
	for resolved < n && time.Since(start) < 30*time.Second {
		time.Sleep(5 * time.Millisecond)
		resolved = 0
		for _, fl := range flows {
			if f.Owner(fl).PID == 200 {
				resolved++
			}
		}
	}
	st := f.Stats()
	t.Logf("%d flows resolved in %v: %+v", resolved, time.Since(start), st)
	if resolved != n {
		t.Fatalf("resolved %d of %d", resolved, n)
	}
	if st.Scans != 1 {
		t.Errorf("Scans = %d, want 1", st.Scans)
	}
}

// portKernel finds connected UDP sockets by local port.
type portKernel struct{ byPort map[uint16]sockInfo }

func (k *portKernel) lookup(q sockQuery) (sockInfo, bool, error) {
	s, ok := k.byPort[q.Local.Port()]
	if !ok || s.Local != q.Local || s.Remote != q.Remote {
		return sockInfo{}, false, nil
	}
	return s, true, nil
}

func (k *portKernel) Close() error { return nil }

func newFinderWith(t *testing.T, root string, l sockLooker) *Finder {
	cfg := withDefaults(Config{ProcRoot: root})
	f := newFinder(cfg, []sockLooker{l, l}, testLocal)
	f.index.userName = testUserName
	t.Cleanup(func() { f.Close() })
	return f
}

func TestNewErrors(t *testing.T) {
	_, err := New(Config{NetNS: filepath.Join(t.TempDir(), "nope")})
	if err == nil || !strings.Contains(err.Error(), "nope") {
		t.Errorf("missing namespace file: err = %v, want one naming it", err)
	}
	// Not a namespace: setns fails.
	_, err = New(Config{NetNS: os.DevNull})
	if err == nil || !strings.Contains(err.Error(), "CAP_SYS_ADMIN") {
		t.Errorf("not a namespace: err = %v, want one naming CAP_SYS_ADMIN", err)
	}
}

// A flow the host only forwards (neither end local) is given up on at
// once: no sock_diag query, no retry. A router forwards most of its flows.
func TestOwnerSkipsForwardedFlows(t *testing.T) {
	k := &fakeKernel{}
	f := newTestFinder(t, Config{MaxRetries: 5, RetryEvery: time.Millisecond}, k, newFakeProc(t).root)
	fl := flow(7, conntrack.ProtoUDP, "198.51.100.7:53", "203.0.113.9:5353")
	if in := await(t, f, fl); in.Known() {
		t.Fatalf("forwarded flow owned by %+v", in)
	}
	if q := k.queries.Load(); q != 0 {
		t.Errorf("forwarded flow cost %d sock_diag queries, want 0", q)
	}
	if r := f.Stats().Retries; r != 0 {
		t.Errorf("forwarded flow retried %d times, want 0", r)
	}
	// The worker has read the address list: more forwarded flows are
	// answered at once, without a cache entry or a queued lookup.
	before := f.Stats()
	for i := range 1000 {
		fl := flow(uint32(100+i), conntrack.ProtoUDP, fmt.Sprintf("198.51.100.%d:%d", 1+i%250, 1024+i), "203.0.113.9:5353")
		if in := f.Owner(fl); in.Known() {
			t.Fatalf("forwarded flow owned by %+v", in)
		}
	}
	if after := f.Stats(); after.Cached != before.Cached || after.Queued != 0 {
		t.Errorf("1000 more forwarded flows: cache %d -> %d entries, %d queued; want no change", before.Cached, after.Cached, after.Queued)
	}
	// A local flow still takes its entry.
	f.Owner(flow(2000, conntrack.ProtoUDP, "127.0.0.1:4000", "127.0.0.1:53"))
	if after := f.Stats(); after.Cached != before.Cached+1 {
		t.Errorf("a local flow: cache %d -> %d entries, want one more", before.Cached, after.Cached)
	}
}

// Owner must not block: while a worker holds the address list to fetch it
// anew (a netlink round trip), remote answers "not known" at once.
func TestRemoteDoesNotWaitForAFetch(t *testing.T) {
	release, started := make(chan struct{}), make(chan struct{})
	l := &localAddrs{every: time.Hour, now: time.Now, fetch: func() (map[netip.Addr]bool, error) {
		close(started)
		<-release
		return testLocal()
	}}
	fetched := make(chan struct{})
	go func() {
		defer close(fetched)
		l.isLocal(netip.MustParseAddr("192.0.2.1"))
	}()
	<-started
	answer := make(chan bool)
	go func() { answer <- l.remote(netip.MustParseAddr("198.51.100.7")) }()
	select {
	case known := <-answer:
		if known {
			t.Error("an address is known remote while the list is being fetched")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("remote waited for the address list's fetch")
	}
	close(release)
	<-fetched
	for addr, want := range map[string]bool{"198.51.100.7": true, "192.0.2.1": false, "::ffff:192.0.2.1": false, "127.0.0.1": false} {
		if got := l.remote(netip.MustParseAddr(addr)); got != want {
			t.Errorf("remote(%s) = %v after the fetch, want %v", addr, got, want)
		}
	}
}

// TestAwait: Await returns once every flow is answered, the owner then
// known to Owner: at once for a socket in /proc, after the index's next
// allowed rescan for one that appears there late, and without waiting
// through the retries of a flow whose socket is missing.
func TestAwait(t *testing.T) {
	p := newFakeProc(t)
	p.process(100, "curl", "1000", "curl")
	p.fd(100, 3, "socket:[1111]")
	p.process(200, "wget", "1000", "wget")
	k := &fakeKernel{}
	tcp := uint8(unix.IPPROTO_TCP)
	k.add(tcp, "192.0.2.1:40000", "198.51.100.7:443", 1111)
	k.add(tcp, "192.0.2.1:40001", "198.51.100.7:443", 2222)
	// A retry of a miss an hour away: Await must not wait for it.
	f := newTestFinder(t, Config{RetryEvery: time.Hour}, k, p.root)
	owned := flow(1, conntrack.ProtoTCP, "192.0.2.1:40000", "198.51.100.7:443")
	late := flow(2, conntrack.ProtoTCP, "192.0.2.1:40001", "198.51.100.7:443")
	missing := flow(3, conntrack.ProtoTCP, "192.0.2.1:40002", "198.51.100.7:443")
	icmp := &conntrack.Flow{ID: 4, Family: conntrack.IPv4, Proto: conntrack.ProtoICMP}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f.Await(ctx, []*conntrack.Flow{owned, missing, icmp, nil})
	if ctx.Err() != nil {
		t.Fatal("Await waited for a flow without a socket until its context ended")
	}
	if got := f.Owner(owned); got.PID != 100 {
		t.Errorf("after Await, Owner = %+v, want pid 100", got)
	}
	if got := f.Owner(missing); got.Known() {
		t.Errorf("flow without a socket: Owner = %+v", got)
	}

	// The socket of late is found, but its fd is not in the scan made
	// for owned; the next scan, allowed scanEvery later, has it.
	f.Owner(late)
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		e := f.cache[keyOf(late)]
		waiting := e.state == stateRetry && e.sock != nil
		f.mu.Unlock()
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("lookup of the late flow not made: %+v", f.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	p.fd(200, 3, "socket:[2222]")
	f.Await(ctx, []*conntrack.Flow{late})
	if ctx.Err() != nil {
		t.Fatal("Await of a socket the index had yet to see did not return")
	}
	if got := f.Owner(late); got.PID != 200 {
		t.Errorf("after Await, Owner = %+v, want pid 200 (stats %+v)", got, f.Stats())
	}

	f.Close()
	closedCtx, cancelClosed := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancelClosed()
	f.Await(closedCtx, []*conntrack.Flow{flow(5, conntrack.ProtoTCP, "192.0.2.1:40005", "198.51.100.7:443")})
	if closedCtx.Err() != nil {
		t.Error("Await on a closed Finder waited for its context")
	}
}
