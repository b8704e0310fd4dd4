package kernel

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// The sysctls flowtop needs on: per-flow byte/packet counters and start
// timestamps. Both apply only to flows created after they are set.
const (
	SysctlAcct      = "net/netfilter/nf_conntrack_acct"
	SysctlTimestamp = "net/netfilter/nf_conntrack_timestamp"
	SysctlCount     = "net/netfilter/nf_conntrack_count"
)

// DefaultStateDir holds the values to restore after a SIGKILL.
const DefaultStateDir = "/run/flowtop"

// openSysctls opens /proc/sys files as seen from the namespace ns (nil for
// our own). A /proc/sys/net file stays bound to the namespace it was
// opened in, so the files can be read and written later from any thread.
func openSysctls(ns *os.File, flag int, keys ...string) ([]*os.File, error) {
	paths := make([]string, len(keys))
	for i, k := range keys {
		paths[i] = "/proc/sys/" + k
	}
	return openInNetns(ns, flag, paths...)
}

// openInNetns opens files of /proc as seen from the namespace ns (nil for
// our own): /proc/sys/net and /proc/thread-self/net files stay bound to
// the namespace they were opened in.
func openInNetns(ns *os.File, flag int, paths ...string) ([]*os.File, error) {
	open := func() ([]*os.File, error) {
		files := make([]*os.File, 0, len(paths))
		for _, k := range paths {
			f, err := os.OpenFile(k, flag, 0)
			if err != nil {
				for _, f := range files {
					f.Close()
				}
				return nil, err
			}
			files = append(files, f)
		}
		return files, nil
	}
	if ns == nil {
		return open()
	}
	type result struct {
		files []*os.File
		err   error
	}
	done := make(chan result, 1)
	go func() {
		// The thread is never unlocked: Go ends it with this goroutine, so
		// a thread switched into another namespace never runs other code.
		runtime.LockOSThread()
		if err := unix.Setns(int(ns.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{err: fmt.Errorf("enter network namespace: %w", err)}
			return
		}
		files, err := open()
		done <- result{files, err}
	}()
	r := <-done
	return r.files, r.err
}

func readSysctl(f *os.File) (string, error) {
	var b [64]byte
	n, err := f.ReadAt(b[:], 0)
	if err != nil && err != io.EOF {
		return "", err
	}
	return strings.TrimSpace(string(b[:n])), nil
}

func writeSysctl(f *os.File, v string) error {
	_, err := f.WriteAt([]byte(v+"\n"), 0)
	return err
}

// SysctlGuard turns on accounting and timestamps in one namespace and puts
// the previous values back on Restore. The previous values are kept in a
// state file, so that a flowtop killed with SIGKILL is repaired by its
// watchdog or the next start; the file also lists every flowtop using the
// namespace, so that when two run at once (a daemon and a screen, say)
// the values are put back only when the last one leaves.
type SysctlGuard struct {
	files      map[string]*os.File
	prev       map[string]string
	stateDir   string
	stateName  string // the namespace's file in stateDir
	me         owner
	once       sync.Once
	restoreErr error
	// Warning is set when the sysctls could not be written (read-only
	// /proc/sys, no privilege): flowtop carries on without them.
	Warning string
	// Notes are problems EnableAccounting found and repaired (a damaged
	// state file), one line each, for the log.
	Notes []string
}

// EnableAccounting sets nf_conntrack_acct and nf_conntrack_timestamp to 1
// in the namespace ns (nil for our own), after first restoring values a
// killed flowtop left behind. stateDir "" means DefaultStateDir; a state
// directory that others than root can write is refused.
func EnableAccounting(ns *os.File, stateDir string) (*SysctlGuard, error) {
	g := &SysctlGuard{prev: map[string]string{}}
	keys := guardedSysctls
	files, err := openSysctls(ns, os.O_RDWR, keys...)
	if err != nil {
		g.Warning = fmt.Sprintf("cannot set %s and %s (%v): flows show no byte counters or age", keys[0], keys[1], err)
		return g, nil
	}
	g.files = map[string]*os.File{}
	for i, k := range keys {
		g.files[k] = files[i]
	}
	if err := g.setState(ns, stateDir); err != nil {
		g.closeFiles()
		return nil, err
	}
	dir, err := openStateDir(g.stateDir, true)
	if err != nil {
		g.closeFiles()
		return nil, err
	}
	defer dir.close()
	if err := dir.locked(func() error { return g.enter(dir) }); err != nil {
		g.closeFiles()
		return nil, err
	}
	return g, nil
}

// setState names the namespace's state file.
func (g *SysctlGuard) setState(ns *os.File, stateDir string) error {
	if stateDir == "" {
		stateDir = DefaultStateDir
	}
	id, err := nsID(ns)
	if err != nil {
		return err
	}
	g.stateDir, g.stateName = stateDir, "sysctl-"+id+".json"
	return nil
}

func (g *SysctlGuard) statePath() string { return filepath.Join(g.stateDir, g.stateName) }

// enter records this process as a user of the namespace's sysctls and
// switches them on. The caller holds the lock.
func (g *SysctlGuard) enter(dir *stateDir) error {
	g.me, _ = runningProcess(os.Getpid())
	st, _ := g.loadState(dir)
	if st != nil {
		if live := liveOwners(st.Users); len(live) > 0 {
			// Another flowtop set the sysctls: share its record.
			g.prev = st.Values
			st.Users = append(live, g.me)
			if err := g.saveState(dir, st); err != nil {
				return err
			}
			g.switchOn()
			return nil
		}
		if err := g.writeValues(st.Values, "left by a flowtop that did not exit cleanly"); err != nil {
			return err
		}
	}
	for _, k := range guardedSysctls {
		v, err := readSysctl(g.files[k])
		if err != nil {
			return fmt.Errorf("read %s: %w", k, err)
		}
		g.prev[k] = v
	}
	if err := g.saveState(dir, &guardState{Users: []owner{g.me}, Values: g.prev}); err != nil {
		return err
	}
	g.switchOn()
	return nil
}

// switchOn sets every guarded sysctl that is not 1 to 1.
func (g *SysctlGuard) switchOn() {
	for _, k := range guardedSysctls {
		if v, err := readSysctl(g.files[k]); err == nil && v == "1" {
			continue
		}
		if err := writeSysctl(g.files[k], "1"); err != nil {
			g.Warning = fmt.Sprintf("cannot set %s (%v): flows show no byte counters or age", k, err)
		}
	}
}

// RestoreLeftover restores the values recorded in the namespace's state
// file if no flowtop but pid (which has ended, maybe not yet reaped) still
// uses them: pid ended without restoring them (a panic, SIGKILL). The
// sysctl watchdog calls it when its parent is gone.
func RestoreLeftover(ns *os.File, stateDir string, pid int) error {
	return leaveFor(ns, stateDir, pid, false)
}

// KeepLeftover is RestoreLeftover for a flowtop run with
// --keep-accounting: the sysctls stay as they are, and the values to put
// back become the current ones for the flowtops still running.
func KeepLeftover(ns *os.File, stateDir string, pid int) error {
	return leaveFor(ns, stateDir, pid, true)
}

func leaveFor(ns *os.File, stateDir string, pid int, keep bool) error {
	files, err := openSysctls(ns, os.O_RDWR, guardedSysctls...)
	if err != nil {
		return fmt.Errorf("open conntrack sysctls: %w", err)
	}
	g := &SysctlGuard{files: map[string]*os.File{SysctlAcct: files[0], SysctlTimestamp: files[1]}}
	defer g.closeFiles()
	if err := g.setState(ns, stateDir); err != nil {
		return err
	}
	notPID := func(users []owner) []owner {
		return slices.DeleteFunc(users, func(o owner) bool { return o.PID == pid })
	}
	return g.leaveState(notPID, nil, keep)
}

// leaveState opens the state directory and leaves under its lock. A
// directory that can no longer be trusted is not read: fallback is
// written back and the refusal returned.
func (g *SysctlGuard) leaveState(remaining func([]owner) []owner, fallback map[string]string, keep bool) error {
	dir, err := openStateDir(g.stateDir, false)
	if err != nil {
		if fallback != nil && !keep {
			g.writeValues(fallback, "")
		}
		return err
	}
	if dir == nil {
		return g.leave(nil, remaining, fallback, keep)
	}
	defer dir.close()
	return dir.locked(func() error { return g.leave(dir, remaining, fallback, keep) })
}

// leave takes this flowtop (the users remaining leaves) out of the state
// file's users; the last one out writes the recorded values back (or
// fallback, when the file is gone) and removes the file. keep
// (--keep-accounting) makes the current values the ones to put back. The
// caller holds the lock; dir is nil when there is no state directory.
func (g *SysctlGuard) leave(dir *stateDir, remaining func([]owner) []owner, fallback map[string]string, keep bool) error {
	if keep {
		fallback = g.current()
	}
	var st *guardState
	if dir != nil {
		var replaced []string
		st, replaced = g.loadState(dir)
		// A file damaged while we ran: what we found at start is better
		// than the kernel defaults.
		for _, k := range replaced {
			if v, ok := fallback[k]; ok {
				st.Values[k] = v
			}
		}
	}
	if st == nil {
		if fallback == nil {
			return nil
		}
		return g.writeValues(fallback, "")
	}
	if keep {
		st.Values = fallback
	}
	if live := liveOwners(remaining(st.Users)); len(live) > 0 {
		st.Users = live
		return g.saveState(dir, st)
	}
	if err := g.writeValues(st.Values, ""); err != nil {
		return err
	}
	return dir.remove(g.stateName)
}

// current returns the guarded sysctls' values now (those readable).
func (g *SysctlGuard) current() map[string]string {
	values := map[string]string{}
	for _, k := range guardedSysctls {
		if v, err := readSysctl(g.files[k]); err == nil && validSysctlValue(v) {
			values[k] = v
		}
	}
	return values
}

func (g *SysctlGuard) writeValues(values map[string]string, why string) error {
	for _, k := range guardedSysctls {
		v, ok := values[k]
		f, open := g.files[k]
		if !ok || !open || !validSysctlValue(v) {
			continue
		}
		if err := writeSysctl(f, v); err != nil {
			if why != "" {
				return fmt.Errorf("restore %s=%s %s: %w", k, v, why, err)
			}
			return fmt.Errorf("restore %s=%s: %w", k, v, err)
		}
	}
	return nil
}

// nsID names a namespace by device and inode, which stay the same for the
// namespace's life whatever path reaches it.
func nsID(ns *os.File) (string, error) {
	path := "/proc/self/ns/net"
	if ns != nil {
		path = ns.Name()
	}
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return "", fmt.Errorf("identify network namespace %s: %w", path, err)
	}
	return fmt.Sprintf("%d-%d", st.Dev, st.Ino), nil
}

// loadState reads the state file; nil when there is none. A file that
// cannot be trusted (not JSON, a value other than 0 or 1, a symbolic link)
// is reported in Notes with the values to put back it stands for: those it
// recorded that are valid, the kernel defaults (replaced) for the others.
// A file that is not JSON at all is removed.
func (g *SysctlGuard) loadState(dir *stateDir) (st *guardState, replaced []string) {
	b, err := dir.read(g.stateName)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	var damage string
	if err == nil {
		st, replaced, damage, err = decodeGuardState(b)
	}
	if err != nil {
		dir.remove(g.stateName)
		st, replaced, damage = &guardState{Values: defaultValues()}, guardedSysctls, err.Error()
	}
	if damage != "" {
		g.Notes = append(g.Notes, fmt.Sprintf("sysctl state file %s is damaged (%s): the values to restore are now %s",
			g.statePath(), damage, describeValues(st.Values, replaced)))
	}
	return st, replaced
}

func (g *SysctlGuard) saveState(dir *stateDir, st *guardState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("write sysctl state %s: %w", g.statePath(), err)
	}
	return dir.write(g.stateName, b)
}

// Enabled reports whether accounting and timestamps are on now.
func (g *SysctlGuard) Enabled() (acct, timestamps bool) {
	if g == nil || g.files == nil {
		return false, false
	}
	a, _ := readSysctl(g.files[SysctlAcct])
	t, _ := readSysctl(g.files[SysctlTimestamp])
	return a == "1", t == "1"
}

// Restore puts the previous values back and removes the state file. It is
// safe to call more than once and from any goroutine; only the first call
// of Restore or Keep acts.
func (g *SysctlGuard) Restore() error { return g.end(false) }

// Keep leaves accounting and timestamps as they are now (on) for good
// (--keep-accounting): this flowtop leaves the state file, whose values
// to put back become the current ones, so that a flowtop still sharing
// the namespace leaves them on too. Like Restore, only the first call of
// either acts.
func (g *SysctlGuard) Keep() error { return g.end(true) }

func (g *SysctlGuard) end(keep bool) error {
	if g == nil {
		return nil
	}
	g.once.Do(func() {
		if g.files == nil {
			return
		}
		notMe := func(users []owner) []owner {
			if i := slices.Index(users, g.me); i >= 0 {
				return slices.Delete(users, i, i+1)
			}
			return users
		}
		g.restoreErr = g.leaveState(notMe, g.prev, keep)
		g.closeFiles()
	})
	return g.restoreErr
}

func (g *SysctlGuard) closeFiles() {
	for _, f := range g.files {
		f.Close()
	}
}

// KernelCount reads nf_conntrack_count of a namespace through a file kept
// open, so each read is one pread.
type KernelCount struct{ f *os.File }

// OpenCount opens nf_conntrack_count in namespace ns (nil for our own).
func OpenCount(ns *os.File) (*KernelCount, error) {
	files, err := openSysctls(ns, os.O_RDONLY, SysctlCount)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", SysctlCount, err)
	}
	return &KernelCount{files[0]}, nil
}

// Read returns the number of flows the kernel tracks, -1 on error.
func (c *KernelCount) Read() int {
	if c == nil {
		return -1
	}
	s, err := readSysctl(c.f)
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return -1
	}
	return n
}

// Close closes the file.
func (c *KernelCount) Close() error {
	if c == nil {
		return nil
	}
	return c.f.Close()
}
