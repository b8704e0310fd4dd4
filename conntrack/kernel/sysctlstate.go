package kernel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// The sysctl guard's state: a directory only root can write, one JSON file
// per namespace naming the flowtops that use it and the values to put back.
// flowtop runs as root, so every file is reached through the directory's
// descriptor without following symbolic links: a link planted in a
// directory someone else could write would let them overwrite any file.

// stateDir is a state directory opened and checked once; its files are
// reached through its descriptor (openat), so a path swapped after the
// check changes nothing.
type stateDir struct {
	path string
	fd   int
}

// openStateDir opens and checks the state directory. create makes it when
// missing; without create a missing directory is (nil, nil): a flowtop or
// watchdog that leaves finds nothing to do, and must not bring back a
// directory someone removed.
func openStateDir(path string, create bool) (*stateDir, error) {
	if create {
		if err := os.MkdirAll(path, 0o755); err != nil {
			return nil, fmt.Errorf("sysctl state directory %s: %w", path, err)
		}
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if !create && errors.Is(err, unix.ENOENT) {
			return nil, nil
		}
		return nil, fmt.Errorf("sysctl state directory %s: %w", path, err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("sysctl state directory %s: %w", path, err)
	}
	if err := checkStateDir(path, st.Uid, st.Mode, os.Geteuid()); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return &stateDir{path: path, fd: fd}, nil
}

// checkStateDir refuses a directory that a user other than root (or the
// one flowtop runs as) could write: that user could plant or replace the
// state, and so choose what flowtop writes to the sysctls.
func checkStateDir(path string, uid, mode uint32, euid int) error {
	if uid != 0 && int(uid) != euid {
		return fmt.Errorf("sysctl state directory %s is owned by uid %d, not root: refusing it (use a directory only root can write, see --state-dir)", path, uid)
	}
	if mode&0o022 != 0 {
		return fmt.Errorf("sysctl state directory %s is writable by group or others (mode %04o): refusing it (chmod go-w it, or see --state-dir)", path, mode&0o7777)
	}
	return nil
}

func (d *stateDir) close() { unix.Close(d.fd) }

// locked runs fn holding an exclusive lock on the directory, so that
// flowtops starting and stopping at once do not lose each other's
// records. The lock is on the directory itself: it leaves no file behind.
func (d *stateDir) locked(fn func() error) error {
	if err := unix.Flock(d.fd, unix.LOCK_EX); err != nil {
		return fmt.Errorf("lock sysctl state directory %s: %w", d.path, err)
	}
	defer unix.Flock(d.fd, unix.LOCK_UN)
	return fn()
}

// maxStateSize bounds what is read of a state file (a real one is some
// 150 bytes).
const maxStateSize = 64 << 10

// errNotRegular is a state file that is a symbolic link, a directory or
// another special file.
var errNotRegular = errors.New("not a regular file")

// read returns the content of the regular file name, never following a
// symbolic link (errNotRegular then) nor blocking on a FIFO.
func (d *stateDir) read(name string) ([]byte, error) {
	fd, err := unix.Openat(d.fd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) {
		return nil, fmt.Errorf("a symbolic link: %w", errNotRegular)
	}
	if err != nil {
		return nil, err
	}
	f := os.NewFile(uintptr(fd), filepath.Join(d.path, name))
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, errNotRegular
	}
	b, err := io.ReadAll(io.LimitReader(f, maxStateSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxStateSize {
		return nil, fmt.Errorf("larger than %d KiB", maxStateSize>>10)
	}
	return b, nil
}

// write replaces name with b atomically: a new file created exclusively
// (never through a link someone planted), then renamed over name (which
// replaces a link at name rather than following it).
func (d *stateDir) write(name string, b []byte) error {
	fail := func(err error) error {
		return fmt.Errorf("write sysctl state %s: %w", filepath.Join(d.path, name), err)
	}
	var tmp string
	var fd int
	for tries := 0; ; tries++ {
		tmp = fmt.Sprintf("%s.tmp-%016x", name, rand.Uint64())
		var err error
		fd, err = unix.Openat(d.fd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EEXIST) || tries == 10 {
			return fail(err)
		}
	}
	f := os.NewFile(uintptr(fd), filepath.Join(d.path, tmp))
	_, err := f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(d.fd, tmp, d.fd, name)
	}
	if err != nil {
		unix.Unlinkat(d.fd, tmp, 0)
		return fail(err)
	}
	return nil
}

// remove removes name (a link itself, not what it points to).
func (d *stateDir) remove(name string) error {
	if err := unix.Unlinkat(d.fd, name, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove sysctl state %s: %w", filepath.Join(d.path, name), err)
	}
	return nil
}

// owner names one flowtop process. A PID alone is not enough: after a
// flowtop and its watchdog are both killed, the PID may be given to an
// unrelated process, and a file naming it would make every later flowtop
// believe another one still runs. The start time tells them apart.
type owner struct {
	PID int `json:"pid"`
	// Start is when the process started, in clock ticks after boot
	// (field 22 of /proc/PID/stat).
	Start uint64 `json:"start"`
}

// procDir is where processes are looked up.
const procDir = "/proc"

// runningProcess returns the owner record of pid, false when it is gone or
// a zombie.
func runningProcess(pid int) (owner, bool) {
	if pid <= 0 {
		return owner{}, false
	}
	b, err := os.ReadFile(filepath.Join(procDir, strconv.Itoa(pid), "stat"))
	if err != nil {
		return owner{}, false
	}
	state, start, err := parseProcStat(b)
	if err != nil || state == 'Z' || state == 'X' || state == 'x' {
		return owner{}, false
	}
	return owner{PID: pid, Start: start}, true
}

// parseProcStat returns the state (field 3) and start time (field 22) of
// a /proc/PID/stat line. The command name (field 2) is in parentheses and
// may itself hold spaces and parentheses: fields are counted after the
// last ')'.
func parseProcStat(b []byte) (state byte, start uint64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, errors.New("no command name in /proc stat line")
	}
	fields := strings.Fields(string(b[i+1:]))
	const stateField, startField = 3, 22 // 1-based, as in proc(5)
	if len(fields) <= startField-stateField || len(fields[0]) != 1 {
		return 0, 0, errors.New("short /proc stat line")
	}
	start, err = strconv.ParseUint(fields[startField-stateField], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("/proc stat start time: %w", err)
	}
	return fields[0][0], start, nil
}

// alive reports whether o still runs: the same PID with the same start.
func (o owner) alive() bool {
	cur, ok := runningProcess(o.PID)
	return ok && o.Start != 0 && cur.Start == o.Start
}

// liveOwners returns the owners that still run, each once.
func liveOwners(owners []owner) []owner {
	var live []owner
	for _, o := range owners {
		if !slices.Contains(live, o) && o.alive() {
			live = append(live, o)
		}
	}
	return live
}

// guardState is the state file's content.
type guardState struct {
	// Users are the flowtop processes using the namespace.
	Users []owner `json:"users"`
	// Values are the values to put back when the last user leaves.
	Values map[string]string `json:"values"`
}

// guardedSysctls are the sysctls the guard sets, in the order they are
// named in messages.
var guardedSysctls = []string{SysctlAcct, SysctlTimestamp}

// defaultSysctlValue is the kernel's default of both guarded sysctls: what
// is put back when the recorded value cannot be trusted.
const defaultSysctlValue = "0"

// validSysctlValue reports whether v is a value the guard may write back:
// both sysctls are booleans.
func validSysctlValue(v string) bool { return v == "0" || v == "1" }

// decodeGuardState reads a state file's content. A value that is missing or
// not 0 or 1 is replaced by the kernel default: replaced lists those keys
// and damage says what was wrong ("" when nothing was). An error means
// nothing in it can be trusted.
func decodeGuardState(b []byte) (st *guardState, replaced []string, damage string, err error) {
	var raw struct {
		Users  []owner                    `json:"users"`
		Values map[string]json.RawMessage `json:"values"`
	}
	if err := json.Unmarshal(b, &raw); err != nil {
		return nil, nil, "", err
	}
	if raw.Values == nil {
		return nil, nil, "", errors.New(`no "values"`)
	}
	st = &guardState{Users: raw.Users, Values: map[string]string{}}
	var bad []string
	for _, k := range guardedSysctls {
		v, ok := sysctlValue(raw.Values[k])
		if !ok {
			v = defaultSysctlValue
			replaced = append(replaced, k)
			if raw.Values[k] == nil {
				bad = append(bad, "no value for "+path.Base(k))
			} else {
				bad = append(bad, fmt.Sprintf("%s=%.20s is not 0 or 1", path.Base(k), recordedText(raw.Values[k])))
			}
		}
		st.Values[k] = v
	}
	return st, replaced, strings.Join(bad, ", "), nil
}

// sysctlValue reads a recorded value, written as a string ("0") or, by
// hand, as a number (0).
func sysctlValue(raw json.RawMessage) (string, bool) {
	var s string
	if json.Unmarshal(raw, &s) != nil {
		var n json.Number
		if json.Unmarshal(raw, &n) != nil {
			return "", false
		}
		s = n.String()
	}
	return s, validSysctlValue(s)
}

// recordedText is a recorded value as written, without the quotes of a
// JSON string (control characters stay escaped: the message is one line).
func recordedText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		q := strconv.Quote(s)
		return q[1 : len(q)-1]
	}
	return string(raw)
}

// defaultValues are the values to put back when a state file cannot be
// read at all.
func defaultValues() map[string]string {
	v := map[string]string{}
	for _, k := range guardedSysctls {
		v[k] = defaultSysctlValue
	}
	return v
}

// describeValues names the values to put back and where each comes from
// (the kernel default for the keys replaced), for the one line that
// reports a damaged state file.
func describeValues(values map[string]string, replaced []string) string {
	parts := make([]string, 0, len(guardedSysctls))
	for _, k := range guardedSysctls {
		from := "as recorded"
		if slices.Contains(replaced, k) {
			from = "kernel default"
		}
		parts = append(parts, fmt.Sprintf("%s=%s (%s)", path.Base(k), values[k], from))
	}
	return strings.Join(parts, ", ")
}
