package main

// Helpers of the end-to-end tests: they build the real flowtop binary once,
// run it against throw-away namespaces (conntrack/nstest), read its NDJSON
// output, and compare with what conntrack(8) and /proc/sys say.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
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

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/conntrack/nstest"
	"github.com/flowtop/flowtop/report"
)

func TestMain(m *testing.M) {
	code := m.Run()
	nstest.RemoveFlowtop()
	os.Exit(code)
}

// numeric adds -n: flowtop runs in the host namespace (reading the test's
// through --netns), where reverse DNS of the test addresses would query the
// host's resolver; the tests send traffic only inside their namespaces.
func numeric(args []string) []string { return append([]string{"-n"}, args...) }

// flowtopBinary returns the flowtop binary, built on first use.
func flowtopBinary(t *testing.T) string { return nstest.Flowtop(t) }

// syncBuffer is a bytes.Buffer safe for a writer and a reader goroutine.
type syncBuffer = nstest.SyncBuffer

// flowtopProc is a running flowtop whose stdout lines are read as they come.
type flowtopProc struct {
	cmd    *exec.Cmd
	lines  chan []byte // closed at EOF
	stderr *syncBuffer
	done   chan struct{} // closed once the process is reaped
}

// startFlowtop starts the binary with args. It is killed (SIGKILL) at the
// latest when the test ends or after a minute; its stderr is logged when
// the test fails.
func startFlowtop(t *testing.T, args ...string) *flowtopProc {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	p := &flowtopProc{
		cmd:    exec.CommandContext(ctx, flowtopBinary(t), numeric(args)...),
		lines:  make(chan []byte, 1024),
		stderr: &syncBuffer{},
		done:   make(chan struct{}),
	}
	p.cmd.Stderr = p.stderr
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start flowtop: %v", err)
	}
	go func() {
		defer close(p.done)
		r := bufio.NewReaderSize(stdout, 1<<20)
		for {
			line, err := r.ReadBytes('\n')
			if len(line) > 0 {
				select {
				case p.lines <- line:
				default: // nobody reads: drop rather than stall flowtop
				}
			}
			if err != nil {
				break
			}
		}
		close(p.lines)
		p.cmd.Wait()
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(nstest.Patience):
			t.Errorf("flowtop pid %d not reaped", p.cmd.Process.Pid)
		}
		cancel()
		if t.Failed() {
			t.Logf("flowtop %s stderr:\n%s", strings.Join(args, " "), nstest.Truncate(p.stderr.String()))
		}
	})
	return p
}

// next returns the next snapshot line, failing the test after timeout or
// when flowtop ends.
func (p *flowtopProc) next(t *testing.T, timeout time.Duration) []byte {
	t.Helper()
	select {
	case line, ok := <-p.lines:
		if !ok {
			<-p.done
			t.Fatalf("flowtop ended (%v) before printing a snapshot; stderr:\n%s", p.cmd.ProcessState, nstest.Truncate(p.stderr.String()))
		}
		return line
	case <-time.After(timeout):
		t.Fatalf("no snapshot from flowtop within %v; stderr:\n%s", timeout, nstest.Truncate(p.stderr.String()))
	}
	return nil
}

// signal sends sig to flowtop.
func (p *flowtopProc) signal(t *testing.T, sig os.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("signal %v: %v", sig, err)
	}
}

// wait waits for flowtop to end and returns its exit status (-1 when a
// signal ended it). Output lines still unread are dropped.
func (p *flowtopProc) wait(t *testing.T, timeout time.Duration) int {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case _, ok := <-p.lines:
			if ok {
				continue
			}
			select {
			case <-p.done:
				return p.cmd.ProcessState.ExitCode()
			case <-deadline:
			}
		case <-deadline:
		}
		t.Fatalf("flowtop still running after %v; stderr:\n%s", timeout, nstest.Truncate(p.stderr.String()))
	}
}

// runBinary runs the binary to its end and returns stdout, stderr and the
// exit status.
func runBinary(t *testing.T, timeout time.Duration, args ...string) (stdout []byte, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, flowtopBinary(t), numeric(args)...)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	stdout, err := cmd.Output()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("flowtop %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("flowtop %s: still running after %v; stderr:\n%s", strings.Join(args, " "), timeout, nstest.Truncate(errb.String()))
	}
	return stdout, errb.String(), cmd.ProcessState.ExitCode()
}

// decodeDoc decodes one snapshot line.
func decodeDoc(t *testing.T, line []byte) *report.Document {
	t.Helper()
	var d report.Document
	if err := json.Unmarshal(line, &d); err != nil {
		t.Fatalf("snapshot is not a JSON document: %v\n%s", err, nstest.Truncate(string(line)))
	}
	return &d
}

// sysctl reads a sysctl of ns through a file opened inside it (a
// /proc/sys/net file stays bound to its namespace), so polling is cheap.
func sysctl(t *testing.T, ns *nstest.NS, key string) func() string {
	t.Helper()
	var f *os.File
	if err := ns.Do(func() (err error) {
		f, err = os.Open("/proc/sys/" + key)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return func() string {
		var b [32]byte
		n, err := f.ReadAt(b[:], 0)
		if err != nil && err != io.EOF {
			t.Fatalf("read %s: %v", key, err)
		}
		return strings.TrimSpace(string(b[:n]))
	}
}

// ctEntry is one line of `conntrack -L -o extended`.
type ctEntry struct {
	state       string
	orig, reply conntrack.Counter
}

// flowKey names a flow by family, protocol and original tuple, the way
// both conntrack(8) and flowtop's JSON can be read.
func flowKey(family, proto, src, dst string, sport, dport uint16, icmpType, icmpCode *uint8, icmpID *uint16) string {
	norm := func(s string) string {
		if a, err := netip.ParseAddr(s); err == nil {
			return a.Unmap().String()
		}
		return s
	}
	if icmpType != nil && icmpCode != nil && icmpID != nil {
		return fmt.Sprintf("%s %s %s>%s type=%d code=%d id=%d", family, proto, norm(src), norm(dst),
			*icmpType, *icmpCode, *icmpID)
	}
	return fmt.Sprintf("%s %s %s:%d>%s:%d", family, proto, norm(src), sport, norm(dst), dport)
}

func docFlowKey(f *report.Flow) string {
	return flowKey(f.Family, f.Proto, f.Src, f.Dst, f.Sport, f.Dport, f.ICMPType, f.ICMPCode, f.ICMPID)
}

// conntrackList runs `conntrack -L -o extended` in ns and parses it.
func conntrackList(t *testing.T, ns *nstest.NS) map[string]ctEntry {
	t.Helper()
	out, err := ns.Command("conntrack", "-L", "-o", "extended").Output()
	if err != nil {
		t.Fatalf("conntrack -L in %s: %v", ns.Name, err)
	}
	m, err := parseConntrackList(string(out))
	if err != nil {
		t.Fatalf("%v\n%s", err, nstest.Truncate(string(out)))
	}
	return m
}

// parseConntrackList reads lines such as
//
//	ipv4 2 tcp 6 431999 ESTABLISHED src=A dst=B sport=1 dport=2 packets=5 bytes=300 src=B ... [ASSURED] mark=0 use=1
//	ipv6 10 icmpv6 58 29 src=A dst=B type=128 code=0 id=7 packets=1 bytes=104 src=B ... mark=0 use=1
func parseConntrackList(out string) (map[string]ctEntry, error) {
	num := func(s string) uint64 { n, _ := strconv.ParseUint(s, 10, 64); return n }
	m := map[string]ctEntry{}
	for line := range strings.Lines(out) {
		fields, o, r, ok := nstest.ConntrackTuples(line)
		if len(fields) < 5 || (fields[0] != "ipv4" && fields[0] != "ipv6") {
			continue
		}
		if !ok {
			return nil, fmt.Errorf("conntrack -L line without two tuples: %s", line)
		}
		var e ctEntry
		if len(fields) > 5 && !strings.HasPrefix(fields[5], "[") {
			e.state = fields[5]
		}
		e.orig = conntrack.Counter{Packets: num(o["packets"]), Bytes: num(o["bytes"])}
		e.reply = conntrack.Counter{Packets: num(r["packets"]), Bytes: num(r["bytes"])}
		var key string
		if _, ok := o["type"]; ok {
			typ, code, id := uint8(num(o["type"])), uint8(num(o["code"])), uint16(num(o["id"]))
			key = flowKey(fields[0], fields[2], o["src"], o["dst"], 0, 0, &typ, &code, &id)
		} else {
			key = flowKey(fields[0], fields[2], o["src"], o["dst"], uint16(num(o["sport"])), uint16(num(o["dport"])), nil, nil, nil)
		}
		m[key] = e
	}
	return m, nil
}

// traffic holds the connections of startTraffic.
type traffic struct {
	tcpPorts, udpPorts [2]int // B's listening ports, IPv4 then IPv6
	icmpIDs            [2]int
}

// startTraffic makes real traffic from A to B over IPv4 and IPv6: a TCP
// stream that keeps sending (so counters grow while flowtop reads them),
// a UDP exchange and ICMP echo. Everything stops when the test ends.
func startTraffic(t *testing.T, a, b *nstest.NS) *traffic {
	t.Helper()
	tr := &traffic{}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var closers []io.Closer
	t.Cleanup(func() {
		close(stop)
		for _, c := range closers {
			c.Close()
		}
		wg.Wait()
	})
	for i, pair := range [][2]string{{nstest.AddrA4, nstest.AddrB4}, {nstest.AddrA6, nstest.AddrB6}} {
		dst := pair[1]
		// TCP echo server on B and a client on A writing every 50 ms.
		echoTCP := nstest.EchoTCP(t, b, net.JoinHostPort(dst, "0"))
		tr.tcpPorts[i] = echoTCP.Port
		var c net.Conn
		if err := a.Do(func() (err error) {
			c, err = net.DialTimeout("tcp", echoTCP.String(), nstest.Patience)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		closers = append(closers, c)
		wg.Go(func() { io.Copy(io.Discard, c) })
		wg.Go(func() {
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			msg := bytes.Repeat([]byte("f"), 100)
			for {
				if _, err := c.Write(msg); err != nil {
					return
				}
				select {
				case <-stop:
					return
				case <-tick.C:
				}
			}
		})

		// UDP echo on B, one exchange from A.
		echo := nstest.EchoUDP(t, b, net.JoinHostPort(dst, "0"))
		tr.udpPorts[i] = echo.Port
		var uc net.Conn
		if err := a.Do(func() (err error) {
			uc, err = net.Dial("udp", echo.String())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		closers = append(closers, uc)
		uc.SetDeadline(time.Now().Add(nstest.Patience))
		for range 3 {
			if _, err := uc.Write([]byte("flowtop udp")); err != nil {
				t.Fatal(err)
			}
			if _, err := uc.Read(make([]byte, 64)); err != nil {
				t.Fatalf("udp echo from %s: %v", dst, err)
			}
		}

		// ICMP echo, answered by B's kernel.
		tr.icmpIDs[i] = 0x4600 + i
		ping(t, a, pair[0], dst, tr.icmpIDs[i], 3)
	}
	return tr
}

// ping sends count ICMP or ICMPv6 echo requests from src to dst on a raw
// socket in ns and waits for each reply.
func ping(t *testing.T, ns *nstest.NS, src, dst string, id, count int) {
	t.Helper()
	v6 := strings.Contains(dst, ":")
	network, reqType, replyType, proto := "ip4:icmp", icmp.Type(ipv4.ICMPTypeEcho), icmp.Type(ipv4.ICMPTypeEchoReply), 1
	if v6 {
		network, reqType, replyType, proto = "ip6:ipv6-icmp", ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply, 58
	}
	var c *icmp.PacketConn
	if err := ns.Do(func() (err error) {
		c, err = icmp.ListenPacket(network, src)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(nstest.Patience))
	for seq := 1; seq <= count; seq++ {
		// The kernel computes the ICMPv6 checksum of a raw socket.
		req, err := (&icmp.Message{Type: reqType, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("flowtop")}}).Marshal(nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.WriteTo(req, &net.IPAddr{IP: net.ParseIP(dst)}); err != nil {
			t.Fatalf("ping %s: %v", dst, err)
		}
		buf := make([]byte, 1500)
		for {
			n, _, err := c.ReadFrom(buf)
			if err != nil {
				t.Fatalf("ping %s: no reply to seq %d: %v", dst, seq, err)
			}
			m, err := icmp.ParseMessage(proto, buf[:n])
			if err != nil || m.Type != replyType {
				continue
			}
			if e, ok := m.Body.(*icmp.Echo); ok && e.ID == id && e.Seq == seq {
				break
			}
		}
	}
}

// findWatchdog returns the PID of the sysctl watchdog of flowtop pid: the
// process whose command line is `/bin/sh -c SCRIPT __sysctl-watchdog <pid>
// ...` (or, without a shell, `flowtop __sysctl-watchdog <pid> ...`).
func findWatchdog(t *testing.T, pid int) int {
	t.Helper()
	var w int
	nstest.WaitFor(t, nstest.Patience, fmt.Sprintf("a %s process for flowtop pid %d", watchdogArg, pid), func() (bool, string) {
		dirs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
		for _, path := range dirs {
			b, err := os.ReadFile(path)
			if err != nil {
				continue
			}
			args := strings.Split(string(b), "\x00")
			if i := slices.Index(args, watchdogArg); i > 0 && i+1 < len(args) && args[i+1] == strconv.Itoa(pid) {
				w, _ = strconv.Atoi(filepath.Base(filepath.Dir(path)))
				return true, ""
			}
		}
		return false, fmt.Sprintf("none among %d processes", len(dirs))
	})
	return w
}

// killAndAwait sends SIGKILL to pid (not our child) and waits until it is
// gone or a zombie.
func killAndAwait(t *testing.T, pid int) {
	t.Helper()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %d: %v", pid, err)
	}
	nstest.WaitFor(t, nstest.Patience, fmt.Sprintf("pid %d gone after SIGKILL", pid), func() (bool, string) {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return true, ""
		}
		// The state follows the parenthesised command name.
		i := bytes.LastIndexByte(b, ')')
		return i > 0 && len(b) > i+2 && (b[i+2] == 'Z' || b[i+2] == 'X'), string(b)
	})
}
