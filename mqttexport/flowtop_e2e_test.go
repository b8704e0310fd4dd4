package mqttexport_test

// End-to-end tests of the MQTT and file exports: they build the real
// flowtop binary, run it headless against a throw-away namespace
// (conntrack/nstest) and a mosquitto started on 127.0.0.1, make real
// traffic, and compare what a subscriber receives with what the kernel
// says (conntrack -E, /proc/sys).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/google/go-cmp/cmp"

	"github.com/flowtop/flowtop/conntrack/nstest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	nstest.RemoveFlowtop()
	os.Exit(code)
}

// flowtopBin returns the flowtop binary, built on first use by an E2E test
// so that the package's other tests do not pay for the build.
func flowtopBin(t *testing.T) string { return nstest.Flowtop(t) }

// lockedBuffer is a bytes.Buffer safe for concurrent writers and readers.
type lockedBuffer = nstest.SyncBuffer

// findTool finds a program on PATH or in the sbin directories; missing, it
// skips the test locally and fails it in CI.
func findTool(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin", "/sbin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found (CI=true: failing instead of skipping)", name)
	}
	t.Skipf("%s not found", name)
	return ""
}

// startMosquitto runs an anonymous mosquitto on 127.0.0.1 and a free port
// until the test ends, and returns its tcp:// URL.
func startMosquitto(t *testing.T) string {
	t.Helper()
	bin := findTool(t, "mosquitto")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	if err := os.WriteFile(conf, []byte(strings.Join([]string{
		fmt.Sprintf("listener %d 127.0.0.1", port),
		"allow_anonymous true",
		"persistence false",
		"log_dest stderr",
		"log_type error", "log_type warning", "log_type notice",
		"user root", // as root mosquitto would switch to its own user
	}, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var log lockedBuffer
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", log.String())
		}
	})
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return "tcp://" + addr
		}
		select {
		case <-done:
			t.Fatalf("mosquitto exited: %s", log.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto does not listen on %s: %v\n%s", addr, err, log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// message is one MQTT message a test client received.
type message struct {
	topic    string
	payload  []byte
	retained bool
	at       time.Time
}

// mqttClient is a paho client that records every message it receives.
type mqttClient struct {
	c    mqtt.Client
	mu   sync.Mutex
	msgs []message
}

// connectClient connects to broker and subscribes (QoS 1) to filter; the
// subscription is in place when it returns.
func connectClient(t *testing.T, broker, filter string) *mqttClient {
	t.Helper()
	mc := &mqttClient{}
	o := mqtt.NewClientOptions().AddBroker(broker).
		SetClientID(fmt.Sprintf("e2e-%d", time.Now().UnixNano())).
		SetAutoReconnect(false)
	mc.c = mqtt.NewClient(o)
	if tok := mc.c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("test client: connect %s: %v", broker, tok.Error())
	}
	t.Cleanup(func() { mc.c.Disconnect(100) })
	tok := mc.c.Subscribe(filter, 1, func(_ mqtt.Client, m mqtt.Message) {
		mc.mu.Lock()
		mc.msgs = append(mc.msgs, message{m.Topic(), bytes.Clone(m.Payload()), m.Retained(), time.Now()})
		mc.mu.Unlock()
	})
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("test client: subscribe %s: %v", filter, tok.Error())
	}
	return mc
}

// wait returns the first message from index from on that matches, and the
// index after it; it fails the test after timeout.
func (mc *mqttClient) wait(t *testing.T, from int, timeout time.Duration, what string, match func(message) bool) (message, int) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		mc.mu.Lock()
		msgs := mc.msgs[from:]
		mc.mu.Unlock()
		for i, m := range msgs {
			if match(m) {
				return m, from + i + 1
			}
		}
		from += len(msgs)
		if time.Now().After(deadline) {
			t.Fatalf("no %s within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// since returns the messages from index from on.
func (mc *mqttClient) since(from int) []message {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	return append([]message(nil), mc.msgs[from:]...)
}

func (mc *mqttClient) count() int {
	mc.mu.Lock()
	defer mc.mu.Unlock()
	return len(mc.msgs)
}

func (mc *mqttClient) publish(t *testing.T, topic, payload string) {
	t.Helper()
	if tok := mc.c.Publish(topic, 1, false, payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// The documents as docs/mqtt.md and docs/snapshot.md describe them, read
// with the documented keys only.
type (
	counts struct {
		Bytes   *uint64 `json:"bytes"`
		Packets *uint64 `json:"packets"`
	}
	tuple struct {
		Family     string `json:"family"`
		Proto      string `json:"proto"`
		State      string `json:"state"`
		Src        string `json:"src"`
		Sport      uint16 `json:"sport"`
		Dst        string `json:"dst"`
		Dport      uint16 `json:"dport"`
		ReplySrc   string `json:"reply_src"`
		ReplySport uint16 `json:"reply_sport"`
		ReplyDst   string `json:"reply_dst"`
		ReplyDport uint16 `json:"reply_dport"`
	}
	docFlow struct {
		ID uint32 `json:"id"`
		tuple
		Counted bool       `json:"counted"`
		Orig    counts     `json:"orig"`
		Reply   counts     `json:"reply"`
		Start   *time.Time `json:"start"`
	}
	exporterHealth struct {
		Published uint64 `json:"published"`
		Dropped   uint64 `json:"dropped"`
		Errors    uint64 `json:"errors"`
		Connected *bool  `json:"connected"`
	}
	document struct {
		Version   int       `json:"version"`
		Host      string    `json:"host"`
		Time      time.Time `json:"time"`
		Netns     string    `json:"netns"`
		RequestID string    `json:"request_id"`
		Totals    struct {
			Flows  int `json:"flows"`
			Listed int `json:"listed"`
		} `json:"totals"`
		Health struct {
			Accounting bool                      `json:"accounting"`
			Timestamps bool                      `json:"timestamps"`
			Exporters  map[string]exporterHealth `json:"exporters"`
		} `json:"health"`
		Flows []docFlow `json:"flows"`
	}
	endedRecord struct {
		ID uint32 `json:"id"`
		tuple
		Counted   bool       `json:"counted"`
		Orig      counts     `json:"orig"`
		Reply     counts     `json:"reply"`
		Start     *time.Time `json:"start"`
		Stop      time.Time  `json:"stop"`
		DurationS *float64   `json:"duration_s"`
	}
)

func decodeDocument(t *testing.T, b []byte) *document {
	t.Helper()
	var d document
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("not a snapshot document: %v: %.300s", err, b)
	}
	return &d
}

// key names a flow by family, protocol and original tuple.
func key(family, proto, src string, sport uint16, dst string, dport uint16) string {
	norm := func(s string) string {
		if a, err := netip.ParseAddr(s); err == nil {
			return a.Unmap().String()
		}
		return s
	}
	return fmt.Sprintf("%s %s %s:%d>%s:%d", family, proto, norm(src), sport, norm(dst), dport)
}

func (f *tuple) key() string { return key(f.Family, f.Proto, f.Src, f.Sport, f.Dst, f.Dport) }

func val(p *uint64) string {
	if p == nil {
		return "null"
	}
	return strconv.FormatUint(*p, 10)
}

// kernelCounts are the final counters of a DESTROY event.
type kernelCounts struct {
	origPackets, origBytes, replyPackets, replyBytes uint64
}

// destroyEvents runs `conntrack -E -e DESTROY -o extended` in ns until the
// test ends and collects the counters of each destroyed flow by key.
type destroyEvents struct {
	mu     sync.Mutex
	byKey  map[string]kernelCounts
	lines  int
	stderr lockedBuffer
}

func watchDestroy(t *testing.T, ns *nstest.NS) *destroyEvents {
	t.Helper()
	ev := &destroyEvents{byKey: map[string]kernelCounts{}}
	cmd := ns.Command("conntrack", "-E", "-e", "DESTROY", "-o", "extended")
	cmd.Stderr = &ev.stderr
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
			k, c, ok := parseDestroy(sc.Text())
			ev.mu.Lock()
			ev.lines++
			if ok {
				ev.byKey[k] = c
			}
			ev.mu.Unlock()
		}
		_ = cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("conntrack -E stderr: %s", ev.stderr.String())
		}
	})
	return ev
}

func (ev *destroyEvents) get(k string) (kernelCounts, bool) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	c, ok := ev.byKey[k]
	return c, ok
}

// parseDestroy reads a line such as
//
//	[DESTROY] ipv4 2 udp 17 29 src=A dst=B sport=1 dport=2 packets=1 bytes=31 [UNREPLIED] src=B dst=A sport=2 dport=1 packets=0 bytes=0 delta-time=0 ...
func parseDestroy(line string) (string, kernelCounts, bool) {
	words, o, r, ok := nstest.ConntrackTuples(line)
	if !ok || len(words) < 4 || words[0] != "[DESTROY]" {
		return "", kernelCounts{}, false
	}
	num := func(s string) uint64 { n, _ := strconv.ParseUint(s, 10, 64); return n }
	c := kernelCounts{num(o["packets"]), num(o["bytes"]), num(r["packets"]), num(r["bytes"])}
	return key(words[1], words[3], o["src"], uint16(num(o["sport"])), o["dst"], uint16(num(o["dport"]))), c, true
}

// flowtopRun is a running flowtop binary.
type flowtopRun struct {
	cmd    *exec.Cmd
	stderr lockedBuffer
	done   chan struct{}
}

// startFlowtop starts the binary; it is killed when the test ends, and its
// log is shown when the test failed.
func startFlowtop(t *testing.T, args ...string) *flowtopRun {
	t.Helper()
	// -n: flowtop runs in the host namespace, where reverse DNS of the test
	// addresses would query the host's resolver.
	p := &flowtopRun{cmd: exec.Command(flowtopBin(t), append([]string{"-n"}, args...)...), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.stderr, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start flowtop: %v", err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			t.Errorf("flowtop pid %d not reaped", p.cmd.Process.Pid)
		}
		if t.Failed() {
			t.Logf("flowtop %s\n%s", strings.Join(args, " "), p.stderr.String())
		}
	})
	return p
}

// stop sends SIGTERM and returns the exit status and how long the exit
// took; it fails the test when flowtop is still running after timeout.
func (p *flowtopRun) stop(t *testing.T, timeout time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), time.Since(start)
	case <-time.After(timeout):
		t.Fatalf("flowtop still running %v after SIGTERM", timeout)
		return 0, 0
	}
}

func (p *flowtopRun) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// waitUntil polls cond until it holds or timeout passes.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// tcpConn is a connection from A to a listener in B that has carried
// sent bytes there and answer bytes back, and is still open.
type tcpConn struct {
	key       string
	c         net.Conn
	serverEnd chan struct{} // closed once B's side has closed
}

const (
	tcpSent   = 100_000
	tcpAnswer = 5_000
	udpMsg    = 20
	udpRounds = 3
)

// dialTCP makes the connection: B reads tcpSent bytes, answers tcpAnswer
// bytes, and closes its end once A closes.
func dialTCP(t *testing.T, a, b *nstest.NS, src, dst string) *tcpConn {
	t.Helper()
	ln := nstest.ListenTCP(t, b, net.JoinHostPort(dst, "0"))
	tc := &tcpConn{serverEnd: make(chan struct{})}
	go func() {
		defer close(tc.serverEnd)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		if _, err := io.ReadFull(c, make([]byte, tcpSent)); err != nil {
			return
		}
		if _, err := c.Write(bytes.Repeat([]byte("r"), tcpAnswer)); err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, c) // until A closes
	}()
	if err := a.Do(func() (err error) {
		d := net.Dialer{Timeout: 3 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
		tc.c, err = d.Dial("tcp", ln.Addr().String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.c.Close() })
	tc.c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := tc.c.Write(bytes.Repeat([]byte("s"), tcpSent)); err != nil {
		t.Fatalf("tcp to %s: %v", dst, err)
	}
	if _, err := io.ReadFull(tc.c, make([]byte, tcpAnswer)); err != nil {
		t.Fatalf("tcp answer from %s: %v", dst, err)
	}
	l, r := tc.c.LocalAddr().(*net.TCPAddr), tc.c.RemoteAddr().(*net.TCPAddr)
	family := "ipv4"
	if l.IP.To4() == nil {
		family = "ipv6"
	}
	tc.key = key(family, "tcp", l.IP.String(), uint16(l.Port), r.IP.String(), uint16(r.Port))
	return tc
}

// udpExchange sends udpRounds datagrams from A to an echo server in B and
// reads the echoes; it returns the flow's key.
func udpExchange(t *testing.T, a, b *nstest.NS, dst string) string {
	t.Helper()
	echo := nstest.EchoUDP(t, b, net.JoinHostPort(dst, "0"))
	var c net.Conn
	if err := a.Do(func() (err error) {
		c, err = net.Dial("udp", echo.String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(3 * time.Second))
	for range udpRounds {
		if _, err := c.Write(bytes.Repeat([]byte("u"), udpMsg)); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(make([]byte, 1500)); err != nil {
			t.Fatalf("udp echo from %s: %v", dst, err)
		}
	}
	l, r := c.LocalAddr().(*net.UDPAddr), c.RemoteAddr().(*net.UDPAddr)
	family := "ipv4"
	if l.IP.To4() == nil {
		family = "ipv6"
	}
	return key(family, "udp", l.IP.String(), uint16(l.Port), r.IP.String(), uint16(r.Port))
}

// conntrackDelete deletes A's entries of proto, both families.
func conntrackDelete(t *testing.T, ns *nstest.NS, args ...string) {
	t.Helper()
	for _, fam := range []string{"ipv4", "ipv6"} {
		out, err := ns.Command("conntrack", append([]string{"-D", "-f", fam}, args...)...).CombinedOutput()
		if err != nil && !bytes.Contains(out, []byte("0 flow entries")) {
			t.Fatalf("conntrack -D -f %s %v: %v: %s", fam, args, err, out)
		}
	}
}

const (
	sysAcct = "net/netfilter/nf_conntrack_acct"
	sysTS   = "net/netfilter/nf_conntrack_timestamp"
)

// TestE2EMQTT runs flowtop --no-ui --mqtt against namespace A with real
// traffic, and follows one run through snapshots, polls, ended records and
// a SIGTERM.
func TestE2EMQTT(t *testing.T) {
	nstest.Require(t, "nft", "conntrack")
	a, b := nstest.Pair(t)
	a.WriteSysctl(t, sysAcct, "0")
	a.WriteSysctl(t, sysTS, "0")
	broker := startMosquitto(t)
	sub := connectClient(t, broker, "flowtop/#")
	flowtopBin(t) // build before the clock starts
	events := watchDestroy(t, a)

	const (
		status    = "flowtop/e2e/status"
		snapshot  = "flowtop/e2e/snapshot"
		ended     = "flowtop/e2e/ended"
		request   = "flowtop/e2e/request"
		broadcast = "flowtop/broadcast/request"
	)
	isSnapshot := func(m message) bool { return m.topic == snapshot }

	started := time.Now()
	ft := startFlowtop(t, "--no-ui", "--netns", a.Path(), "-46TUI", "-t", "0.5",
		"--mqtt", broker, "--mqtt-node", "e2e", "--mqtt-interval", "1s", "--state-dir", t.TempDir())
	sub.wait(t, 0, 10*time.Second, "online on "+status, func(m message) bool {
		return m.topic == status && string(m.payload) == "online"
	})
	m, _ := sub.wait(t, 0, 5*time.Second, "first snapshot", isSnapshot)
	t.Logf("online and first snapshot %v after the start", m.at.Sub(started).Round(time.Millisecond))
	d := decodeDocument(t, m.payload)
	if d.Version != 1 || d.Netns != a.Path() || !d.Health.Accounting || !d.Health.Timestamps {
		t.Errorf("first snapshot: version %d netns %q accounting %v timestamps %v, want 1, %q, on, on",
			d.Version, d.Netns, d.Health.Accounting, d.Health.Timestamps, a.Path())
	}
	if ex, ok := d.Health.Exporters["mqtt"]; !ok || ex.Connected == nil || !*ex.Connected {
		t.Errorf("first snapshot: health.exporters = %+v, want mqtt connected", d.Health.Exporters)
	}
	if v := a.ReadSysctl(t, sysAcct) + a.ReadSysctl(t, sysTS); v != "11" {
		t.Errorf("while flowtop runs: acct, timestamp = %q, want both 1", v)
	}
	late := connectClient(t, broker, status)
	if m, _ := late.wait(t, 0, 5*time.Second, "retained status", func(message) bool { return true }); string(m.payload) != "online" || !m.retained {
		t.Errorf("a late subscriber gets status %q (retained %v), want retained online", m.payload, m.retained)
	}
	late.c.Disconnect(0)

	// conntrack -E is listening once the destruction of a probe flow shows.
	probeDone := false
	for i := 0; !probeDone; i++ {
		probe := udpExchange(t, a, b, nstest.AddrB4)
		conntrackDelete(t, a, "-p", "udp")
		for range 20 {
			if _, probeDone = events.get(probe); probeDone {
				break
			}
			time.Sleep(25 * time.Millisecond)
		}
		if !probeDone && i == 20 {
			t.Fatal("conntrack -E shows no DESTROY event")
		}
	}

	// 1. Real traffic shows up in a snapshot.
	tcp := []*tcpConn{
		dialTCP(t, a, b, nstest.AddrA4, nstest.AddrB4),
		dialTCP(t, a, b, nstest.AddrA6, nstest.AddrB6),
	}
	udp := []string{udpExchange(t, a, b, nstest.AddrB4), udpExchange(t, a, b, nstest.AddrB6)}
	trafficDone := time.Now()
	want := map[string]string{} // key -> proto
	for _, c := range tcp {
		want[c.key] = "tcp"
	}
	for _, k := range udp {
		want[k] = "udp"
	}
	var seen map[string]docFlow
	m, next := sub.wait(t, 0, 8*time.Second, "a snapshot with the 4 flows and their counters", func(m message) bool {
		if m.topic != snapshot {
			return false
		}
		d := decodeDocument(t, m.payload)
		seen = map[string]docFlow{}
		for _, f := range d.Flows {
			if _, ok := want[f.key()]; !ok || !f.Counted || f.Orig.Bytes == nil || f.Reply.Bytes == nil {
				continue
			}
			least := [2]uint64{udpRounds * udpMsg, udpRounds * udpMsg}
			if f.Proto == "tcp" {
				least = [2]uint64{tcpSent, tcpAnswer}
			}
			if *f.Orig.Bytes >= least[0] && *f.Reply.Bytes >= least[1] {
				seen[f.key()] = f
			}
		}
		return len(seen) == len(want)
	})
	t.Logf("flows in a snapshot %v after the traffic", m.at.Sub(trafficDone).Round(time.Millisecond))
	for k, f := range seen {
		wantState := ""
		if f.Proto == "tcp" {
			wantState = "ESTABLISHED"
		}
		if f.State != wantState || f.ReplySrc != f.Dst || f.ReplyDst != f.Src || f.ReplySport != f.Dport ||
			f.ReplyDport != f.Sport || *f.Orig.Packets == 0 || *f.Reply.Packets == 0 || f.Start == nil {
			t.Errorf("snapshot flow %s: %+v, orig %s/%s reply %s/%s start %v", k, f.tuple,
				val(f.Orig.Bytes), val(f.Orig.Packets), val(f.Reply.Bytes), val(f.Reply.Packets), f.Start)
		}
		t.Logf("snapshot: %s orig %s B/%s p reply %s B/%s p", k, val(f.Orig.Bytes), val(f.Orig.Packets),
			val(f.Reply.Bytes), val(f.Reply.Packets))
	}

	// 3. Polls, while the flows are there: the node's and the broadcast one.
	from := sub.count()
	sent := time.Now()
	sub.publish(t, request, `{"id":"abc","limit":1}`)
	m, _ = sub.wait(t, from, 2*time.Second, `reply to request "abc"`, func(m message) bool {
		return m.topic == snapshot && decodeDocument(t, m.payload).RequestID == "abc"
	})
	t.Logf("reply to the node's request after %v", m.at.Sub(sent).Round(time.Millisecond))
	if d := decodeDocument(t, m.payload); len(d.Flows) != 1 || d.Totals.Listed != 1 || d.Totals.Flows < len(want) {
		t.Errorf("reply with limit 1: %d flows, totals.listed %d, totals.flows %d; want 1, 1, >= %d",
			len(d.Flows), d.Totals.Listed, d.Totals.Flows, len(want))
	}
	from = sub.count()
	sent = time.Now()
	sub.publish(t, broadcast, `{"id":"everyone"}`)
	m, _ = sub.wait(t, from, 2*time.Second, `reply to the broadcast request`, func(m message) bool {
		return m.topic == snapshot && decodeDocument(t, m.payload).RequestID == "everyone"
	})
	t.Logf("reply to the broadcast request after %v (at most one reply per second)", m.at.Sub(sent).Round(time.Millisecond))
	if d := decodeDocument(t, m.payload); len(d.Flows) < len(want) {
		t.Errorf("broadcast reply lists %d flows, want >= %d", len(d.Flows), len(want))
	}

	// 2. The flows end: ended records carry the kernel's final counters.
	for _, c := range tcp {
		c.c.Close()
		select {
		case <-c.serverEnd:
		case <-time.After(3 * time.Second):
			t.Fatal("B did not close its end")
		}
	}
	// Delete the TCP entries only once the close handshake is over, so that
	// no late packet makes a new entry.
	waitUntil(t, 5*time.Second, "TCP flows in TIME_WAIT", func() bool {
		out, _ := a.Command("conntrack", "-L", "-p", "tcp", "-o", "extended").Output()
		n := 0
		for line := range strings.Lines(string(out)) {
			if strings.Contains(line, "TIME_WAIT") {
				n++
			}
		}
		return n >= len(tcp)
	})
	from = next
	deleted := time.Now()
	conntrackDelete(t, a, "-p", "tcp")
	conntrackDelete(t, a, "-p", "udp")
	records := map[string]endedRecord{}
	arrived := map[string]time.Time{}
	sub.wait(t, from, 5*time.Second, "ended records of the 4 flows", func(m message) bool {
		if m.topic != ended {
			return false
		}
		var recs []endedRecord
		if err := json.Unmarshal(m.payload, &recs); err != nil {
			t.Fatalf("ended: not a JSON array of records: %v: %.300s", err, m.payload)
		}
		for _, r := range recs {
			k := r.key()
			records[k] = r
			if _, ok := arrived[k]; !ok {
				arrived[k] = m.at
			}
		}
		for k := range want {
			if _, ok := records[k]; !ok {
				return false
			}
		}
		return true
	})
	waitUntil(t, 3*time.Second, "DESTROY events of the 4 flows", func() bool {
		for k := range want {
			if _, ok := events.get(k); !ok {
				return false
			}
		}
		return true
	})
	for k := range want {
		r, kc := records[k], func() kernelCounts { c, _ := events.get(k); return c }()
		t.Logf("ended %s %v after conntrack -D: orig %s B/%s p reply %s B/%s p, duration %v s",
			k, arrived[k].Sub(deleted).Round(time.Millisecond), val(r.Orig.Bytes), val(r.Orig.Packets),
			val(r.Reply.Bytes), val(r.Reply.Packets), func() any {
				if r.DurationS == nil {
					return nil
				}
				return *r.DurationS
			}())
		if !r.Counted || r.Orig.Bytes == nil || r.Orig.Packets == nil || r.Reply.Bytes == nil || r.Reply.Packets == nil {
			t.Errorf("ended %s: counted %v, counters orig %s/%s reply %s/%s, want counted", k, r.Counted,
				val(r.Orig.Bytes), val(r.Orig.Packets), val(r.Reply.Bytes), val(r.Reply.Packets))
			continue
		}
		got := kernelCounts{*r.Orig.Packets, *r.Orig.Bytes, *r.Reply.Packets, *r.Reply.Bytes}
		if got != kc {
			t.Errorf("ended %s: counters %+v, kernel's DESTROY event %+v", k, got, kc)
		}
		if s := seen[k]; *s.Orig.Bytes > kc.origBytes || *s.Reply.Bytes > kc.replyBytes {
			t.Errorf("ended %s: final counters %+v below the snapshot's (orig %d, reply %d)", k, kc, *s.Orig.Bytes, *s.Reply.Bytes)
		}
		if r.ReplySrc != r.Dst || r.ReplyDst != r.Src || r.ReplySport != r.Dport || r.ReplyDport != r.Sport {
			t.Errorf("ended %s: reply tuple %s:%d>%s:%d", k, r.ReplySrc, r.ReplySport, r.ReplyDst, r.ReplyDport)
		}
		if r.Start == nil || r.DurationS == nil || r.Stop.Before(*r.Start) || r.Stop.Before(started.Add(-time.Second)) {
			t.Errorf("ended %s: start %v stop %v duration %v", k, r.Start, r.Stop, r.DurationS)
		}
		if want[k] == "tcp" && r.State != "TIME_WAIT" {
			t.Errorf("ended %s: state %q, want TIME_WAIT", k, r.State)
		}
	}

	// 4. SIGTERM: a clean exit, offline, the sysctls as they were.
	from = sub.count()
	code, took := ft.stop(t, 5*time.Second)
	t.Logf("flowtop exited with %d %v after SIGTERM", code, took.Round(time.Millisecond))
	if code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	sub.wait(t, from, 3*time.Second, "offline on "+status, func(m message) bool {
		return m.topic == status && string(m.payload) == "offline"
	})
	late = connectClient(t, broker, status)
	if m, _ := late.wait(t, 0, 5*time.Second, "retained status", func(message) bool { return true }); string(m.payload) != "offline" || !m.retained {
		t.Errorf("after the exit a late subscriber gets status %q (retained %v), want retained offline", m.payload, m.retained)
	}
	if acct, ts := a.ReadSysctl(t, sysAcct), a.ReadSysctl(t, sysTS); acct != "0" || ts != "0" {
		t.Errorf("after the exit: nf_conntrack_acct %s, nf_conntrack_timestamp %s; want 0 and 0 as before", acct, ts)
	}
	var n int
	for _, m := range sub.since(0) {
		if m.topic == snapshot {
			n++
		}
	}
	t.Logf("%d snapshots in %v", n, time.Since(started).Round(time.Millisecond))
}

// TestE2EWriteFile runs flowtop --no-ui --write and reads the file while it
// is rewritten every 200 ms: always whole, always the snapshot document.
func TestE2EWriteFile(t *testing.T) {
	nstest.Require(t, "nft")
	a, b := nstest.Pair(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "flows.json")
	ft := startFlowtop(t, "--no-ui", "--netns", a.Path(), "-46TUI", "-t", "0.5",
		"--write", file, "--write-interval", "200ms", "--state-dir", t.TempDir())
	started := time.Now()
	waitUntil(t, 10*time.Second, file+" written", func() bool {
		if ft.exited() {
			t.Fatalf("flowtop exited: %s", ft.stderr.String())
		}
		_, err := os.Stat(file)
		return err == nil
	})
	t.Logf("%s written %v after the start", file, time.Since(started).Round(time.Millisecond))
	// A flow that begins once flowtop has switched accounting on.
	flow := udpExchange(t, a, b, nstest.AddrB6)

	times := map[time.Time]bool{} // snapshots of the table (one per -t)
	writes := map[uint64]bool{}   // health.exporters.file.published: one per write
	found := false
	readStart := time.Now()
	for i := range 50 {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("read %d: %v", i, err)
		}
		var d document
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatalf("read %d: not whole JSON (%d bytes): %v", i, len(raw), err)
		}
		if d.Version != 1 || d.Flows == nil || d.Netns != a.Path() || d.Time.IsZero() {
			t.Fatalf("read %d: version %d, flows %v, netns %q, time %v: not the snapshot document:\n%.500s",
				i, d.Version, d.Flows != nil, d.Netns, d.Time, raw)
		}
		ex, ok := d.Health.Exporters["file"]
		if !ok {
			t.Fatalf("read %d: health.exporters has no file entry: %+v", i, d.Health.Exporters)
		}
		writes[ex.Published] = true
		times[d.Time] = true
		for _, f := range d.Flows {
			if f.key() == flow && f.Orig.Bytes != nil && *f.Orig.Bytes > 0 && f.Reply.Bytes != nil && *f.Reply.Bytes > 0 {
				found = true
			}
		}
		time.Sleep(25 * time.Millisecond) // pace the reads over several rewrites
	}
	took := time.Since(readStart)
	t.Logf("50 reads in %v saw %d writes of %d table snapshots", took.Round(time.Millisecond), len(writes), len(times))
	if len(writes) < 3 || len(times) < 2 {
		t.Errorf("50 reads over %v saw %d writes of %d table snapshots: the file is not rewritten every 200ms",
			took.Round(time.Millisecond), len(writes), len(times))
	}
	if !found {
		t.Errorf("no document lists the UDP flow %s with counters", flow)
	}
	code, took := ft.stop(t, 5*time.Second)
	t.Logf("flowtop exited with %d %v after SIGTERM", code, took.Round(time.Millisecond))
	if code != 0 {
		t.Errorf("exit status %d after SIGTERM, want 0", code)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 1 || names[0] != "flows.json" {
		t.Errorf("after the exit the directory holds %v, want only flows.json (no temporary files)", names)
	}
}

// TestE2EMQTTHealthAsOnce runs flowtop --no-ui with --mqtt and --write
// after a --once of the same namespace: an MQTT snapshot's health has the
// keys of the file's, every exporter's entry with its ended_dropped, and
// the keys of the --once document's besides the exporters (which --once
// runs none of): the MQTT documents carry flowtop's whole health.
func TestE2EMQTTHealthAsOnce(t *testing.T) {
	nstest.Require(t, "nft")
	a, _ := nstest.Pair(t)
	broker := startMosquitto(t)
	sub := connectClient(t, broker, "flowtop/health/snapshot")

	once := exec.Command(flowtopBin(t), "-n", "--once", "--netns", a.Path(), "-46TUI", "-t", "0.5", "--state-dir", t.TempDir())
	var stderr bytes.Buffer
	once.Stderr = &stderr
	out, err := once.Output()
	if err != nil {
		t.Fatalf("flowtop --once: %v: %.300s", err, stderr.String())
	}
	onceKeys := healthKeys(t, "--once", out)

	file := filepath.Join(t.TempDir(), "flows.json")
	ft := startFlowtop(t, "--no-ui", "--netns", a.Path(), "-46TUI", "-t", "0.5",
		"--mqtt", broker, "--mqtt-node", "health", "--mqtt-interval", "1s",
		"--write", file, "--write-interval", "200ms", "--state-dir", t.TempDir())
	m, _ := sub.wait(t, 0, 20*time.Second, "a snapshot", func(message) bool { return true })
	mqttKeys := healthKeys(t, "the MQTT snapshot", m.payload)
	var raw []byte
	waitUntil(t, 20*time.Second, file+" written", func() bool {
		if ft.exited() {
			t.Fatalf("flowtop exited: %.300s", ft.stderr.String())
		}
		raw, err = os.ReadFile(file)
		return err == nil
	})
	fileKeys := healthKeys(t, "--write", raw)

	if diff := cmp.Diff(fileKeys, mqttKeys); diff != "" {
		t.Errorf("health keys of the --write document (-) and of the MQTT snapshot (+):\n%.600s", diff)
	}
	for _, k := range []string{"exporters.mqtt.ended_dropped", "exporters.mqtt.connected", "exporters.file.published"} {
		if !slices.Contains(mqttKeys, k) {
			t.Errorf("the MQTT snapshot's health has no %s: %v", k, mqttKeys)
		}
	}
	withoutExporters := slices.DeleteFunc(slices.Clone(mqttKeys), func(k string) bool { return strings.HasPrefix(k, "exporters.") })
	if diff := cmp.Diff(onceKeys, withoutExporters); diff != "" {
		t.Errorf("health keys of the --once document (-) and of the MQTT snapshot without exporters (+):\n%.600s", diff)
	}
}

// healthKeys lists the paths of the keys under a document's health, with
// the exporters by name ("exporters.mqtt.ended_dropped"), sorted; the keys
// present only in some states (an error, a huge table's hot refresh) are
// left out.
func healthKeys(t *testing.T, what string, doc []byte) []string {
	t.Helper()
	var d struct {
		Health map[string]any `json:"health"`
	}
	if err := json.Unmarshal(doc, &d); err != nil || d.Health == nil {
		t.Fatalf("%s: no document with a health: %v: %.300s", what, err, doc)
	}
	var keys []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			switch k {
			case "last_error", "hot_flows", "hot_refresh_ms":
				continue
			}
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			keys = append(keys, prefix+k)
		}
	}
	walk("", d.Health)
	slices.Sort(keys)
	return keys
}
