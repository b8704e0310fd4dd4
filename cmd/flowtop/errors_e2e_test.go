package main

import (
	"bytes"
	"context"
	"github.com/flowtop/flowtop/conntrack/kernel"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack/nstest"
)

// TestUnprivileged runs flowtop as nobody (uid/gid 65534, no capability):
// exit status 1 and one line naming CAP_NET_ADMIN.
func TestUnprivileged(t *testing.T) {
	nstest.Require(t, "nft")
	bin := flowtopBinary(t)
	a := nstest.New(t, "p")
	for _, tt := range []struct {
		name string
		args []string
	}{
		{"--netns", []string{"--once", "-t", "0", "--netns", a.Path(), "--state-dir", t.TempDir()}},
		// Its own namespace: as nobody it can change nothing there.
		{"own namespace", []string{"--once", "-t", "0", "--state-dir", t.TempDir()}},
		{"--batch", []string{"--batch", "--netns", a.Path(), "--state-dir", t.TempDir()}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), nstest.Patience)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, tt.args...)
			cmd.Dir = "/"
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			cmd.Run()
			if ctx.Err() != nil {
				t.Fatalf("still running after %v; stderr:\n%s", nstest.Patience, nstest.Truncate(stderr.String()))
			}
			if code := cmd.ProcessState.ExitCode(); code != 1 {
				t.Errorf("exit status %d, want 1", code)
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout: %q", stdout.String())
			}
			msg := stderr.String()
			if strings.Count(msg, "\n") != 1 || !strings.HasSuffix(msg, "\n") || !strings.Contains(msg, "CAP_NET_ADMIN") {
				t.Errorf("stderr %q: want one line naming CAP_NET_ADMIN", msg)
			}
		})
	}
}

// barePair is nstest.Pair without the nft rule: traffic flows between A
// and B but conntrack tracks none of it.
func barePair(t *testing.T) (a, b *nstest.NS) {
	t.Helper()
	a, b = nstest.New(t, "ta"), nstest.New(t, "tb")
	if out, err := exec.Command("ip", "link", "add", "veth0", "netns", a.Name, "type", "veth",
		"peer", "name", "veth0", "netns", b.Name).CombinedOutput(); err != nil {
		t.Fatalf("ip link add: %v: %s", err, out)
	}
	for _, x := range []struct {
		ns     *nstest.NS
		v4, v6 string
	}{{a, nstest.AddrA4, nstest.AddrA6}, {b, nstest.AddrB4, nstest.AddrB6}} {
		x.ns.Exec(t, "ip", "addr", "add", x.v4+"/24", "dev", "veth0")
		x.ns.Exec(t, "ip", "-6", "addr", "add", x.v6+"/64", "dev", "veth0", "nodad")
		x.ns.Exec(t, "ip", "link", "set", "veth0", "up")
	}
	return a, b
}

// tcpConnect opens a TCP connection from A to a listener on B at dst and
// returns the listening port; the connection stays open until the test ends.
func tcpConnect(t *testing.T, a, b *nstest.NS, dst string) int {
	t.Helper()
	ln := nstest.ListenTCP(t, b, net.JoinHostPort(dst, "0"))
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			// Closed once the client end closes.
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	var c net.Conn
	if err := a.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", ln.Addr().String(), nstest.Patience)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write([]byte("flowtop")); err != nil {
		t.Fatal(err)
	}
	return ln.Addr().(*net.TCPAddr).Port
}

// TestConntrackInactive runs flowtop in a namespace without any rule using
// conntrack: it hints how to activate tracking, and --enable-tracking
// makes the kernel track the traffic until flowtop exits.
func TestConntrackInactive(t *testing.T) {
	nstest.Require(t, "nft")
	flowtopBinary(t)
	a, b := barePair(t)
	count := sysctl(t, a, kernel.SysctlCount)
	nftTables := func() string { return a.Exec(t, "nft", "list", "tables") }

	t.Run("hint", func(t *testing.T) {
		tcpConnect(t, a, b, nstest.AddrB4)
		if n := count(); n != "0" {
			t.Fatalf("nf_conntrack_count = %s without any rule, want 0", n)
		}
		out, stderr, code := runBinary(t, nstest.Patience, "--once", "-t", "0", "--netns", a.Path(), "--state-dir", t.TempDir())
		if code != 0 {
			t.Fatalf("exit status %d; stderr:\n%s", code, stderr)
		}
		decodeDoc(t, out)
		if !strings.Contains(stderr, "--enable-tracking") || !strings.Contains(stderr, "ct state") {
			t.Errorf("no hint about activating conntrack on stderr:\n%s", stderr)
		}
	})

	t.Run("--enable-tracking", func(t *testing.T) {
		p := startFlowtop(t, "--batch", "-t", "0.5", "-46TUI", "--enable-tracking", "--netns", a.Path(), "--state-dir", t.TempDir())
		decodeDoc(t, p.next(t, nstest.Patience))
		if tables := nftTables(); !strings.Contains(tables, trackingTable) {
			t.Errorf("while flowtop --enable-tracking runs, nft list tables shows:\n%s", tables)
		}
		ports := map[string]int{
			nstest.AddrB4: tcpConnect(t, a, b, nstest.AddrB4),
			nstest.AddrB6: tcpConnect(t, a, b, nstest.AddrB6),
		}
		if n, _ := strconv.Atoi(count()); n == 0 {
			t.Errorf("nf_conntrack_count = 0 with --enable-tracking and traffic")
		}
		deadline := time.Now().Add(nstest.Patience)
		for len(ports) > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("no snapshot within %v lists the TCP flows to %v", nstest.Patience, ports)
			}
			d := decodeDoc(t, p.next(t, time.Until(deadline)))
			for _, f := range d.Flows {
				// No check of the state: while a first IPv6 connection
				// is open, the kernel itself may still report SYN_SENT.
				if port, ok := ports[f.Dst]; ok && f.Proto == "tcp" && int(f.Dport) == port {
					t.Logf("tracked: %s %s:%d > %s:%d %s", f.Family, f.Src, f.Sport, f.Dst, f.Dport, f.State)
					delete(ports, f.Dst)
				}
			}
		}
		p.signal(t, syscall.SIGINT)
		if code := p.wait(t, nstest.Patience); code != 0 {
			t.Errorf("exit status %d after SIGINT", code)
		}
		if tables := nftTables(); strings.Contains(tables, trackingTable) {
			t.Errorf("after flowtop --enable-tracking ended, nft list tables still shows:\n%s", tables)
		}
		if stderr := p.stderr.String(); strings.Contains(stderr, "conntrack tracks no flow") {
			t.Errorf("hint printed although --enable-tracking was given:\n%s", stderr)
		}
	})

	t.Run("--enable-tracking removed after SIGTERM and --once", func(t *testing.T) {
		for _, args := range [][]string{{"--batch"}, {"--once", "-t", "0"}} {
			args = append(args, "--enable-tracking", "--netns", a.Path(), "--state-dir", t.TempDir())
			p := startFlowtop(t, args...)
			p.next(t, nstest.Patience)
			if args[0] == "--batch" {
				p.signal(t, syscall.SIGTERM)
			}
			if code := p.wait(t, nstest.Patience); code != 0 {
				t.Errorf("%s: exit status %d", args[0], code)
			}
			if tables := nftTables(); strings.Contains(tables, trackingTable) {
				t.Errorf("%s: after flowtop ended, nft list tables still shows:\n%s", args[0], tables)
			}
		}
	})
}
