package main

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/conntrack/nstest"
)

// TestSysctlsRestored checks the sysctl guard of the real binary: flowtop
// turns nf_conntrack_acct and nf_conntrack_timestamp on in the namespace it
// reads and puts the previous values (here 0) back on every way out.
func TestSysctlsRestored(t *testing.T) {
	nstest.Require(t, "nft")
	a := nstest.New(t, "s")
	a.EnableConntrack(t)
	acct := sysctl(t, a, conntrack.SysctlAcct)
	stamp := sysctl(t, a, conntrack.SysctlTimestamp)
	reset := func(t *testing.T) {
		a.WriteSysctl(t, conntrack.SysctlAcct, "0")
		a.WriteSysctl(t, conntrack.SysctlTimestamp, "0")
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
			if time.Since(killed) > 2*time.Second {
				t.Fatalf("sysctls still acct=%s timestamp=%s 2 s after SIGKILL", acct(), stamp())
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

	t.Run("values other than 0 are kept", func(t *testing.T) {
		reset(t)
		a.WriteSysctl(t, conntrack.SysctlAcct, "1")
		dir := t.TempDir()
		p := startBatch(t, dir)
		p.signal(t, syscall.SIGTERM)
		p.wait(t, 5*time.Second)
		if a, s := acct(), stamp(); a != "1" || s != "0" {
			t.Errorf("after SIGTERM acct=%s timestamp=%s, want 1 and 0 as before", a, s)
		}
	})

}
