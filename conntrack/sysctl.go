package conntrack

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
	"syscall"

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
	statePath  string
	once       sync.Once
	restoreErr error
	// Warning is set when the sysctls could not be written (read-only
	// /proc/sys, no privilege): flowtop carries on without them.
	Warning string
}

// guardState is the state file's content.
type guardState struct {
	// PID is the first user; older state files name only it.
	PID int `json:"pid,omitempty"`
	// PIDs are the flowtop processes using the namespace.
	PIDs   []int             `json:"pids,omitempty"`
	Values map[string]string `json:"values"`
}

func (st *guardState) users() []int {
	if st.PID != 0 && !slices.Contains(st.PIDs, st.PID) {
		return append([]int{st.PID}, st.PIDs...)
	}
	return st.PIDs
}

// setUsers records the users, the first of them also as PID.
func (st *guardState) setUsers(pids []int) {
	st.PIDs = pids
	st.PID = 0
	if len(pids) > 0 {
		st.PID = pids[0]
	}
}

// EnableAccounting sets nf_conntrack_acct and nf_conntrack_timestamp to 1
// in the namespace ns (nil for our own), after first restoring values a
// killed flowtop left behind. stateDir "" means DefaultStateDir.
func EnableAccounting(ns *os.File, stateDir string) (*SysctlGuard, error) {
	if stateDir == "" {
		stateDir = DefaultStateDir
	}
	g := &SysctlGuard{prev: map[string]string{}}
	keys := []string{SysctlAcct, SysctlTimestamp}
	files, err := openSysctls(ns, os.O_RDWR, keys...)
	if err != nil {
		g.Warning = fmt.Sprintf("cannot set %s and %s (%v): flows show no byte counters or age", keys[0], keys[1], err)
		return g, nil
	}
	g.files = map[string]*os.File{}
	for i, k := range keys {
		g.files[k] = files[i]
	}
	id, err := nsID(ns)
	if err != nil {
		g.closeFiles()
		return nil, err
	}
	g.statePath = filepath.Join(stateDir, "sysctl-"+id+".json")
	err = g.withLock(true, func() error {
		if st := g.loadState(); st != nil {
			if live := alive(st.users(), 0); len(live) > 0 {
				// Another flowtop set the sysctls: share its record.
				g.prev = st.Values
				st.setUsers(append(live, os.Getpid()))
				return g.saveState(st)
			}
			if err := g.writeValues(st.Values, "left by a flowtop that did not exit cleanly"); err != nil {
				return err
			}
		}
		for _, k := range keys {
			v, err := readSysctl(g.files[k])
			if err != nil {
				return fmt.Errorf("read %s: %w", k, err)
			}
			g.prev[k] = v
		}
		st := &guardState{Values: g.prev}
		st.setUsers([]int{os.Getpid()})
		if err := g.saveState(st); err != nil {
			return err
		}
		for _, k := range keys {
			if g.prev[k] == "1" {
				continue
			}
			if err := writeSysctl(g.files[k], "1"); err != nil {
				g.Warning = fmt.Sprintf("cannot set %s (%v): flows show no byte counters or age", k, err)
			}
		}
		return nil
	})
	if err != nil {
		g.closeFiles()
		return nil, err
	}
	return g, nil
}

// RestoreLeftover restores the values recorded in the namespace's state
// file if no flowtop but pid (which has ended, maybe not yet reaped) still
// uses them: pid ended without restoring them (a panic, SIGKILL). The
// sysctl watchdog calls it when its parent is gone.
func RestoreLeftover(ns *os.File, stateDir string, pid int) error {
	if stateDir == "" {
		stateDir = DefaultStateDir
	}
	files, err := openSysctls(ns, os.O_RDWR, SysctlAcct, SysctlTimestamp)
	if err != nil {
		return fmt.Errorf("open conntrack sysctls: %w", err)
	}
	g := &SysctlGuard{files: map[string]*os.File{SysctlAcct: files[0], SysctlTimestamp: files[1]}}
	defer g.closeFiles()
	id, err := nsID(ns)
	if err != nil {
		return err
	}
	g.statePath = filepath.Join(stateDir, "sysctl-"+id+".json")
	return g.withLock(false, func() error { return g.leave(pid, nil) })
}

// leave takes pid out of the state file's users; the last one out writes
// the recorded values back (or fallback, when the file is gone) and
// removes the file. The caller holds the lock.
func (g *SysctlGuard) leave(pid int, fallback map[string]string) error {
	st := g.loadState()
	if st == nil {
		if fallback == nil {
			return nil
		}
		return g.writeValues(fallback, "")
	}
	if live := alive(st.users(), pid); len(live) > 0 {
		st.setUsers(live)
		return g.saveState(st)
	}
	if err := g.writeValues(st.Values, ""); err != nil {
		return err
	}
	if err := os.Remove(g.statePath); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove sysctl state: %w", err)
	}
	return nil
}

func (g *SysctlGuard) writeValues(values map[string]string, why string) error {
	for k, v := range values {
		f, ok := g.files[k]
		if !ok || !validSysctlValue(v) {
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

// withLock runs fn holding an exclusive lock on the namespace's state, so
// that flowtops starting and stopping at once do not lose each other's
// records.
//
// Only a start (create) makes the directory: a flowtop or watchdog that
// leaves finds nothing to do without one, and must not bring back a
// directory someone removed.
func (g *SysctlGuard) withLock(create bool, fn func() error) error {
	dir := filepath.Dir(g.statePath)
	if create {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return fmt.Errorf("sysctl state dir: %w", err)
		}
	} else if _, err := os.Stat(dir); errors.Is(err, os.ErrNotExist) {
		return fn()
	}
	// The lock is on the directory itself, so it leaves no file behind.
	lock, err := os.Open(filepath.Dir(g.statePath))
	if err != nil {
		return fmt.Errorf("sysctl state lock: %w", err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		return fmt.Errorf("sysctl state lock: %w", err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)
	return fn()
}

// loadState reads the state file; nil when there is none or it is torn
// (a torn file is useless: it is dropped rather than refusing to start).
func (g *SysctlGuard) loadState() *guardState {
	b, err := os.ReadFile(g.statePath)
	if err != nil {
		return nil
	}
	var st guardState
	if err := json.Unmarshal(b, &st); err != nil || st.Values == nil {
		os.Remove(g.statePath)
		return nil
	}
	return &st
}

// alive returns the pids of processes that still run, leaving out gone.
func alive(pids []int, gone int) []int {
	var live []int
	for _, p := range pids {
		if p != gone && !slices.Contains(live, p) && processAlive(p) {
			live = append(live, p)
		}
	}
	return live
}

func validSysctlValue(v string) bool {
	_, err := strconv.Atoi(v)
	return err == nil
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

func (g *SysctlGuard) saveState(st *guardState) error {
	b, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("write sysctl state: %w", err)
	}
	tmp := g.statePath + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write sysctl state: %w", err)
	}
	if err := os.Rename(tmp, g.statePath); err != nil {
		return fmt.Errorf("write sysctl state: %w", err)
	}
	return nil
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
// acts.
func (g *SysctlGuard) Restore() error {
	if g == nil {
		return nil
	}
	g.once.Do(func() {
		if g.files == nil {
			return
		}
		g.restoreErr = g.withLock(false, func() error { return g.leave(os.Getpid(), g.prev) })
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
