package kernel

// Integration tests: real traffic between two throw-away namespaces
// (nstest), read by a Table on namespace A, checked against conntrack(8).
// They need root, ip, nft and conntrack: skipped locally without them,
// failed under CI=true.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/conntrack/ctgen"
	"github.com/flowtop/flowtop/conntrack/nstest"
)

// ctEntry is one line of `conntrack -L -o extended,id`.
type ctEntry struct {
	family, proto, state string
	id                   uint32
	orig, reply          map[string]string // src, dst, sport, dport, type, code, id
	origCount, replyCnt  conntrack.Counter
}

// parseConntrack reads lines like
//
//	ipv4 2 tcp 6 431999 ESTABLISHED src=A dst=B sport=1 dport=2 packets=5 bytes=300 src=B dst=A sport=2 dport=1 packets=4 bytes=200 [ASSURED] mark=0 use=1 id=123
//	ipv6 10 icmpv6 58 29 src=A dst=B type=128 code=0 id=7 packets=1 bytes=104 src=B dst=A type=129 code=0 id=7 packets=1 bytes=104 mark=0 use=1 id=456
func parseConntrack(t *testing.T, out string) []ctEntry {
	t.Helper()
	var list []ctEntry
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || (f[0] != "ipv4" && f[0] != "ipv6") {
			continue
		}
		e := ctEntry{family: f[0], proto: f[2], orig: map[string]string{}, reply: map[string]string{}}
		phase := 0 // 0 original tuple, 1 reply tuple, 2 the rest
		for _, tok := range f[5:] {
			k, v, ok := strings.Cut(tok, "=")
			if !ok {
				if phase == 0 && len(e.orig) == 0 && !strings.HasPrefix(tok, "[") {
					e.state = tok
				}
				continue
			}
			n, _ := strconv.ParseUint(v, 10, 64)
			switch {
			case k == "src" && phase == 0 && e.orig["src"] != "":
				phase = 1
			case k == "mark" || k == "use" || k == "zone" || k == "secctx" || k == "labels":
				phase = 2
			}
			cnt := &e.origCount
			if phase == 1 {
				cnt = &e.replyCnt
			}
			switch {
			case k == "packets" && phase < 2:
				cnt.Packets = n
			case k == "bytes" && phase < 2:
				cnt.Bytes = n
			case phase == 0:
				e.orig[k] = v
			case phase == 1:
				e.reply[k] = v
			case k == "id":
				e.id = uint32(n)
			}
		}
		if e.id == 0 {
			t.Fatalf("no conntrack id in %q", line)
		}
		list = append(list, e)
	}
	return list
}

func conntrackList(t *testing.T, ns *nstest.NS) []ctEntry {
	t.Helper()
	return parseConntrack(t, ns.Exec(t, "conntrack", "-L", "-o", "extended,id"))
}

// find returns the entry whose original tuple has these fields.
func findCT(list []ctEntry, proto string, kv map[string]string) (ctEntry, bool) {
	for _, e := range list {
		if e.proto != proto {
			continue
		}
		match := true
		for k, v := range kv {
			if e.orig[k] != v {
				match = false
			}
		}
		if match {
			return e, true
		}
	}
	return ctEntry{}, false
}

// tableEnv is a Table running on namespace A of a fresh pair, with
// accounting and timestamps switched on there first.
type tableEnv struct {
	a, b  *nstest.NS
	src   *Source
	tbl   *conntrack.Table
	sub   <-chan *conntrack.Snapshot
	ended <-chan conntrack.Ended
	guard *SysctlGuard
}

func startTableEnv(t *testing.T, interval time.Duration) *tableEnv {
	t.Helper()
	nstest.Require(t, "nft", "conntrack")
	a, b := nstest.Pair(t)
	env := &tableEnv{a: a, b: b}
	src, err := Open(a.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	env.src = src
	guard, err := EnableAccounting(src.NetnsFile(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if guard.Warning != "" {
		t.Fatalf("EnableAccounting: %s", guard.Warning)
	}
	t.Cleanup(func() {
		if err := guard.Restore(); err != nil {
			t.Errorf("restore sysctls: %v", err)
		}
	})
	env.guard = guard
	count, err := OpenCount(src.NetnsFile())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { count.Close() })
	env.tbl = conntrack.NewTable(conntrack.TableConfig{Kernel: src, Interval: interval, Filter: allFilter(),
		KernelFlows: count.Read, Accounting: guard.Enabled})
	env.ended = env.tbl.SubscribeEnded(1024)
	env.sub = runTable(t, env.tbl)
	awaitSnap(t, env.sub, "the initial dump", func(*conntrack.Snapshot) bool { return true })
	return env
}

// nextSnapshot returns a snapshot made after a full refresh that began
// after the call: every counter in it was read from the kernel after the
// call. A snapshot made between full refreshes holds older counters (under
// load, when a dump costs more than a quarter of the interval, the table
// refreshes less often), so counting snapshots is not enough: the
// refreshes are counted.
func (env *tableEnv) nextSnapshot(t *testing.T) *conntrack.Snapshot {
	t.Helper()
	// The refresh after the last published one may have begun before the
	// call; the one after it begins once that one is published.
	want := env.tbl.Latest().Health.Refreshes + 2
	return awaitSnap(t, env.sub, fmt.Sprintf("full refresh %d", want),
		func(s *conntrack.Snapshot) bool { return s.Health.Refreshes >= want })
}

// awaitSnap waits up to nstest.Patience for a snapshot ok accepts. Unlike
// waitSnap (fake kernels), it allows for a busy machine, and its failure
// message summarises the last snapshot instead of printing its flows.
func awaitSnap(t *testing.T, sub <-chan *conntrack.Snapshot, what string, ok func(*conntrack.Snapshot) bool) *conntrack.Snapshot {
	t.Helper()
	deadline := time.After(nstest.Patience)
	var last *conntrack.Snapshot
	for {
		select {
		case s := <-sub:
			if ok(s) {
				return s
			}
			last = s
		case <-deadline:
			t.Fatalf("no snapshot with %s within %v; last: %s", what, nstest.Patience, snapSummary(last))
		}
	}
}

// snapSummary is a snapshot in a line: counts and health, no flows.
func snapSummary(s *conntrack.Snapshot) string {
	if s == nil {
		return "none"
	}
	return nstest.Truncate(fmt.Sprintf("%d flows (%d in the table) at %s, health %+v",
		len(s.Flows), s.TableFlows, s.Time.Format(time.StampMilli), s.Health))
}

// echoUDP serves UDP echo in ns on addr.
func echoUDP(t *testing.T, ns *nstest.NS, addr string) string {
	return nstest.EchoUDP(t, ns, addr).String()
}

// exchangeTimeout bounds one request/response between the namespaces:
// microseconds when idle, and no packet is lost on a veth pair, so only a
// stalled machine comes near it.
const exchangeTimeout = 10 * time.Second

// peer is one client socket in A with a request/response exchange.
type peer struct {
	name  string
	proto conntrack.Proto
	fam   conntrack.Family
	// exchange sends one message and waits for the answer.
	exchange func() error
	close    func()
	// orig is what conntrack -L prints for the original tuple.
	orig map[string]string
	ct   string // conntrack's protocol name
}

func dialPeer(t *testing.T, a *nstest.NS, network, addr string, fam conntrack.Family) *peer {
	t.Helper()
	var c net.Conn
	if err := a.Do(func() (err error) { c, err = net.DialTimeout(network, addr, exchangeTimeout); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	proto, ct := conntrack.ProtoTCP, "tcp"
	if network == "udp" {
		proto, ct = conntrack.ProtoUDP, "udp"
	}
	la, ra := netip.MustParseAddrPort(c.LocalAddr().String()), netip.MustParseAddrPort(c.RemoteAddr().String())
	msg := make([]byte, 200)
	buf := make([]byte, 200)
	return &peer{
		name: fmt.Sprintf("%s/%s", network, fam), proto: proto, fam: fam, ct: ct,
		orig: map[string]string{"src": la.Addr().String(), "dst": ra.Addr().String(),
			"sport": strconv.Itoa(int(la.Port())), "dport": strconv.Itoa(int(ra.Port()))},
		exchange: func() error {
			c.SetDeadline(time.Now().Add(exchangeTimeout))
			if _, err := c.Write(msg); err != nil {
				return err
			}
			_, err := io.ReadFull(c, buf)
			return err
		},
		close: func() { c.Close() },
	}
}

// pingPeer sends ICMP echo requests from A with a fixed id over a raw
// socket: no ping binary needed.
func pingPeer(t *testing.T, a *nstest.NS, dst string, id int) *peer {
	t.Helper()
	v6 := strings.Contains(dst, ":")
	network, typ, reply, proto, ct, fam := "ip4:icmp", icmp.Type(ipv4.ICMPTypeEcho), icmp.Type(ipv4.ICMPTypeEchoReply), 1, "icmp", conntrack.IPv4
	src := nstest.AddrA4
	if v6 {
		network, typ, reply, proto, ct, fam = "ip6:ipv6-icmp", ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply, 58, "icmpv6", conntrack.IPv6
		src = nstest.AddrA6
	}
	var c *icmp.PacketConn
	if err := a.Do(func() (err error) { c, err = icmp.ListenPacket(network, src); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	dstAddr := &net.IPAddr{IP: net.ParseIP(dst)}
	seq := 0
	buf := make([]byte, 1500)
	echoType := "8"
	if v6 {
		echoType = "128"
	}
	return &peer{
		name: ct, proto: conntrack.Proto(proto), fam: fam, ct: ct,
		orig: map[string]string{"src": src, "dst": dst, "type": echoType, "id": strconv.Itoa(id)},
		exchange: func() error {
			seq++
			m := icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: seq, Data: make([]byte, 56)}}
			b, err := m.Marshal(nil) // the kernel fills in the ICMPv6 checksum
			if err != nil {
				return err
			}
			if _, err := c.WriteTo(b, dstAddr); err != nil {
				return err
			}
			c.SetReadDeadline(time.Now().Add(exchangeTimeout))
			for {
				n, _, err := c.ReadFrom(buf)
				if err != nil {
					return err
				}
				r, err := icmp.ParseMessage(proto, buf[:n])
				if err != nil || r.Type != reply {
					continue
				}
				if e, ok := r.Body.(*icmp.Echo); ok && e.ID == id && e.Seq == seq {
					return nil
				}
			}
		},
		close: func() { c.Close() },
	}
}

// everyKindOfPeer makes a client in a of each kind of flow: TCP, UDP and
// ICMP echo, over IPv4 and IPv6, to servers in b.
func everyKindOfPeer(t *testing.T, a, b *nstest.NS) []*peer {
	return []*peer{
		dialPeer(t, a, "tcp", nstest.EchoTCP(t, b, nstest.AddrB4+":0").String(), conntrack.IPv4),
		dialPeer(t, a, "tcp", nstest.EchoTCP(t, b, "["+nstest.AddrB6+"]:0").String(), conntrack.IPv6),
		dialPeer(t, a, "udp", echoUDP(t, b, nstest.AddrB4+":0"), conntrack.IPv4),
		dialPeer(t, a, "udp", echoUDP(t, b, "["+nstest.AddrB6+"]:0"), conntrack.IPv6),
		pingPeer(t, a, nstest.AddrB4, 4242),
		pingPeer(t, a, nstest.AddrB6, 4343),
	}
}

// TestTableRealTraffic runs TCP, UDP and ICMP over IPv4 and IPv6 between
// two namespaces and checks what the table shows against conntrack -L.
func TestTableRealTraffic(t *testing.T) {
	env := startTableEnv(t, 100*time.Millisecond)
	a, b := env.a, env.b
	testStart := time.Now()
	peers := everyKindOfPeer(t, a, b)
	for _, p := range peers {
		for range 3 {
			if err := p.exchange(); err != nil {
				t.Fatalf("%s: %v", p.name, err)
			}
		}
	}

	// Traffic keeps flowing while conntrack and the table are read.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, p := range peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-time.After(5 * time.Millisecond):
				}
				if err := p.exchange(); err != nil {
					t.Errorf("%s: %v", p.name, err)
					return
				}
			}
		}()
	}
	stopTraffic := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopTraffic)

	before := conntrackList(t, a)
	snap := env.nextSnapshot(t)
	after := conntrackList(t, a)
	stopTraffic()

	got := byID(snap)
	flowIDs := map[string]uint32{}
	for _, p := range peers {
		ctBefore, ok := findCT(before, p.ct, p.orig)
		if !ok {
			t.Fatalf("%s: conntrack -L has no flow %v", p.name, p.orig)
		}
		ctAfter, ok := findCT(after, p.ct, p.orig)
		if !ok || ctAfter.id != ctBefore.id {
			t.Fatalf("%s: flow %v changed id or vanished during the test", p.name, p.orig)
		}
		flowIDs[p.name] = ctBefore.id
		f, ok := got[ctBefore.id]
		if !ok {
			t.Errorf("%s: flow %d (%v) missing from the snapshot", p.name, ctBefore.id, p.orig)
			continue
		}
		if f.Family != p.fam || f.Proto != p.proto || f.NAT() != conntrack.NATNone {
			t.Errorf("%s: family %s proto %s nat %q", p.name, f.Family, f.Proto, f.NAT())
		}
		o := f.Orig
		if o.Src.String() != p.orig["src"] || o.Dst.String() != p.orig["dst"] ||
			f.Reply.Src != o.Dst || f.Reply.Dst != o.Src {
			t.Errorf("%s: tuples %+v / %+v, want %v", p.name, o, f.Reply, p.orig)
		}
		if p.proto.HasPorts() {
			if strconv.Itoa(int(o.SrcPort)) != p.orig["sport"] || strconv.Itoa(int(o.DstPort)) != p.orig["dport"] {
				t.Errorf("%s: ports %d -> %d, want %v", p.name, o.SrcPort, o.DstPort, p.orig)
			}
		} else if strconv.Itoa(int(f.ICMP.ID)) != p.orig["id"] || strconv.Itoa(int(f.ICMP.Type)) != p.orig["type"] {
			t.Errorf("%s: icmp id %d type %d, want %v", p.name, f.ICMP.ID, f.ICMP.Type, p.orig)
		}
		if want := ctBefore.state; f.StateName() != want {
			t.Errorf("%s: state %q, conntrack says %q", p.name, f.StateName(), want)
		}
		if p.proto == conntrack.ProtoTCP && f.StateName() != "ESTABLISHED" {
			t.Errorf("%s: state %s, want ESTABLISHED", p.name, f.StateName())
		}
		if !f.HasCounters || f.Start.Time().Before(testStart.Add(-time.Second)) || f.Start.Time().After(time.Now()) {
			t.Errorf("%s: HasCounters %v, start %v (test began %v)", p.name, f.HasCounters, f.Start, testStart)
		}
		between := func(what string, lo, v, hi uint64) {
			if v < lo || v > hi {
				t.Errorf("%s: %s = %d, not within conntrack's %d .. %d", p.name, what, v, lo, hi)
			}
		}
		between("orig bytes", ctBefore.origCount.Bytes, f.OrigCount.Bytes, ctAfter.origCount.Bytes)
		between("orig packets", ctBefore.origCount.Packets, f.OrigCount.Packets, ctAfter.origCount.Packets)
		between("reply bytes", ctBefore.replyCnt.Bytes, f.ReplyCount.Bytes, ctAfter.replyCnt.Bytes)
		between("reply packets", ctBefore.replyCnt.Packets, f.ReplyCount.Packets, ctAfter.replyCnt.Packets)
		if ctAfter.origCount.Bytes <= ctBefore.origCount.Bytes {
			t.Errorf("%s: no traffic between the two conntrack readings: the bounds prove nothing", p.name)
		}
		if f.OrigCount.Bytes == 0 || f.ReplyCount.Bytes == 0 || f.OrigRate.Avg40 <= 0 {
			t.Errorf("%s: counters %+v %+v rate %+v", p.name, f.OrigCount, f.ReplyCount, f.OrigRate)
		}
	}
	if snap.Health.KernelFlows < len(peers) || !snap.Health.Accounting || !snap.Health.Timestamps {
		t.Errorf("health %+v", snap.Health)
	}
	if t.Failed() {
		t.FailNow()
	}

	// DESTROY: close the TCP connections, delete one flow with
	// conntrack -D and the others through Source.Delete.
	for _, p := range peers {
		p.close()
	}
	waitTCPClosed(t, a, peers, flowIDs)
	final := byID(env.nextSnapshot(t))
	udp4 := peers[2]
	a.Exec(t, "conntrack", "-D", "-p", "udp", "--orig-src", nstest.AddrA4, "--sport", udp4.orig["sport"])
	for _, p := range peers {
		if p == udp4 {
			continue
		}
		f, ok := final[flowIDs[p.name]]
		if !ok {
			t.Fatalf("%s: flow %d gone before its delete", p.name, flowIDs[p.name])
		}
		if err := env.src.Delete(&f); err != nil {
			t.Errorf("%s: Source.Delete: %v", p.name, err)
		}
	}
	lastCT := map[uint32]ctEntry{}
	for _, e := range after {
		lastCT[e.id] = e
	}
	want := map[uint32]string{}
	for name, id := range flowIDs {
		want[id] = name
	}
	deadline := time.After(nstest.Patience)
	for len(want) > 0 {
		select {
		case e := <-env.ended:
			name, ok := want[e.ID]
			if !ok {
				continue
			}
			delete(want, e.ID)
			ct := lastCT[e.ID]
			if !e.HasCounters || e.OrigCount.Bytes < ct.origCount.Bytes || e.ReplyCount.Packets < ct.replyCnt.Packets {
				t.Errorf("%s: ended with counters %+v %+v, below conntrack's earlier %+v %+v",
					name, e.OrigCount, e.ReplyCount, ct.origCount, ct.replyCnt)
			}
			if e.Start.IsZero() || e.Stop.Before(e.Start.Time()) || e.Stop.After(time.Now().Add(time.Second)) {
				t.Errorf("%s: ended start %v stop %v", name, e.Start, e.Stop)
			}
		case <-deadline:
			t.Fatalf("no DESTROY (Ended record) within %v for %v", nstest.Patience, want)
		}
	}
	s := env.nextSnapshot(t)
	for name, id := range flowIDs {
		if _, ok := byID(s)[id]; ok {
			t.Errorf("%s: flow %d still in the snapshot after DESTROY", name, id)
		}
	}
	for _, e := range conntrackList(t, a) {
		for name, id := range flowIDs {
			if e.id == id {
				t.Errorf("%s: flow %d still in the kernel", name, id)
			}
		}
	}
}

// waitTCPClosed waits until the kernel has seen the whole FIN exchange of
// the TCP peers' flows (closed from A, echoed back by B): a flow deleted
// while its last packets are still on the way could be tracked again by
// them.
func waitTCPClosed(t *testing.T, a *nstest.NS, peers []*peer, ids map[string]uint32) {
	t.Helper()
	nstest.WaitFor(t, nstest.Patience, "TCP flows in TIME_WAIT after close", func() (bool, string) {
		states := map[uint32]string{}
		for _, e := range conntrackList(t, a) {
			states[e.id] = e.state
		}
		var open []string
		for _, p := range peers {
			if st := states[ids[p.name]]; p.proto == conntrack.ProtoTCP && st != "TIME_WAIT" && st != "CLOSE" {
				open = append(open, p.name+" "+st)
			}
		}
		return len(open) == 0, fmt.Sprint(open)
	})
}

// sysctlNS is a fresh namespace and its open file, for the sysctl guard:
// the host's sysctls are never touched.
func sysctlNS(t *testing.T) (*nstest.NS, *os.File) {
	t.Helper()
	nstest.Require(t, "nft")
	ns := nstest.New(t, "s")
	f, err := os.Open(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return ns, f
}

func sysctls(t *testing.T, ns *nstest.NS) [2]string {
	t.Helper()
	return [2]string{ns.ReadSysctl(t, SysctlAcct), ns.ReadSysctl(t, SysctlTimestamp)}
}

func setSysctls(t *testing.T, ns *nstest.NS, v [2]string) {
	t.Helper()
	ns.WriteSysctl(t, SysctlAcct, v[0])
	ns.WriteSysctl(t, SysctlTimestamp, v[1])
}

func statePath(t *testing.T, dir string, f *os.File) string {
	t.Helper()
	id, err := nsID(f)
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, "sysctl-"+id+".json")
}

func readState(t *testing.T, path string) guardState {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("state file: %v", err)
	}
	var st guardState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("state file %s: %v", b, err)
	}
	return st
}

func writeState(t *testing.T, path string, st guardState) {
	t.Helper()
	b, _ := json.Marshal(st)
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// ownerOf is the state file's record of the running process pid.
func ownerOf(t *testing.T, pid int) owner {
	t.Helper()
	o, ok := runningProcess(pid)
	if !ok {
		t.Fatalf("process %d is not running", pid)
	}
	return o
}

// deadPID returns the PID of a process that has ended.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestSysctlGuardRestores(t *testing.T) {
	ns, f := sysctlNS(t)
	for _, prev := range [][2]string{{"0", "0"}, {"0", "1"}, {"1", "0"}, {"1", "1"}} {
		dir := t.TempDir()
		setSysctls(t, ns, prev)
		g, err := EnableAccounting(f, dir)
		if err != nil || g.Warning != "" {
			t.Fatalf("EnableAccounting: %v %q", err, g.Warning)
		}
		if got := sysctls(t, ns); got != [2]string{"1", "1"} {
			t.Errorf("%v: sysctls after EnableAccounting = %v, want 1 1", prev, got)
		}
		if acct, ts := g.Enabled(); !acct || !ts {
			t.Errorf("%v: Enabled = %v %v", prev, acct, ts)
		}
		st := readState(t, statePath(t, dir, f))
		want := map[string]string{SysctlAcct: prev[0], SysctlTimestamp: prev[1]}
		if len(st.Users) != 1 || st.Users[0] != ownerOf(t, os.Getpid()) || !maps.Equal(st.Values, want) {
			t.Errorf("%v: state file %+v, want our pid and %v", prev, st, want)
		}
		if err := g.Restore(); err != nil {
			t.Fatalf("Restore: %v", err)
		}
		if got := sysctls(t, ns); got != prev {
			t.Errorf("sysctls after Restore = %v, want %v", got, prev)
		}
		if _, err := os.Stat(statePath(t, dir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("state file left after Restore: %v", err)
		}
		// Restore again (signal handler and deferred call both run) is a no-op.
		setSysctls(t, ns, [2]string{"1", "1"})
		if err := g.Restore(); err != nil {
			t.Errorf("second Restore: %v", err)
		}
		if got := sysctls(t, ns); got != [2]string{"1", "1"} {
			t.Errorf("second Restore wrote again: %v", got)
		}
	}
}

// TestSysctlGuardRecoversAfterKill: a flowtop killed with SIGKILL leaves
// accounting on and its state file behind; the next start restores the
// recorded values before recording its own.
func TestSysctlGuardRecoversAfterKill(t *testing.T) {
	ns, f := sysctlNS(t)
	dir := t.TempDir()
	path := statePath(t, dir, f)
	orig := [2]string{"0", "1"}
	setSysctls(t, ns, orig)
	writeState(t, path, guardState{Users: []owner{{PID: deadPID(t), Start: 1}}, Values: map[string]string{SysctlAcct: orig[0], SysctlTimestamp: orig[1]}})
	setSysctls(t, ns, [2]string{"1", "1"}) // what the killed flowtop left

	g, err := EnableAccounting(f, dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := sysctls(t, ns); got != [2]string{"1", "1"} {
		t.Errorf("sysctls = %v, want 1 1", got)
	}
	st := readState(t, path)
	if len(st.Users) != 1 || st.Users[0].PID != os.Getpid() || st.Values[SysctlAcct] != "0" || st.Values[SysctlTimestamp] != "1" {
		t.Errorf("state file %+v: want our pid with the killed flowtop's recorded values, not its leftovers", st)
	}
	if err := g.Restore(); err != nil {
		t.Fatal(err)
	}
	if got := sysctls(t, ns); got != orig {
		t.Errorf("after Restore: %v, want the values from before the killed flowtop, %v", got, orig)
	}
}

// TestRestoreLeftover is what the watchdog does when flowtop died: restore
// what that PID recorded, and leave another live flowtop's file alone.
func TestRestoreLeftover(t *testing.T) {
	ns, f := sysctlNS(t)
	dir := t.TempDir()
	path := statePath(t, dir, f)
	sleeper := exec.Command("sleep", "30")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
	writeState(t, path, guardState{Users: []owner{ownerOf(t, sleeper.Process.Pid)}, Values: map[string]string{SysctlAcct: "0", SysctlTimestamp: "0"}})
	setSysctls(t, ns, [2]string{"1", "1"})

	// The file's owner still runs and is not the one asked about.
	if err := RestoreLeftover(f, dir, deadPID(t)); err != nil {
		t.Fatal(err)
	}
	if got := sysctls(t, ns); got != [2]string{"1", "1"} {
		t.Errorf("restored the values of a live flowtop: %v", got)
	}
	if _, err := os.Stat(path); err != nil {
		t.Errorf("removed a live flowtop's state file: %v", err)
	}

	if err := RestoreLeftover(f, dir, sleeper.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if got := sysctls(t, ns); got != [2]string{"0", "0"} {
		t.Errorf("after RestoreLeftover: %v, want 0 0", got)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state file left: %v", err)
	}
	// Nothing left to do: no error, nothing written.
	setSysctls(t, ns, [2]string{"1", "0"})
	if err := RestoreLeftover(f, dir, sleeper.Process.Pid); err != nil {
		t.Fatal(err)
	}
	if got := sysctls(t, ns); got != [2]string{"1", "0"} {
		t.Errorf("RestoreLeftover without a state file changed %v", got)
	}
}

// TestTableBurst creates 20,000 conntrack entries in one go while a table
// runs and checks that its snapshot comes to hold every flow the kernel
// holds (how soon is logged; flowtop-bench measures it). The table
// refreshes only on overrun here (Interval 1 h), so events and resyncs
// alone must get there; with a tiny event buffer the kernel must drop
// events, and the resync repairs it.
func TestTableBurst(t *testing.T) {
	for _, tc := range []struct {
		name string
		tiny bool
	}{{"default buffer", false}, {"tiny buffer", true}} {
		t.Run(tc.name, func(t *testing.T) { testBurst(t, tc.tiny) })
	}
}

func testBurst(t *testing.T, tiny bool) {
	const n = 20000
	nstest.Require(t, "nft")
	ns := nstest.New(t, "burst")
	src, err := Open(ns.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	if tiny {
		if err := src.events.SetReadBuffer(1); err != nil { // the kernel's minimum, ~2 KiB
			t.Fatal(err)
		}
	}
	count, err := OpenCount(src.NetnsFile())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { count.Close() })
	tbl := conntrack.NewTable(conntrack.TableConfig{Kernel: src, Interval: time.Hour, Filter: allFilter(), KernelFlows: count.Read})
	sub := runTable(t, tbl)
	waitSnap(t, sub, "the initial dump", func(*conntrack.Snapshot) bool { return true })

	// Batched requests: ti-mo's Create waits for an answer per flow, which
	// spreads 20,000 flows over 8-18 s in a -race binary on a busy machine.
	begin := time.Now()
	if err := ctgen.CreateUDPFlows(int(src.NetnsFile().Fd()), n); err != nil {
		t.Fatalf("create flows: %v", err)
	}
	burst := time.Since(begin)

	var s *conntrack.Snapshot
	nstest.WaitFor(t, nstest.Patience, "a snapshot holding every flow of the burst", func() (bool, string) {
		tbl.SetFilter(allFilter()) // publish what the table holds now
		s = awaitSnap(t, sub, "a republish", func(*conntrack.Snapshot) bool { return true })
		kernel := count.Read()
		return kernel >= n && len(s.Flows) == kernel, fmt.Sprintf("kernel %d flows; %s", kernel, snapSummary(s))
	})
	t.Logf("%d flows created in %v; snapshot complete %v after the burst; events %d, overruns %d, resyncs %d",
		n, burst.Round(time.Millisecond), time.Since(begin.Add(burst)).Round(time.Millisecond),
		s.Health.Events, s.Health.Overruns, s.Health.Resyncs)
	if tiny && (s.Health.Overruns == 0 || s.Health.Resyncs == 0) {
		t.Errorf("tiny buffer: overruns %d, resyncs %d; want both counted", s.Health.Overruns, s.Health.Resyncs)
	}
	if s.Health.Overruns > 0 && s.Health.Resyncs == 0 {
		t.Errorf("overruns %d without a resync", s.Health.Overruns)
	}
	if !tiny && s.Health.Overruns == 0 && s.Health.Events < n {
		t.Errorf("no overrun, yet only %d events for %d new flows", s.Health.Events, n)
	}
}
