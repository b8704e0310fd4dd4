package kernel

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The sysctl guard's state files, as root in a directory of the test's own:
// symbolic links planted there are never followed, directories others can
// write are refused, a PID now held by an unrelated process does not count
// as a flowtop, and a damaged file still starts flowtop and puts back what
// can be trusted. The sysctls are those of a namespace each test creates.

// plantSymlink makes path a symbolic link to a file holding content and
// returns a check that the file is still unchanged.
func plantSymlink(t *testing.T, path, content string) (unchanged func(t *testing.T)) {
	t.Helper()
	victim := filepath.Join(t.TempDir(), "victim")
	if err := os.WriteFile(victim, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victim, path); err != nil {
		t.Fatal(err)
	}
	return func(t *testing.T) {
		t.Helper()
		if b, err := os.ReadFile(victim); err != nil || string(b) != content {
			t.Errorf("the file a planted link pointed at now holds %.80q (%v), want it untouched", b, err)
		}
	}
}

// wantRegularOrNone fails when path is a symbolic link or anything but a
// regular file.
func wantRegularOrNone(t *testing.T, path string) {
	t.Helper()
	fi, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil || !fi.Mode().IsRegular() {
		t.Errorf("state %s is %v (%v), want a regular file", path, fi.Mode(), err)
	}
}

func TestSysctlStateTempFileLinkNotFollowed(t *testing.T) {
	ns, f := sysctlNS(t)
	dir := t.TempDir()
	path := statePath(t, dir, f)
	setSysctls(t, ns, [2]string{"0", "0"})
	// The fixed temporary name the guard once wrote through.
	unchanged := plantSymlink(t, path+".tmp", "precious")

	g, err := EnableAccounting(f, dir)
	if err != nil {
		t.Fatal(err)
	}
	unchanged(t)
	wantRegularOrNone(t, path)
	if st := readState(t, path); st.Values[SysctlAcct] != "0" {
		t.Errorf("state %+v, want acct 0 recorded", st)
	}
	if err := g.Restore(); err != nil {
		t.Fatal(err)
	}
	unchanged(t)
	if got := sysctls(t, ns); got != [2]string{"0", "0"} {
		t.Errorf("after Restore: %v, want 0 0", got)
	}
}

func TestSysctlStateLinkNotRead(t *testing.T) {
	ns, f := sysctlNS(t)
	dir := t.TempDir()
	path := statePath(t, dir, f)
	setSysctls(t, ns, [2]string{"0", "0"})
	// A link to a file that looks like a state recording 1 1: followed,
	// it would make 1 1 the values to put back.
	content := fmt.Sprintf(`{"values":{%q:"1",%q:"1"}}`, SysctlAcct, SysctlTimestamp)
	unchanged := plantSymlink(t, path, content)

	g, err := EnableAccounting(f, dir)
	if err != nil {
		t.Fatal(err)
	}
	unchanged(t)
	wantRegularOrNone(t, path)
	wantOneNote(t, g, path)
	if got := sysctls(t, ns); got != [2]string{"1", "1"} {
		t.Errorf("sysctls %v, want 1 1", got)
	}
	if err := g.Restore(); err != nil {
		t.Fatal(err)
	}
	if got := sysctls(t, ns); got != [2]string{"0", "0"} {
		t.Errorf("after Restore: %v, want 0 0 (the link's content must not be trusted)", got)
	}
	unchanged(t)

	// The watchdog does not follow one either.
	os.Remove(path)
	unchanged = plantSymlink(t, path, content)
	if err := RestoreLeftover(f, dir, deadPID(t)); err != nil {
		t.Fatal(err)
	}
	if got := sysctls(t, ns); got != [2]string{"0", "0"} {
		t.Errorf("after RestoreLeftover with a link as state: %v, want 0 0", got)
	}
	unchanged(t)
	wantRegularOrNone(t, path)
}

// wantOneNote checks that EnableAccounting reported one line naming path.
func wantOneNote(t *testing.T, g *SysctlGuard, path string) {
	t.Helper()
	if len(g.Notes) != 1 || !strings.Contains(g.Notes[0], path) || strings.Contains(g.Notes[0], "\n") {
		t.Errorf("notes %q, want one line naming %s", g.Notes, path)
	}
}

func TestSysctlStateDirRefused(t *testing.T) {
	ns, f := sysctlNS(t)
	for _, c := range []struct {
		name string
		mode os.FileMode
		uid  int
	}{
		{"world-writable", 0o777, 0},
		{"sticky and world-writable like /tmp", 0o777 | os.ModeSticky, 0},
		{"group-writable", 0o775, 0},
		{"owned by another user", 0o755, 12345},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "state")
			if err := os.Mkdir(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(dir, c.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(dir, c.uid, 0); err != nil {
				t.Fatal(err)
			}
			setSysctls(t, ns, [2]string{"0", "0"})
			g, err := EnableAccounting(f, dir)
			if err == nil {
				g.Restore()
				t.Fatalf("EnableAccounting accepted state directory %s (%v, uid %d)", dir, c.mode, c.uid)
			}
			if msg := err.Error(); !strings.Contains(msg, dir) || strings.Contains(msg, "\n") {
				t.Errorf("error %q, want one line naming %s", msg, dir)
			}
			if got := sysctls(t, ns); got != [2]string{"0", "0"} {
				t.Errorf("sysctls %v after the refusal, want them untouched", got)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) > 0 {
				t.Errorf("files written in the refused directory: %q", left)
			}

			// What someone planted there is not applied by a watchdog.
			writeState(t, statePath(t, dir, f), guardState{Values: map[string]string{SysctlAcct: "1", SysctlTimestamp: "1"}})
			if err := RestoreLeftover(f, dir, deadPID(t)); err == nil || !strings.Contains(err.Error(), dir) {
				t.Errorf("RestoreLeftover in a refused directory: %v, want an error naming it", err)
			}
			if got := sysctls(t, ns); got != [2]string{"0", "0"} {
				t.Errorf("sysctls %v after RestoreLeftover, want them untouched", got)
			}
		})
	}
}

// staleState is a state file left by a flowtop that was killed with its
// watchdog, whose PID now belongs to pid, an unrelated process: the start
// time recorded is not pid's. (It names pid the older way too, by "pid" and
// "pids" alone.)
func staleState(pid int) string {
	return fmt.Sprintf(`{"pid":%d,"pids":[%d],"users":[{"pid":%d,"start":1}],"values":{%q:"0",%q:"0"}}`,
		pid, pid, pid, SysctlAcct, SysctlTimestamp)
}

func TestSysctlGuardReusedPID(t *testing.T) {
	ns, f := sysctlNS(t)
	unrelated := exec.Command("sleep", "60")
	if err := unrelated.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unrelated.Process.Kill(); unrelated.Wait() })
	pid := unrelated.Process.Pid

	for _, left := range [][2]string{
		{"1", "1"}, // what the killed flowtop left
		{"0", "0"}, // switched off since by someone else
	} {
		t.Run(fmt.Sprintf("sysctls %s %s", left[0], left[1]), func(t *testing.T) {
			dir := t.TempDir()
			path := statePath(t, dir, f)
			if err := os.WriteFile(path, []byte(staleState(pid)), 0o644); err != nil {
				t.Fatal(err)
			}
			setSysctls(t, ns, left)
			g, err := EnableAccounting(f, dir)
			if err != nil {
				t.Fatal(err)
			}
			if acct, ts := g.Enabled(); !acct || !ts {
				t.Errorf("accounting %v, timestamps %v: a PID reused by %s must not keep them off", acct, ts, unrelated.Path)
			}
			if err := g.Restore(); err != nil {
				t.Fatal(err)
			}
			if got := sysctls(t, ns); got != [2]string{"0", "0"} {
				t.Errorf("after Restore: %v, want the recorded 0 0", got)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("state file left after the last flowtop: %v", err)
			}
		})
	}

	t.Run("watchdog", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.WriteFile(statePath(t, dir, f), []byte(staleState(pid)), 0o644); err != nil {
			t.Fatal(err)
		}
		setSysctls(t, ns, [2]string{"1", "1"})
		if err := RestoreLeftover(f, dir, deadPID(t)); err != nil {
			t.Fatal(err)
		}
		if got := sysctls(t, ns); got != [2]string{"0", "0"} {
			t.Errorf("after RestoreLeftover: %v, want 0 0 (pid %d is no flowtop)", got, pid)
		}
	})
}

func TestSysctlGuardDamagedState(t *testing.T) {
	ns, f := sysctlNS(t)
	acct, stamp := SysctlAcct, SysctlTimestamp
	for _, c := range []struct {
		name, content string
		want          [2]string // after Restore
		noted         bool
	}{
		{"not JSON", "garbage{", [2]string{"0", "0"}, true},
		{"empty", "", [2]string{"0", "0"}, true},
		{"torn", `{"users":[{"pid":12`, [2]string{"0", "0"}, true},
		{"null", `null`, [2]string{"0", "0"}, true},
		{"no values", `{"users":[]}`, [2]string{"0", "0"}, true},
		{"-5", fmt.Sprintf(`{"values":{%q:"-5",%q:"0"}}`, acct, stamp), [2]string{"0", "0"}, true},
		{"2 kept apart from a good 1", fmt.Sprintf(`{"values":{%q:"1",%q:"2"}}`, acct, stamp), [2]string{"1", "0"}, true},
		{"one missing", fmt.Sprintf(`{"values":{%q:"1"}}`, acct), [2]string{"1", "0"}, true},
		{"text", fmt.Sprintf(`{"values":{%q:"on",%q:"1"}}`, acct, stamp), [2]string{"0", "1"}, true},
		{"numbers are read", fmt.Sprintf(`{"values":{%q:1,%q:0}}`, acct, stamp), [2]string{"1", "0"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := statePath(t, dir, f)
			if err := os.WriteFile(path, []byte(c.content), 0o644); err != nil {
				t.Fatal(err)
			}
			setSysctls(t, ns, [2]string{"1", "1"}) // left by the flowtop that wrote it
			g, err := EnableAccounting(f, dir)
			if err != nil {
				t.Fatalf("EnableAccounting with state %q: %v", c.content, err)
			}
			if c.noted {
				wantOneNote(t, g, path)
			} else if len(g.Notes) > 0 {
				t.Errorf("notes %q, want none", g.Notes)
			}
			if got := sysctls(t, ns); got != [2]string{"1", "1"} {
				t.Errorf("sysctls %v, want 1 1", got)
			}
			if err := g.Restore(); err != nil {
				t.Fatal(err)
			}
			if got := sysctls(t, ns); got != c.want {
				t.Errorf("after Restore: %v, want %v (what can be trusted, else the kernel defaults)", got, c.want)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("state file left: %v", err)
			}
		})
	}
}

func TestParseProcStat(t *testing.T) {
	// Field 22 is the start time; the command name may hold ") (".
	line := "4242 (a) (b c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 100 18446744073709551615\n"
	state, start, err := parseProcStat([]byte(line))
	if err != nil || state != 'S' || start != 987654 {
		t.Errorf("parseProcStat = %c %d %v, want S 987654", state, start, err)
	}
	for _, bad := range []string{"", "4242 (x", "4242 (x) S 1 2", "4242 (x) S 1 4242 4242 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 soon 1"} {
		if _, _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("parseProcStat(%q) accepted", bad)
		}
	}
}

// TestRunningProcess: a process is named by PID and start time; one that
// ended, even if not yet reaped, no longer runs.
func TestRunningProcess(t *testing.T) {
	cmd := exec.Command("sleep", "60")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	o, ok := runningProcess(cmd.Process.Pid)
	if !ok || !o.alive() {
		t.Fatalf("runningProcess(%d) = %+v %v, want a running process", cmd.Process.Pid, o, ok)
	}
	if (owner{PID: o.PID, Start: o.Start + 1}).alive() || (owner{PID: o.PID}).alive() {
		t.Errorf("another start time (or none) names the same process")
	}
	cmd.Process.Kill()
	// Not reaped yet: a zombie.
	for deadline := time.Now().Add(20 * time.Second); o.alive(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("killed process %d still counts as running", o.PID)
		}
	}
	cmd.Wait()
	if o.alive() {
		t.Errorf("reaped process %d counts as running", o.PID)
	}
}

// TestSysctlGuardKeep is --keep-accounting: the sysctls stay on at exit,
// for a flowtop alone, for its watchdog, and for a flowtop that shared the
// namespace with another one (the values to put back become 1 1).
func TestSysctlGuardKeep(t *testing.T) {
	ns, f := sysctlNS(t)
	values := map[string]string{SysctlAcct: "0", SysctlTimestamp: "0"}

	t.Run("alone", func(t *testing.T) {
		dir := t.TempDir()
		setSysctls(t, ns, [2]string{"0", "0"})
		g, err := EnableAccounting(f, dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Keep(); err != nil {
			t.Fatal(err)
		}
		if got := sysctls(t, ns); got != [2]string{"1", "1"} {
			t.Errorf("after Keep: %v, want 1 1", got)
		}
		if err := g.Restore(); err != nil {
			t.Fatal(err)
		}
		if got := sysctls(t, ns); got != [2]string{"1", "1"} {
			t.Errorf("Restore after Keep: %v, want 1 1 (only the first call acts)", got)
		}
		if _, err := os.Stat(statePath(t, dir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("state file left: %v", err)
		}
	})

	t.Run("watchdog", func(t *testing.T) {
		dir := t.TempDir()
		writeState(t, statePath(t, dir, f), guardState{Users: []owner{{PID: deadPID(t), Start: 1}}, Values: values})
		setSysctls(t, ns, [2]string{"1", "1"})
		if err := KeepLeftover(f, dir, deadPID(t)); err != nil {
			t.Fatal(err)
		}
		if got := sysctls(t, ns); got != [2]string{"1", "1"} {
			t.Errorf("after KeepLeftover: %v, want 1 1", got)
		}
		if _, err := os.Stat(statePath(t, dir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("state file left: %v", err)
		}
	})

	t.Run("shared", func(t *testing.T) {
		dir := t.TempDir()
		path := statePath(t, dir, f)
		other := exec.Command("sleep", "60")
		if err := other.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { other.Process.Kill(); other.Wait() })
		writeState(t, path, guardState{Users: []owner{ownerOf(t, other.Process.Pid)}, Values: values})
		setSysctls(t, ns, [2]string{"1", "1"})
		g, err := EnableAccounting(f, dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := g.Keep(); err != nil {
			t.Fatal(err)
		}
		if st := readState(t, path); len(st.Users) != 1 || st.Values[SysctlAcct] != "1" || st.Values[SysctlTimestamp] != "1" {
			t.Errorf("state after Keep: %+v, want the other flowtop with 1 1 to put back", st)
		}
		other.Process.Kill()
		other.Wait()
		if err := RestoreLeftover(f, dir, other.Process.Pid); err != nil {
			t.Fatal(err)
		}
		if got := sysctls(t, ns); got != [2]string{"1", "1"} {
			t.Errorf("after the other flowtop left too: %v, want 1 1", got)
		}
	})
}
