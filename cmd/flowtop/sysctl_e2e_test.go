package main

import (
	"bytes"
	"fmt"
	"github.com/flowtop/flowtop/conntrack/kernel"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flowtop/flowtop/conntrack/nstest"
	"github.com/flowtop/flowtop/report"
)

// TestSysctlsRestored checks the sysctl guard of the real binary: flowtop
// turns nf_conntrack_acct and nf_conntrack_timestamp on in the namespace it
// reads and puts the previous values (here 0) back on every way out.
func TestSysctlsRestored(t *testing.T) {
	nstest.Require(t, "nft")
	a := nstest.New(t, "s")
	a.EnableConntrack(t)
	acct := sysctl(t, a, kernel.SysctlAcct)
	stamp := sysctl(t, a, kernel.SysctlTimestamp)
	reset := func(t *testing.T) {
		a.WriteSysctl(t, kernel.SysctlAcct, "0")
		a.WriteSysctl(t, kernel.SysctlTimestamp, "0")
		if acct() != "0" || stamp() != "0" {
			t.Fatalf("cannot set the sysctls to 0 in %s", a.Name)
		}
	}
	want := func(t *testing.T, v, when string) {
		t.Helper()
		if a, s := acct(), stamp(); a != v || s != v {
			t.Errorf("%s: nf_conntrack_acct=%s nf_conntrack_timestamp=%s, want %s", when, a, s, v)
		}
	}
	noStateFile := func(t *testing.T, dir string) {
		t.Helper()
		if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) > 0 {
			t.Errorf("state files left behind: %q", left)
		}
	}
	// startBatch starts flowtop --batch and waits for its first snapshot,
	// printed once the sysctls are set and the table dumped.
	startBatch := func(t *testing.T, stateDir string) *flowtopProc {
		t.Helper()
		p := startFlowtop(t, "--batch", "-t", "0.5", "--netns", a.Path(), "--state-dir", stateDir)
		d := decodeDoc(t, p.next(t, 5*time.Second))
		if !d.Health.Accounting || !d.Health.Timestamps {
			t.Errorf("health says accounting %v, timestamps %v while flowtop runs", d.Health.Accounting, d.Health.Timestamps)
		}
		want(t, "1", "while flowtop --batch runs")
		return p
	}

	t.Run("normal end of --once", func(t *testing.T) {
		reset(t)
		dir := t.TempDir()
		out, stderr, code := runBinary(t, 10*time.Second, "--once", "-t", "0.2", "--netns", a.Path(), "--state-dir", dir)
		if code != 0 {
			t.Fatalf("exit status %d; stderr:\n%s", code, stderr)
		}
		if d := decodeDoc(t, out); !d.Health.Accounting || !d.Health.Timestamps {
			t.Errorf("health says accounting %v, timestamps %v during --once", d.Health.Accounting, d.Health.Timestamps)
		}
		want(t, "0", "after --once")
		noStateFile(t, dir)
	})

	for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP} {
		t.Run(unix.SignalName(sig), func(t *testing.T) {
			reset(t)
			dir := t.TempDir()
			p := startBatch(t, dir)
			p.signal(t, sig)
			if code := p.wait(t, 5*time.Second); code != 0 {
				t.Errorf("exit status %d after %v, want 0", code, sig)
			}
			want(t, "0", "after "+unix.SignalName(sig))
			noStateFile(t, dir)
		})
	}

	t.Run("SIGKILL, watchdog restores", func(t *testing.T) {
		reset(t)
		dir := t.TempDir()
		p := startBatch(t, dir)
		p.signal(t, syscall.SIGKILL)
		p.wait(t, 5*time.Second)
		killed := time.Now()
		for acct() != "0" || stamp() != "0" {
			if time.Since(killed) > 20*time.Second {
				t.Fatalf("sysctls still acct=%s timestamp=%s 20 s after SIGKILL", acct(), stamp())
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Logf("watchdog restored the sysctls %v after SIGKILL", time.Since(killed).Round(time.Millisecond))
		noStateFile(t, dir)
	})

	t.Run("SIGKILL of flowtop and watchdog, next start restores", func(t *testing.T) {
		reset(t)
		dir := t.TempDir()
		p := startBatch(t, dir)
		killAndAwait(t, findWatchdog(t, p.cmd.Process.Pid))
		p.signal(t, syscall.SIGKILL)
		p.wait(t, 5*time.Second)
		time.Sleep(200 * time.Millisecond)
		want(t, "1", "after SIGKILL of flowtop and its watchdog")
		if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 1 {
			t.Fatalf("state dir holds %q, want the one state file", left)
		}
		// Had the new start not restored the recorded 0 first, it would
		// record 1 as the value to put back.
		out, stderr, code := runBinary(t, 10*time.Second, "--once", "-t", "0", "--netns", a.Path(), "--state-dir", dir)
		if code != 0 {
			t.Fatalf("exit status %d; stderr:\n%s", code, stderr)
		}
		if d := decodeDoc(t, out); !d.Health.Accounting || !d.Health.Timestamps {
			t.Errorf("health says accounting %v, timestamps %v", d.Health.Accounting, d.Health.Timestamps)
		}
		want(t, "0", "after the next flowtop --once")
		noStateFile(t, dir)
	})

	// killBoth leaves what flowtop and its watchdog, both killed with
	// SIGKILL, leave: the sysctls at 1 and the state file naming flowtop's
	// PID, which it returns.
	killBoth := func(t *testing.T, dir string) (statePath string, pid int) {
		t.Helper()
		p := startBatch(t, dir)
		killAndAwait(t, findWatchdog(t, p.cmd.Process.Pid))
		p.signal(t, syscall.SIGKILL)
		p.wait(t, 5*time.Second)
		left, _ := filepath.Glob(filepath.Join(dir, "*"))
		if len(left) != 1 {
			t.Fatalf("state dir holds %q, want the one state file", left)
		}
		return left[0], p.cmd.Process.Pid
	}
	// once runs flowtop --once -t 0 with args and returns its document
	// and stderr, failing on an exit status other than 0.
	once := func(t *testing.T, dir string, args ...string) (*report.Document, string) {
		t.Helper()
		out, stderr, code := runBinary(t, 20*time.Second,
			append([]string{"--once", "-t", "0", "--netns", a.Path(), "--state-dir", dir}, args...)...)
		if code != 0 {
			t.Fatalf("exit status %d; stderr:\n%.600s", code, stderr)
		}
		return decodeDoc(t, out), stderr
	}

	// flowtop and its watchdog are killed; flowtop's PID goes to an
	// unrelated process (a sleep stands in, named in the state file in
	// place of flowtop's PID). The next flowtop must not take it for a
	// flowtop still running: it switches accounting on, even when someone
	// switched it off meanwhile, and puts back the recorded 0 at its end.
	for _, left := range []string{"1", "0"} {
		t.Run("state file naming a reused PID, sysctls "+left, func(t *testing.T) {
			reset(t)
			dir := t.TempDir()
			path, pid := killBoth(t, dir)
			sleeper := exec.Command("sleep", "60")
			if err := sleeper.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { sleeper.Process.Kill(); sleeper.Wait() })
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			reused := regexp.MustCompile(`\b`+strconv.Itoa(pid)+`\b`).ReplaceAll(b, []byte(strconv.Itoa(sleeper.Process.Pid)))
			if bytes.Equal(reused, b) {
				t.Fatalf("state file %.200s does not name flowtop's PID %d", b, pid)
			}
			if err := os.WriteFile(path, reused, 0o644); err != nil {
				t.Fatal(err)
			}
			a.WriteSysctl(t, kernel.SysctlAcct, left)
			a.WriteSysctl(t, kernel.SysctlTimestamp, left)

			d, _ := once(t, dir)
			if !d.Health.Accounting || !d.Health.Timestamps {
				t.Errorf("health says accounting %v, timestamps %v: the state file's PID %d (a sleep) kept them off",
					d.Health.Accounting, d.Health.Timestamps, sleeper.Process.Pid)
			}
			want(t, "0", "after --once with a state file naming a reused PID")
			noStateFile(t, dir)
		})
	}

	// A damaged state file: one line on stderr naming it, flowtop starts,
	// and the kernel defaults (0) are put back, not the 1 left behind.
	for _, c := range []struct{ name, content string }{
		{"not JSON", "garbage{"},
		{"-5", fmt.Sprintf(`{"values":{%q:"-5",%q:"0"}}`, kernel.SysctlAcct, kernel.SysctlTimestamp)},
	} {
		t.Run("damaged state file, "+c.name, func(t *testing.T) {
			reset(t)
			dir := t.TempDir()
			path, _ := killBoth(t, dir)
			if err := os.WriteFile(path, []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			d, stderr := once(t, dir)
			if !d.Health.Accounting || !d.Health.Timestamps {
				t.Errorf("health says accounting %v, timestamps %v", d.Health.Accounting, d.Health.Timestamps)
			}
			var about []string
			for l := range strings.Lines(stderr) {
				if strings.Contains(l, path) {
					about = append(about, l)
				}
			}
			if len(about) != 1 || !strings.Contains(about[0], "damaged") {
				t.Errorf("stderr lines naming %s: %q, want one saying it is damaged; stderr:\n%.600s", path, about, stderr)
			}
			want(t, "0", "after --once with a damaged state file")
			noStateFile(t, dir)
		})
	}

	t.Run("state directory others can write is refused", func(t *testing.T) {
		reset(t)
		dir := filepath.Join(t.TempDir(), "state")
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		_, stderr, code := runBinary(t, 20*time.Second, "--once", "-t", "0", "--netns", a.Path(), "--state-dir", dir)
		if code != 1 {
			t.Errorf("exit status %d with a world-writable --state-dir, want 1", code)
		}
		var about []string
		for l := range strings.Lines(stderr) {
			if strings.Contains(l, dir) {
				about = append(about, l)
			}
		}
		if len(about) != 1 || !strings.HasPrefix(about[0], "flowtop: ") {
			t.Errorf("stderr lines naming %s: %q, want one flowtop error; stderr:\n%.600s", dir, about, stderr)
		}
		want(t, "0", "after the refusal")
		noStateFile(t, dir)
	})

	t.Run("--keep-accounting", func(t *testing.T) {
		reset(t)
		dir := t.TempDir()
		_, stderr := once(t, dir, "--keep-accounting")
		if n := strings.Count(stderr, "flowtop: --keep-accounting: "); n != 1 {
			t.Errorf("stderr has %d lines about --keep-accounting, want one; stderr:\n%.600s", n, stderr)
		}
		want(t, "1", "after --once --keep-accounting")
		noStateFile(t, dir)
		// The next --once without it finds 1 1 and leaves them so.
		once(t, dir)
		want(t, "1", "after a plain --once that found them on")
	})

	t.Run("SIGKILL with --keep-accounting, watchdog leaves them on", func(t *testing.T) {
		reset(t)
		dir := t.TempDir()
		p := startFlowtop(t, "--batch", "-t", "0.5", "--keep-accounting", "--netns", a.Path(), "--state-dir", dir)
		p.next(t, 20*time.Second)
		p.signal(t, syscall.SIGKILL)
		p.wait(t, 5*time.Second)
		killed := time.Now()
		// The watchdog's work shows as the state file going away.
		for left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) > 0; left, _ = filepath.Glob(filepath.Join(dir, "*")) {
			if time.Since(killed) > 20*time.Second {
				t.Fatalf("state %q still there 20 s after SIGKILL", left)
			}
			time.Sleep(10 * time.Millisecond)
		}
		want(t, "1", "after the watchdog of a flowtop --keep-accounting")
	})

	t.Run("values other than 0 are kept", func(t *testing.T) {
		reset(t)
		a.WriteSysctl(t, kernel.SysctlAcct, "1")
		dir := t.TempDir()
		p := startBatch(t, dir)
		p.signal(t, syscall.SIGTERM)
		p.wait(t, 5*time.Second)
		if a, s := acct(), stamp(); a != "1" || s != "0" {
			t.Errorf("after SIGTERM acct=%s timestamp=%s, want 1 and 0 as before", a, s)
		}
	})

}

// TestOnceUncountedFlows: a flow the kernel created while accounting was
// off (between two --once runs, say) never gets counters. --once says how
// many such flows there are, in health.uncounted_flows and on stderr, and
// --keep-accounting leaves accounting on at exit so that later flows are
// counted; without it the sysctls go back to 0.
func TestOnceUncountedFlows(t *testing.T) {
	nstest.Require(t, "nft")
	a, b := nstest.Pair(t)
	acct := sysctl(t, a, kernel.SysctlAcct)
	stamp := sysctl(t, a, kernel.SysctlTimestamp)
	a.WriteSysctl(t, kernel.SysctlAcct, "0")
	a.WriteSysctl(t, kernel.SysctlTimestamp, "0")
	dial := connectTCP(t, a, b)
	early := dial() // while accounting is off

	dir := t.TempDir()
	run := func(t *testing.T, args ...string) (*report.Document, string) {
		t.Helper()
		out, stderr, code := runBinary(t, 20*time.Second,
			append([]string{"--once", "-t", "0", "--netns", a.Path(), "--state-dir", dir}, args...)...)
		if code != 0 {
			t.Fatalf("flowtop %s: exit status %d; stderr:\n%.600s", strings.Join(args, " "), code, stderr)
		}
		return decodeDoc(t, out), stderr
	}
	counted := func(d *report.Document, port int) (counted, found bool) {
		for _, f := range d.Flows {
			if f.Proto == "tcp" && int(f.Sport) == port {
				return f.Counted, true
			}
		}
		return false, false
	}
	uncounted := func(t *testing.T, d *report.Document, stderr string) {
		t.Helper()
		if c, ok := counted(d, early); !ok || c {
			t.Errorf("flow from port %d: listed %v, counted %v; want it listed, uncounted", early, ok, c)
		}
		n := d.Health.UncountedFlows
		if n < 1 {
			t.Errorf("health.uncounted_flows %d, want at least 1", n)
		}
		if w := fmt.Sprintf("flows whose counters are unknown: %d", n); !strings.Contains(stderr, w) {
			t.Errorf("stderr does not warn %q:\n%.600s", w, stderr)
		}
	}

	for _, mode := range []struct {
		name string
		args []string
	}{
		{"table", nil},
		{"streamed dump", []string{"--limit", "5"}},
	} {
		t.Run("--once, "+mode.name, func(t *testing.T) {
			d, stderr := run(t, mode.args...)
			uncounted(t, d, stderr)
			if acct() != "0" || stamp() != "0" {
				t.Errorf("after --once: acct=%s timestamp=%s, want 0 0", acct(), stamp())
			}
		})
	}

	t.Run("--keep-accounting", func(t *testing.T) {
		d, stderr := run(t, "--keep-accounting")
		uncounted(t, d, stderr)
		if acct() != "1" || stamp() != "1" {
			t.Errorf("after --once --keep-accounting: acct=%s timestamp=%s, want 1 1", acct(), stamp())
		}
		late := dial() // accounting on: counted
		d, _ = run(t, "--keep-accounting")
		if c, ok := counted(d, late); !ok || !c {
			t.Errorf("flow from port %d made after --keep-accounting: listed %v, counted %v; want counted", late, ok, c)
		}
	})
}

// connectTCP returns a function that opens a TCP connection from A to an
// echo server in B, exchanges a message (the flow is then established) and
// returns its source port. The connections close when the test ends.
func connectTCP(t *testing.T, a, b *nstest.NS) func() int {
	echo := nstest.EchoTCP(t, b, net.JoinHostPort(nstest.AddrB4, "0"))
	return func() int {
		t.Helper()
		var c net.Conn
		if err := a.Do(func() (err error) {
			c, err = net.DialTimeout("tcp", echo.String(), 10*time.Second)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write([]byte("flowtop")); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(make([]byte, 16)); err != nil {
			t.Fatalf("echo from %s: %v", echo, err)
		}
		return c.LocalAddr().(*net.TCPAddr).Port
	}
}

// TestScreenWarnsUncounted: the screen's header shows the warning
// flowtop(8) promises about flows whose counters are unknown, with their
// count. The real binary runs in a private tmux server.
func TestScreenWarnsUncounted(t *testing.T) {
	nstest.Require(t, "nft", "tmux")
	bin := flowtopBinary(t)
	a, b := nstest.Pair(t)
	a.WriteSysctl(t, kernel.SysctlAcct, "0")
	a.WriteSysctl(t, kernel.SysctlTimestamp, "0")
	connectTCP(t, a, b)() // while accounting is off

	sock := filepath.Join(t.TempDir(), "tmux.sock")
	tmux := func(args ...string) (string, error) {
		out, err := exec.Command("tmux", append([]string{"-S", sock}, args...)...).CombinedOutput()
		return string(out), err
	}
	command := fmt.Sprintf("%s -n --netns %s -t 0.5 --state-dir %s; sleep 60", bin, a.Path(), t.TempDir())
	if out, err := tmux("-f", "/dev/null", "new-session", "-d", "-s", "ft", "-x", "160", "-y", "40", command); err != nil {
		t.Fatalf("tmux new-session: %v: %s", err, out)
	}
	t.Cleanup(func() { tmux("kill-server") })

	warning := regexp.MustCompile(`flows whose counters are unknown: ([0-9]+)`)
	var screen string
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		out, err := tmux("capture-pane", "-p", "-t", "ft")
		if err != nil {
			t.Fatalf("tmux capture-pane: %v: %s", err, out)
		}
		screen = out
		if m := warning.FindStringSubmatch(screen); m != nil {
			if n, _ := strconv.Atoi(m[1]); n < 1 {
				t.Errorf("header warns of %s flows, want at least 1", m[1])
			}
			return
		}
	}
	t.Fatalf("no warning about flows whose counters are unknown within 20 s; screen:\n%.2000s", screen)
}
