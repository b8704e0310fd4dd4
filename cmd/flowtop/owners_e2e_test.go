package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack/nstest"
	"github.com/flowtop/flowtop/report"
)

// socatClient is a socat process in A holding a TCP connection to an echo
// server in B.
type socatClient struct {
	pid   int
	dport int // the echo server's port in B
}

// startSocat connects socat in a to an echo server on B's IPv4 address and
// waits for one echoed line, so the connection is established (and
// tracked) when it returns. socat ends when the test does.
func startSocat(t *testing.T, a, b *nstest.NS) *socatClient {
	t.Helper()
	srv := nstest.EchoTCP(t, b, net.JoinHostPort(nstest.AddrB4, "0"))
	// ip netns exec execs socat in place: the PID is socat's.
	cmd := a.Command("socat", "-", "TCP:"+srv.String())
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start socat: %v", err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		stdin.Close() // socat ends at EOF
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	echoed := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		echoed <- line
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		close(exited)
	}()
	if _, err := io.WriteString(stdin, "flowtop\n"); err != nil {
		t.Fatalf("write to socat: %v", err)
	}
	select {
	case line := <-echoed:
		if line != "flowtop\n" {
			t.Fatalf("socat echoed %q; stderr: %.300s", line, stderr.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("no echo through socat within 20 s; stderr: %.300s", stderr.String())
	}
	return &socatClient{pid: cmd.Process.Pid, dport: srv.Port}
}

// checkOwner fails the test unless d lists c's flow with socat's PID and
// name.
func (c *socatClient) checkOwner(t *testing.T, d *report.Document) {
	t.Helper()
	for _, f := range d.Flows {
		if f.Proto != "tcp" || f.Dst != nstest.AddrB4 || int(f.Dport) != c.dport {
			continue
		}
		if f.Process == nil || f.Process.PID != c.pid || f.Process.Name != "socat" {
			t.Errorf("flow %s:%d > %s:%d: process %+v, want socat pid %d", f.Src, f.Sport, f.Dst, f.Dport, f.Process, c.pid)
		}
		return
	}
	t.Errorf("no flow to %s:%d among %d listed", nstest.AddrB4, c.dport, len(d.Flows))
}

// TestOnceNamesOwners: a one-shot read names the local process of the
// flows it prints, though the finder answers asynchronously: with -t 0
// (the document right after the dump, streamed with --limit or from the
// table without) and with one interval for a flow that began during it.
func TestOnceNamesOwners(t *testing.T) {
	nstest.Require(t, "nft", "socat")
	flowtopBinary(t)
	a, b := nstest.Pair(t)
	c := startSocat(t, a, b)
	t.Logf("socat pid %d holds a connection to %s:%d", c.pid, nstest.AddrB4, c.dport)

	for _, args := range [][]string{
		{"--once", "-t", "0"},
		{"--once", "-t", "0", "--limit", "10"},
	} {
		t.Run(fmt.Sprint(args), func(t *testing.T) {
			out, stderr, code := runBinary(t, 30*time.Second, append(args, "-G", "--netns", a.Path(), "--state-dir", t.TempDir())...)
			if code != 0 {
				t.Fatalf("exit status %d; stderr: %.300s", code, stderr)
			}
			c.checkOwner(t, decodeDoc(t, out))
		})
	}

	t.Run("--once, a flow younger than the interval", func(t *testing.T) {
		stateDir := t.TempDir()
		p := startFlowtop(t, "--once", "-t", "2", "-G", "--netns", a.Path(), "--state-dir", stateDir)
		// The watchdog starts after flowtop has opened the namespace,
		// just before the first dump: a connection made now is (nearly
		// always) in none but the second.
		findWatchdog(t, p.cmd.Process.Pid)
		young := startSocat(t, a, b)
		d := decodeDoc(t, p.next(t, 30*time.Second))
		if code := p.wait(t, 10*time.Second); code != 0 {
			t.Errorf("exit status %d", code)
		}
		young.checkOwner(t, d)
		c.checkOwner(t, d)
	})
}
