package ui_test

// End-to-end test of the interactive screen: the real flowtop binary runs
// in a private tmux server (a real terminal) and watches a test namespace
// that carries real traffic; keys go in with send-keys, the screen comes
// back with capture-pane. It is a black-box test on purpose: it knows only
// what the screen shows, never the conntrack types.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack/nstest"
)

const (
	e2eTCPPort = "8443" // the TCP flow the test follows
	e2eUDPPort = "5353" // a second flow the / filter must hide
	sysAcct    = "net/netfilter/nf_conntrack_acct"
	sysStamp   = "net/netfilter/nf_conntrack_timestamp"
)

func TestMain(m *testing.M) {
	code := m.Run()
	nstest.RemoveFlowtop()
	os.Exit(code)
}

// e2eBinary returns the flowtop binary, built once per test binary.
func e2eBinary(t *testing.T) string { return nstest.Flowtop(t) }

// tmuxTerm is a private tmux server holding one session.
type tmuxTerm struct {
	t    *testing.T
	sock string
}

const e2eSession = "ft"

func (m *tmuxTerm) run(args ...string) (string, error) {
	out, err := exec.Command("tmux", append([]string{"-S", m.sock}, args...)...).CombinedOutput()
	return string(out), err
}

// keys sends tmux key names (Escape, Enter) or, with literal, text.
func (m *tmuxTerm) keys(literal bool, keys ...string) {
	m.t.Helper()
	args := []string{"send-keys", "-t", e2eSession}
	if literal {
		args = append(args, "-l")
	}
	if out, err := m.run(append(args, keys...)...); err != nil {
		m.t.Fatalf("tmux send-keys %q: %v: %s", keys, err, out)
	}
}

// screen is the pane's text, one string per line.
func (m *tmuxTerm) screen() string {
	m.t.Helper()
	out, err := m.run("capture-pane", "-p", "-t", e2eSession)
	if err != nil {
		m.t.Fatalf("tmux capture-pane: %v: %s", err, out)
	}
	return out
}

// waitFor polls the screen until ok accepts it and returns that screen and
// how long it took; after timeout it fails the test, logging the screen.
func (m *tmuxTerm) waitFor(what string, timeout time.Duration, ok func(screen string) bool) (string, time.Duration) {
	m.t.Helper()
	start := time.Now()
	for {
		s := m.screen()
		if ok(s) {
			return s, time.Since(start)
		}
		if time.Since(start) > timeout {
			m.t.Fatalf("after %v the screen does not show %s; screen:\n%s", timeout, what, s)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// row returns the first screen line holding every one of words ("" when
// none does).
func row(screen string, words ...string) string {
	for l := range strings.SplitSeq(screen, "\n") {
		all := true
		for _, w := range words {
			if !strings.Contains(l, w) {
				all = false
				break
			}
		}
		if all {
			return l
		}
	}
	return ""
}

// tcpRow is the line of the test's TCP flow, the only TCP flow to B. Its
// PORT column shows 8443 or the service name the machine's tcp.conf gives
// (https-alt), so the port itself is checked in the detail view.
func tcpRow(screen string) string { return row(screen, " tcp ", " "+nstest.AddrB4+" ") }

// udpRow is the line of the UDP flow to port 5353 (mdns or zeroconf).
func udpRow(screen string) string { return row(screen, " udp ", " "+nstest.AddrB4+" ") }

// rateRE is a non-zero rate of at least a kilobyte per second.
var rateRE = regexp.MustCompile(`\b[0-9]+(\.[0-9])?[kMGT]B/s\b`)

// startTraffic runs, until the test ends, a TCP connection from A to a
// listener in B that sends 64 KiB every 100 ms, and a UDP exchange from A
// to B's port 5353 (a datagram and its answer every 200 ms).
func startTraffic(t *testing.T, a, b *nstest.NS) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var closers []io.Closer
	t.Cleanup(func() {
		cancel()
		for _, c := range closers {
			c.Close()
		}
		wg.Wait()
	})

	ln := nstest.ListenTCP(t, b, net.JoinHostPort(nstest.AddrB4, e2eTCPPort))
	nstest.EchoUDP(t, b, net.JoinHostPort(nstest.AddrB4, e2eUDPPort))
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				go func() { <-ctx.Done(); c.Close() }()
				io.Copy(io.Discard, c)
			})
		}
	})

	var conn net.Conn
	var udp net.Conn
	if err := a.Do(func() (err error) {
		d := net.Dialer{Timeout: 5 * time.Second}
		if conn, err = d.Dial("tcp4", net.JoinHostPort(nstest.AddrB4, e2eTCPPort)); err != nil {
			return err
		}
		udp, err = d.Dial("udp4", net.JoinHostPort(nstest.AddrB4, e2eUDPPort))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	closers = append(closers, conn, udp)
	wg.Go(func() {
		chunk := make([]byte, 64<<10)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			if _, err := conn.Write(chunk); err != nil {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	wg.Go(func() { // drain the answers
		buf := make([]byte, 1500)
		for ctx.Err() == nil {
			if _, err := udp.Read(buf); errors.Is(err, net.ErrClosed) {
				return
			}
		}
	})
	wg.Go(func() {
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			udp.Write([]byte("flowtop e2e")) // an error (e.g. refused) is retried
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})
}

// TestE2EScreen runs the real binary in tmux against a namespace with real
// traffic: the flow shows with a rate, ? shows the help, / filters, Enter
// opens the detail view, q quits and the sysctls flowtop switched on are
// back to their old values.
func TestE2EScreen(t *testing.T) {
	nstest.Require(t, "nft", "tmux")
	bin := e2eBinary(t)
	a, b := nstest.Pair(t)
	a.WriteSysctl(t, sysAcct, "0")
	a.WriteSysctl(t, sysStamp, "0")
	if v, w := a.ReadSysctl(t, sysAcct), a.ReadSysctl(t, sysStamp); v != "0" || w != "0" {
		t.Fatalf("cannot set the sysctls to 0 in %s: acct=%s timestamp=%s", a.Name, v, w)
	}

	stateDir := t.TempDir()
	m := &tmuxTerm{t: t, sock: filepath.Join(t.TempDir(), "tmux.sock")}
	// -n: numeric addresses, so rows show 192.0.2.2 and the test sends no
	// DNS queries.
	command := fmt.Sprintf("%s --netns %s -46TUI -n -t 0.5 --state-dir %s; echo EXIT=$?; sleep 60",
		bin, a.Path(), stateDir)
	if out, err := m.run("-f", "/dev/null", "new-session", "-d", "-s", e2eSession, "-x", "160", "-y", "40", command); err != nil {
		t.Fatalf("tmux new-session: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := m.run("kill-server"); err != nil {
			t.Logf("tmux kill-server: %v: %s", err, out)
		}
	})

	// The header comes with the first snapshot: the sysctls are set then.
	m.waitFor("the header", 10*time.Second, func(s string) bool {
		return strings.Contains(s, "flowtop") && strings.Contains(s, "events ") && strings.Contains(s, "filter ")
	})
	if v := a.ReadSysctl(t, sysAcct); v != "1" {
		t.Fatalf("nf_conntrack_acct is %s while flowtop runs, want 1", v)
	}
	// flowtop opens the terminal itself: it must ask for mouse reports
	// (clicks sort and select, the wheel scrolls).
	if out, err := m.run("display-message", "-p", "-t", e2eSession, "#{mouse_any_flag}"); err != nil || strings.TrimSpace(out) != "1" {
		t.Errorf("the terminal's mouse reporting is %q (err %v), want 1: flowtop did not enable the mouse", strings.TrimSpace(out), err)
	}
	startTraffic(t, a, b)

	// The flow, with a rate.
	s, _ := m.waitFor("the TCP flow to "+nstest.AddrB4+" with a rate and the UDP flow", 10*time.Second, func(s string) bool {
		return rateRE.MatchString(tcpRow(s)) && udpRow(s) != ""
	})
	t.Logf("flow row: %s", strings.TrimSpace(tcpRow(s)))

	// ? shows the help; Esc, then q close it (q does not quit there).
	helpShown := func(s string) bool {
		return strings.Contains(s, "flowtop keys") && strings.Contains(s, "pause the view")
	}
	for _, closeKey := range []string{"Escape", "q"} {
		m.keys(true, "?")
		_, latency := m.waitFor("the help after ?", 5*time.Second, helpShown)
		t.Logf("? to help on screen: %v (send-keys and capture-pane round trips included)", latency.Round(time.Millisecond))
		m.keys(closeKey == "q", closeKey)
		m.waitFor("the table after "+closeKey+" closed the help", 5*time.Second, func(s string) bool {
			return !helpShown(s) && tcpRow(s) != ""
		})
	}

	// / filters as typed: the TCP flow stays, the UDP one goes; Enter
	// keeps the filter.
	m.keys(true, "/")
	m.waitFor("the / input", 5*time.Second, func(s string) bool {
		lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
		return strings.HasPrefix(lines[len(lines)-1], "/")
	})
	m.keys(true, e2eTCPPort)
	filtered := func(s string) bool {
		return tcpRow(s) != "" && udpRow(s) == "" && strings.Contains(s, "/"+e2eTCPPort)
	}
	m.waitFor("only the TCP flow under the filter /"+e2eTCPPort, 5*time.Second, filtered)
	m.keys(false, "Enter")
	m.waitFor("the filter kept after Enter", 5*time.Second, func(s string) bool {
		lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
		return filtered(s) && !strings.HasPrefix(lines[len(lines)-1], "/")
	})

	// Enter opens the detail view of the selected (only) flow; Esc closes it.
	m.keys(false, "Enter")
	s, _ = m.waitFor("the detail view", 5*time.Second, func(s string) bool {
		return strings.Contains(s, "Flow detail") && strings.Contains(s, "Original") &&
			strings.Contains(s, nstest.AddrA4+":") && strings.Contains(s, nstest.AddrB4+":"+e2eTCPPort)
	})
	if l := row(s, "Original"); !strings.Contains(l, nstest.AddrA4+":") || !strings.Contains(l, nstest.AddrB4+":"+e2eTCPPort) {
		t.Errorf("detail view: Original line %q, want %s:* → %s:%s; screen:\n%s", strings.TrimSpace(l), nstest.AddrA4, nstest.AddrB4, e2eTCPPort, s)
	}
	m.keys(false, "Escape")
	m.waitFor("the filtered table after Esc closed the detail view", 5*time.Second, func(s string) bool {
		return !strings.Contains(s, "Flow detail") && filtered(s)
	})

	// q quits with status 0, and the sysctls are 0 again.
	m.keys(true, "q")
	m.waitFor("EXIT=0 after q", 10*time.Second, func(s string) bool {
		if strings.Contains(s, "EXIT=") && !strings.Contains(s, "EXIT=0") {
			t.Fatalf("flowtop ended with a failure; screen:\n%s", s)
		}
		return strings.Contains(s, "EXIT=0")
	})
	if v, w := a.ReadSysctl(t, sysAcct), a.ReadSysctl(t, sysStamp); v != "0" || w != "0" {
		t.Errorf("after q: nf_conntrack_acct=%s nf_conntrack_timestamp=%s, want 0 and 0 as before", v, w)
	}
	if left, _ := filepath.Glob(filepath.Join(stateDir, "*")); len(left) > 0 {
		t.Errorf("state files left behind after q: %q", left)
	}
}
