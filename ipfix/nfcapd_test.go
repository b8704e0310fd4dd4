package ipfix

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"github.com/flowtop/flowtop/conntrack/kernel"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/conntrack/nstest"
	"github.com/flowtop/flowtop/export"
)

// Integration tests against a real collector, nfdump's nfcapd, with real
// flows in test namespaces: a client, a router that masquerades what
// leaves towards the server, and the server. flowtop's table watches the
// router; the collector listens on 127.0.0.1.

// Addresses inside the test namespaces only.
const (
	lanClient4 = "192.0.2.2"
	lanRouter4 = "192.0.2.1"
	lanClient6 = "2001:db8:77::2"
	lanRouter6 = "2001:db8:77::1"
	wanRouter4 = "198.51.100.1"
	wanServer4 = "198.51.100.2"
)

// natTopology builds client — router — server, with the router
// forwarding and masquerading what goes out of its "wan" side.
func natTopology(t *testing.T) (client, router, server *nstest.NS) {
	t.Helper()
	client, router, server = nstest.New(t, "ic"), nstest.New(t, "ir"), nstest.New(t, "is")
	link := func(a *nstest.NS, an string, b *nstest.NS, bn string) {
		out, err := exec.Command("ip", "link", "add", an, "netns", a.Name, "type", "veth", "peer", "name", bn, "netns", b.Name).CombinedOutput()
		if err != nil {
			t.Fatalf("ip link add: %v: %s", err, out)
		}
	}
	link(client, "lan", router, "lan")
	link(router, "wan", server, "wan")
	client.Exec(t, "ip", "addr", "add", lanClient4+"/24", "dev", "lan")
	client.Exec(t, "ip", "-6", "addr", "add", lanClient6+"/64", "dev", "lan", "nodad")
	client.Exec(t, "ip", "link", "set", "lan", "up")
	client.Exec(t, "ip", "route", "add", "default", "via", lanRouter4)
	router.Exec(t, "ip", "addr", "add", lanRouter4+"/24", "dev", "lan")
	router.Exec(t, "ip", "-6", "addr", "add", lanRouter6+"/64", "dev", "lan", "nodad")
	router.Exec(t, "ip", "addr", "add", wanRouter4+"/24", "dev", "wan")
	router.Exec(t, "ip", "link", "set", "lan", "up")
	router.Exec(t, "ip", "link", "set", "wan", "up")
	server.Exec(t, "ip", "addr", "add", wanServer4+"/24", "dev", "wan")
	server.Exec(t, "ip", "link", "set", "wan", "up")
	router.WriteSysctl(t, "net/ipv4/ip_forward", "1")
	router.EnableConntrack(t)
	router.NFT(t, `table ip ipfixtest {
	chain post {
		type nat hook postrouting priority srcnat;
		oifname "wan" masquerade
	}
}
`)
	return client, router, server
}

// routerTable runs flowtop's table on the router, with accounting and
// timestamps on, and an exporter reading it.
func routerTable(t *testing.T, router *nstest.NS, cfg Config, tune func(*Exporter)) *Exporter {
	t.Helper()
	src, err := kernel.Open(router.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	guard, err := kernel.EnableAccounting(src.NetnsFile(), t.TempDir())
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
	tbl := conntrack.NewTable(conntrack.TableConfig{Kernel: src, Interval: 200 * time.Millisecond,
		Filter: allFilter(), Accounting: guard.Enabled})
	e, err := New(cfg, export.Env{Latest: tbl.Latest, Ended: tbl.SubscribeEnded(EndedBuffer)})
	if err != nil {
		t.Fatal(err)
	}
	if tune != nil {
		tune(e)
	}
	ctx, cancel := context.WithCancel(context.Background())
	tableDone := make(chan error, 1)
	go func() { tableDone <- tbl.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-tableDone; err != nil {
			t.Errorf("table: %v", err)
		}
	})
	waitFor(t, 20*time.Second, "the first snapshot", func() bool { return tbl.Latest() != nil })
	runExporter(t, e)
	return e
}

// nfcapd is a running collector writing into dir.
type nfcapd struct {
	cmd  *exec.Cmd
	dir  string
	out  *nstest.SyncBuffer
	done chan struct{}
}

// freeUDPPort finds a UDP port free on 127.0.0.1.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return pc.LocalAddr().(*net.UDPAddr).Port
}

// startNfcapd starts nfcapd on 127.0.0.1:port, rotating its files every
// 2 s (its shortest), and stops it when the test ends.
func startNfcapd(t *testing.T, port int) *nfcapd {
	t.Helper()
	n := &nfcapd{dir: t.TempDir(), out: &nstest.SyncBuffer{}, done: make(chan struct{})}
	n.cmd = exec.Command("nfcapd", "-b", "127.0.0.1", "-p", strconv.Itoa(port), "-w", n.dir, "-t", "2", "-I", "flowtop")
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.out
	if err := n.cmd.Start(); err != nil {
		t.Fatalf("nfcapd: %v", err)
	}
	go func() { n.cmd.Wait(); close(n.done) }()
	t.Cleanup(func() {
		n.stop(t)
		if t.Failed() {
			t.Logf("nfcapd output (last 600 bytes): %s", tail(n.out.String(), 600))
		}
	})
	waitFor(t, 20*time.Second, "nfcapd to start", func() bool {
		select {
		case <-n.done:
			t.Fatalf("nfcapd exited: %s", tail(n.out.String(), 600))
		default:
		}
		return strings.Contains(n.out.String(), "Startup")
	})
	return n
}

// stop ends nfcapd with SIGTERM, which writes out its current file.
func (n *nfcapd) stop(t *testing.T) {
	select {
	case <-n.done:
		return
	default:
	}
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
	case <-time.After(10 * time.Second):
		n.cmd.Process.Kill()
		<-n.done
		t.Errorf("nfcapd did not stop on SIGTERM")
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

// nfRecord is a record as `nfdump -o json` prints it (nfdump 1.7).
type nfRecord struct {
	Type       string `json:"type"`
	First      string `json:"first"`
	Last       string `json:"last"`
	Proto      int    `json:"proto"`
	Src4       string `json:"src4_addr"`
	Dst4       string `json:"dst4_addr"`
	Src6       string `json:"src6_addr"`
	Dst6       string `json:"dst6_addr"`
	SrcPort    int    `json:"src_port"`
	DstPort    int    `json:"dst_port"`
	ICMPType   int    `json:"icmp_type"`
	InBytes    uint64 `json:"in_bytes"`
	InPackets  uint64 `json:"in_packets"`
	OutBytes   uint64 `json:"out_bytes"`
	OutPackets uint64 `json:"out_packets"`
	Src4Xlt    string `json:"src4_xlt_ip"`
	Dst4Xlt    string `json:"dst4_xlt_ip"`
	SrcXltPort string `json:"src_xlt_port"`
	DstXltPort string `json:"dst_xlt_port"`
}

func (r nfRecord) key() string {
	src, dst := r.Src4, r.Dst4
	if src == "" {
		src, dst = r.Src6, r.Dst6
	}
	if r.Proto == 1 || r.Proto == 58 {
		return fmt.Sprintf("%d %s>%s", r.Proto, src, dst)
	}
	return fmt.Sprintf("%d %s:%d>%s:%d", r.Proto, src, r.SrcPort, dst, r.DstPort)
}

func (r nfRecord) times(t *testing.T) (first, last time.Time) {
	t.Helper()
	const layout = "2006-01-02T15:04:05.000"
	first, err1 := time.ParseInLocation(layout, r.First, time.Local)
	last, err2 := time.ParseInLocation(layout, r.Last, time.Local)
	if err1 != nil || err2 != nil {
		t.Fatalf("nfdump times %q %q: %v %v", r.First, r.Last, err1, err2)
	}
	return first, last
}

// nfdump 1.7.1 leaves a comma before the closing brace of some records.
var trailingComma = regexp.MustCompile(`,\s*\n\s*}`)

// readNfdump returns what nfdump reads from the collector's finished
// files (the current one is written out at rotation).
func readNfdump(t *testing.T, dir string) []nfRecord {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "nfcapd.2*"))
	if len(files) == 0 {
		return nil
	}
	out, err := exec.Command("nfdump", "-R", dir, "-o", "json").Output()
	if err != nil {
		t.Fatalf("nfdump -R %s -o json: %v", dir, err)
	}
	if bytes.Contains(out, []byte("No matching flows")) || len(bytes.TrimSpace(out)) == 0 {
		return nil
	}
	var recs []nfRecord
	if err := json.Unmarshal(trailingComma.ReplaceAll(out, []byte("\n}")), &recs); err != nil {
		t.Fatalf("nfdump json: %v: %s", err, tail(string(out), 300))
	}
	return recs
}

// kernelEnd is a flow's DESTROY event, as conntrack -E prints it.
type kernelEnd struct {
	origBytes, origPackets, replyBytes, replyPackets uint64
	replySrc, replyDst                               string
	replySport, replyDport                           int
}

// destroyWatch collects the DESTROY events of a namespace by flow key.
type destroyWatch struct {
	mu    sync.Mutex
	byKey map[string]kernelEnd
}

var protoNumbers = map[string]int{"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58}

func watchDestroys(t *testing.T, ns *nstest.NS) *destroyWatch {
	t.Helper()
	w := &destroyWatch{byKey: map[string]kernelEnd{}}
	cmd := ns.Command("conntrack", "-E", "-e", "DESTROY", "-o", "extended")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("conntrack -E: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if k, e, ok := parseDestroyLine(sc.Text()); ok {
				w.mu.Lock()
				w.byKey[k] = e
				w.mu.Unlock()
			}
		}
		io.Copy(io.Discard, out)
	}()
	t.Cleanup(func() { cmd.Process.Kill(); <-done; cmd.Wait() })
	return w
}

// parseDestroyLine reads
//
//	[DESTROY] ipv4 2 tcp 6 src=A dst=B sport=1 dport=2 packets=3 bytes=180 src=B dst=A' sport=2 dport=1' packets=2 bytes=120 ...
func parseDestroyLine(line string) (string, kernelEnd, bool) {
	words, o, r, ok := nstest.ConntrackTuples(line)
	if !ok || len(words) < 4 || words[0] != "[DESTROY]" {
		return "", kernelEnd{}, false
	}
	num := func(s string) uint64 { n, _ := strconv.ParseUint(s, 10, 64); return n }
	p := protoNumbers[words[3]]
	k := fmt.Sprintf("%d %s:%s>%s:%s", p, o["src"], o["sport"], o["dst"], o["dport"])
	if p == 1 || p == 58 {
		k = fmt.Sprintf("%d %s>%s", p, o["src"], o["dst"])
	}
	return k, kernelEnd{
		origBytes: num(o["bytes"]), origPackets: num(o["packets"]),
		replyBytes: num(r["bytes"]), replyPackets: num(r["packets"]),
		replySrc: r["src"], replyDst: r["dst"], replySport: int(num(r["sport"])), replyDport: int(num(r["dport"])),
	}, true
}

func (w *destroyWatch) get(k string) (kernelEnd, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	e, ok := w.byKey[k]
	return e, ok
}

// udpExchange sends rounds of 200-byte messages from client to an echo
// server and reads the answers; it returns the flow key.
func udpExchange(t *testing.T, client *nstest.NS, server *net.UDPAddr, rounds int) string {
	t.Helper()
	var c net.Conn
	if err := client.Do(func() (err error) { c, err = net.Dial("udp", server.String()); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, 200)
	for range rounds {
		c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("udp echo from %v: %v", server, err)
		}
	}
	la := c.LocalAddr().(*net.UDPAddr)
	return fmt.Sprintf("17 %s:%d>%s:%d", la.IP, la.Port, server.IP, server.Port)
}

// tcpConn is an open TCP connection from client to an echo server that
// has carried traffic.
type tcpConn struct {
	c   net.Conn
	key string
}

func dialTCP(t *testing.T, client *nstest.NS, server *net.TCPAddr) *tcpConn {
	t.Helper()
	var c net.Conn
	if err := client.Do(func() (err error) { c, err = net.Dial("tcp", server.String()); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	la := c.LocalAddr().(*net.TCPAddr)
	return &tcpConn{c: c, key: fmt.Sprintf("6 %s:%d>%s:%d", la.IP, la.Port, server.IP, server.Port)}
}

// echo sends n bytes and reads them back.
func (tc *tcpConn) echo(t *testing.T, n int) {
	t.Helper()
	tc.c.SetDeadline(time.Now().Add(10 * time.Second))
	msg := bytes.Repeat([]byte("x"), n)
	if _, err := tc.c.Write(msg); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(tc.c, msg); err != nil {
		t.Fatal(err)
	}
}

// closeAndDestroy closes the TCP connections, waits until the router
// holds them in TIME_WAIT (no packet can then make a new entry), and
// deletes every entry of the client's: the kernel sends their DESTROY.
func closeAndDestroy(t *testing.T, router *nstest.NS, conns ...*tcpConn) {
	t.Helper()
	for _, c := range conns {
		c.c.Close()
	}
	waitFor(t, 20*time.Second, "TCP flows in TIME_WAIT on the router", func() bool {
		out, _ := router.Command("conntrack", "-L", "-p", "tcp").Output()
		return strings.Count(string(out), "TIME_WAIT") >= len(conns)
	})
	router.Command("conntrack", "-D", "-s", lanClient4).Run()
	router.Command("conntrack", "-D", "-f", "ipv6", "-s", lanClient6).Run()
}

// waitDestroyWatch makes probe flows until conntrack -E is seen to report
// their DESTROY: from then on it misses none.
func waitDestroyWatch(t *testing.T, client, router *nstest.NS, w *destroyWatch, echo *net.UDPAddr) {
	t.Helper()
	waitFor(t, 20*time.Second, "conntrack -E to listen", func() bool {
		k := udpExchange(t, client, echo, 1)
		router.Command("conntrack", "-D", "-p", "udp", "-s", lanClient4).Run()
		for range 10 {
			if _, ok := w.get(k); ok {
				return true
			}
			time.Sleep(20 * time.Millisecond)
		}
		return false
	})
}

func requireCollector(t *testing.T) {
	t.Helper()
	nstest.Require(t, "nft", "conntrack", "nfcapd", "nfdump", "ping")
}

// TestNfcapd exports real TCP, UDP and ICMP flows of a masquerading router
// to nfcapd: nfdump shows each ended flow once, with the bytes and packets
// each way of the kernel's DESTROY event, the post-NAT source of the
// masqueraded ones and none on the others. Then nfcapd restarts: records
// are readable again within a template refresh.
func TestNfcapd(t *testing.T) {
	requireCollector(t)
	client, router, server := natTopology(t)
	port := freeUDPPort(t)
	col := startNfcapd(t, port)
	started := time.Now()
	e := routerTable(t, router, Config{URLs: []string{"udp://127.0.0.1:" + strconv.Itoa(port)},
		ActiveTimeout: time.Hour}, func(e *Exporter) { e.templateRefresh = 2 * time.Second })
	destroys := watchDestroys(t, router)

	udpServer := nstest.EchoUDP(t, server, wanServer4+":0")
	udpRouter := nstest.EchoUDP(t, router, lanRouter4+":0")
	udpRouter6 := nstest.EchoUDP(t, router, "["+lanRouter6+"]:0")
	waitDestroyWatch(t, client, router, destroys, udpRouter)

	natTCP := dialTCP(t, client, nstest.EchoTCP(t, server, wanServer4+":0"))
	natTCP.echo(t, 3000)
	plainTCP := dialTCP(t, client, nstest.EchoTCP(t, router, lanRouter4+":0"))
	plainTCP.echo(t, 1500)
	client.Exec(t, "ping", "-c", "3", "-i", "0.2", "-W", "5", wanServer4)
	client.Exec(t, "ping", "-c", "2", "-i", "0.2", "-W", "5", lanRouter4)
	nat := map[string]bool{
		natTCP.key:                           true,
		udpExchange(t, client, udpServer, 4): true,
		"1 " + lanClient4 + ">" + wanServer4: true,
	}
	plain := []string{plainTCP.key, udpExchange(t, client, udpRouter, 3), udpExchange(t, client, udpRouter6, 2),
		"1 " + lanClient4 + ">" + lanRouter4}
	for _, k := range plain {
		nat[k] = false
	}
	closeAndDestroy(t, router, natTCP, plainTCP)

	kernel := map[string]kernelEnd{}
	waitFor(t, 20*time.Second, "the DESTROY events", func() bool {
		for k := range nat {
			ke, ok := destroys.get(k)
			if !ok {
				return false
			}
			kernel[k] = ke
		}
		return true
	})
	var got map[string][]nfRecord
	waitFor(t, 30*time.Second, "nfdump to show the 7 flows", func() bool {
		got = map[string][]nfRecord{}
		for _, r := range readNfdump(t, col.dir) {
			got[r.key()] = append(got[r.key()], r)
		}
		for k := range nat {
			if len(got[k]) == 0 {
				return false
			}
		}
		return true
	})
	for k, isNAT := range nat {
		ke, rs := kernel[k], got[k]
		if len(rs) != 1 {
			t.Errorf("%s: %d records, want 1", k, len(rs))
			continue
		}
		r := rs[0]
		t.Logf("%s: in %d B/%d p, out %d B/%d p, post-NAT %s:%s", k, r.InBytes, r.InPackets, r.OutBytes, r.OutPackets, r.Src4Xlt, r.SrcXltPort)
		if r.InBytes != ke.origBytes || r.InPackets != ke.origPackets || r.OutBytes != ke.replyBytes || r.OutPackets != ke.replyPackets {
			t.Errorf("%s: nfdump in %d B/%d p out %d B/%d p; the kernel's DESTROY: %d B/%d p, %d B/%d p", k,
				r.InBytes, r.InPackets, r.OutBytes, r.OutPackets, ke.origBytes, ke.origPackets, ke.replyBytes, ke.replyPackets)
		}
		if ke.origBytes == 0 || ke.replyBytes == 0 {
			t.Errorf("%s: the kernel counted %d and %d bytes: accounting off?", k, ke.origBytes, ke.replyBytes)
		}
		switch {
		case isNAT && (r.Src4Xlt != wanRouter4 || r.Dst4Xlt != wanServer4):
			t.Errorf("%s: post-NAT %s > %s, want %s > %s", k, r.Src4Xlt, r.Dst4Xlt, wanRouter4, wanServer4)
		case isNAT && r.Proto != 1 && r.SrcXltPort != strconv.Itoa(ke.replyDport):
			t.Errorf("%s: post-NAT source port %s, the kernel's reply tuple %d", k, r.SrcXltPort, ke.replyDport)
		case !isNAT && r.Src4Xlt != "":
			t.Errorf("%s: not NATed, but post-NAT source %s", k, r.Src4Xlt)
		}
		first, last := r.times(t)
		if first.Before(started.Add(-time.Second)) || last.Before(first) || last.After(time.Now()) {
			t.Errorf("%s: first %v last %v (test started %v)", k, first, last, started)
		}
	}
	if s := e.Stats(); s.Dropped != 0 || s.Errors != 0 || s.Published < uint64(len(nat)) {
		t.Errorf("stats %+v, want %d or more published, none dropped", s, len(nat))
	}

	// The collector restarts: it knows no template until they are sent
	// again (every 2 s here).
	col.stop(t)
	col = startNfcapd(t, port)
	restarted := time.Now()
	var sent []string
	waitFor(t, 30*time.Second, "records readable by the restarted nfcapd", func() bool {
		sent = append(sent, udpExchange(t, client, udpRouter, 1))
		router.Command("conntrack", "-D", "-p", "udp", "-s", lanClient4).Run()
		for _, r := range readNfdump(t, col.dir) {
			for _, k := range sent {
				if r.key() == k {
					return true
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
		return false
	})
	t.Logf("the restarted nfcapd reads records %v after its start (templates every 2 s, files rotated every 2 s); %d flows sent meanwhile",
		time.Since(restarted).Round(100*time.Millisecond), len(sent))
}

// TestNfcapdActiveTimeout: a long masqueraded TCP connection is exported
// every active timeout with the bytes since the last record; nfdump's
// records follow each other in time and add up to the kernel's DESTROY
// counters each way.
func TestNfcapdActiveTimeout(t *testing.T) {
	requireCollector(t)
	client, router, server := natTopology(t)
	port := freeUDPPort(t)
	col := startNfcapd(t, port)
	routerTable(t, router, Config{URLs: []string{"udp://127.0.0.1:" + strconv.Itoa(port)}, ActiveTimeout: time.Second}, nil)
	destroys := watchDestroys(t, router)
	waitDestroyWatch(t, client, router, destroys, nstest.EchoUDP(t, router, lanRouter4+":0"))

	conn := dialTCP(t, client, nstest.EchoTCP(t, server, wanServer4+":0"))
	began := time.Now()
	for time.Since(began) < 3500*time.Millisecond {
		conn.echo(t, 1000)
		time.Sleep(100 * time.Millisecond)
	}
	closeAndDestroy(t, router, conn)
	var ke kernelEnd
	waitFor(t, 20*time.Second, "the DESTROY event", func() bool {
		var ok bool
		ke, ok = destroys.get(conn.key)
		return ok
	})
	var rs []nfRecord
	waitFor(t, 30*time.Second, "nfdump to show records adding up to the DESTROY counters", func() bool {
		rs = rs[:0]
		var in uint64
		for _, r := range readNfdump(t, col.dir) {
			if r.key() == conn.key {
				rs = append(rs, r)
				in += r.InBytes
			}
		}
		return in >= ke.origBytes
	})
	var sum kernelEnd
	var prevLast time.Time
	for i, r := range rs {
		sum.origBytes += r.InBytes
		sum.origPackets += r.InPackets
		sum.replyBytes += r.OutBytes
		sum.replyPackets += r.OutPackets
		first, last := r.times(t)
		t.Logf("record %d: %s to %s in %d out %d", i, r.First, r.Last, r.InBytes, r.OutBytes)
		if first.Before(prevLast) || last.Before(first) {
			t.Errorf("record %d: %v to %v, the previous ended %v", i, first, last, prevLast)
		}
		prevLast = last
		if r.Src4Xlt != wanRouter4 {
			t.Errorf("record %d: post-NAT source %q, want %s", i, r.Src4Xlt, wanRouter4)
		}
	}
	t.Logf("%d records over %v", len(rs), time.Since(began).Round(100*time.Millisecond))
	if len(rs) < 3 {
		t.Errorf("%d records for a 3.5 s connection with a 1 s active timeout, want 3 or more", len(rs))
	}
	want := kernelEnd{origBytes: ke.origBytes, origPackets: ke.origPackets, replyBytes: ke.replyBytes, replyPackets: ke.replyPackets}
	if sum != want {
		t.Errorf("records add up to %+v, the kernel's DESTROY %+v", sum, want)
	}
}
