package procs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// inodeIndex maps socket inodes to the PID holding them, from the links
// in /proc/*/fd. It is built lazily and rebuilt only when asked for an
// inode it does not know, at most once per minEvery, so a burst of new
// flows costs one scan, not one per flow. Socket inodes are unique across
// network namespaces, so one index serves any --netns.
type inodeIndex struct {
	root     string
	minEvery time.Duration
	now      func() time.Time
	userName func(uid string) string

	mu         sync.Mutex // held during a scan: concurrent misses wait for it
	pids       map[uint64]int
	infos      map[int]Info // per-PID details, valid until the next scan
	started    uint64       // scans started; see pid
	lastStart  time.Time
	lastTook   time.Duration
	scanErrors uint64
}

func newInodeIndex(root string, minEvery time.Duration) *inodeIndex {
	return &inodeIndex{
		root:     root,
		minEvery: minEvery,
		now:      time.Now,
		userName: lookupUserName,
		infos:    map[int]Info{},
	}
}

// indexResult is the outcome of an inode lookup.
type indexResult int

const (
	indexFound indexResult = iota
	// indexGone: a scan that started after the caller learnt the inode did
	// not find it, so no process we can see holds it.
	indexGone
	// indexLater: the inode is unknown and a scan is not allowed yet;
	// ask again after the returned time.
	indexLater
	// indexForwarded: neither end of the flow is local; no socket was
	// looked for.
	indexForwarded
)

// generation returns the number of scans started so far. A caller reads
// it right after sock_diag reported the inode and passes it to pid.
func (x *inodeIndex) generation() uint64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.started
}

// pid finds the process holding inode. gen is generation() as read when
// the inode was learnt: a scan started after it is proof of absence.
func (x *inodeIndex) pid(inode uint64, gen uint64) (int, indexResult, time.Time) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if p, ok := x.pids[inode]; ok {
		return p, indexFound, time.Time{}
	}
	if x.started > gen {
		return 0, indexGone, time.Time{}
	}
	now := x.now()
	if x.started > 0 && now.Sub(x.lastStart) < x.minEvery {
		return 0, indexLater, x.lastStart.Add(x.minEvery)
	}
	x.scanLocked(now)
	if p, ok := x.pids[inode]; ok {
		return p, indexFound, time.Time{}
	}
	return 0, indexGone, time.Time{}
}

// scanLocked rebuilds the index. Processes that exit or hide their fds
// (no permission) during the walk are skipped: they own nothing we can
// name.
func (x *inodeIndex) scanLocked(now time.Time) {
	x.started++
	x.lastStart = now
	pids := make(map[uint64]int, len(x.pids))
	dir, err := os.Open(x.root)
	if err != nil {
		x.scanErrors++
		x.pids = pids
		return
	}
	names, err := dir.Readdirnames(-1)
	dir.Close()
	if err != nil {
		x.scanErrors++
	}
	var path []byte
	var buf [64]byte // "socket:[N]" fits; longer targets are not sockets
	for _, name := range names {
		pid, err := strconv.Atoi(name)
		if err != nil || pid <= 0 {
			continue
		}
		fdDir := filepath.Join(x.root, name, "fd")
		d, err := os.Open(fdDir)
		if err != nil {
			continue
		}
		fds, _ := d.Readdirnames(-1)
		d.Close()
		for _, fd := range fds {
			path = append(append(append(path[:0], fdDir...), '/'), fd...)
			n, err := unix.Readlink(string(path), buf[:])
			if err != nil || n >= len(buf) {
				continue
			}
			inode, ok := socketInode(buf[:n])
			if !ok {
				continue
			}
			// A socket shared after fork (a pre-fork server's listener)
			// is reported with its lowest PID, usually the parent.
			if old, dup := pids[inode]; !dup || pid < old {
				pids[inode] = pid
			}
		}
	}
	x.pids = pids
	clear(x.infos)
	x.lastTook = x.now().Sub(now)
}

// socketInode parses a /proc/PID/fd link target of the form
// "socket:[12345]".
func socketInode(target []byte) (uint64, bool) {
	s, ok := bytes.CutPrefix(target, []byte("socket:["))
	if !ok {
		return 0, false
	}
	s, ok = bytes.CutSuffix(s, []byte("]"))
	if !ok || len(s) == 0 || len(s) > 20 {
		return 0, false
	}
	var n uint64
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// info returns the details of pid, read once per scan generation.
func (x *inodeIndex) info(pid int) (Info, error) {
	x.mu.Lock()
	in, ok := x.infos[pid]
	x.mu.Unlock()
	if ok {
		return in, nil
	}
	in, err := readInfo(x.root, pid, x.userName)
	if err != nil {
		return Info{}, err
	}
	x.mu.Lock()
	x.infos[pid] = in
	x.mu.Unlock()
	return in, nil
}

// size returns the number of sockets indexed.
func (x *inodeIndex) size() int {
	x.mu.Lock()
	defer x.mu.Unlock()
	return len(x.pids)
}

// readInfo reads a process's name, user and command line from
// root/PID/{comm,status,cmdline}. A process that has gone is an error.
func readInfo(root string, pid int, userName func(uid string) string) (Info, error) {
	dir := filepath.Join(root, strconv.Itoa(pid))
	comm, err := os.ReadFile(filepath.Join(dir, "comm"))
	if err != nil {
		return Info{}, fmt.Errorf("process %d: %w", pid, err)
	}
	in := Info{PID: pid, Name: strings.TrimSuffix(string(comm), "\n")}
	if status, err := os.ReadFile(filepath.Join(dir, "status")); err == nil {
		if uid, ok := parseStatusUID(status); ok {
			in.User = userName(uid)
		}
	}
	if cmd, err := os.ReadFile(filepath.Join(dir, "cmdline")); err == nil {
		in.Cmdline = parseCmdline(cmd)
	}
	return in, nil
}

// parseStatusUID returns the real uid from a /proc/PID/status text
// ("Uid:\treal\teffective\tsaved\tfs").
func parseStatusUID(status []byte) (string, bool) {
	for line := range bytes.SplitSeq(status, []byte("\n")) {
		rest, ok := bytes.CutPrefix(line, []byte("Uid:"))
		if !ok {
			continue
		}
		f := strings.Fields(string(rest))
		if len(f) == 0 {
			return "", false
		}
		return f[0], true
	}
	return "", false
}

// parseCmdline turns /proc/PID/cmdline's NUL-separated arguments into one
// line. Kernel threads have an empty command line.
func parseCmdline(b []byte) string {
	b = bytes.TrimRight(b, "\x00")
	return string(bytes.ReplaceAll(b, []byte{0}, []byte{' '}))
}

// userNames caches uid -> name lookups: os/user may read /etc/passwd or
// ask NSS, which is too slow to repeat for every flow.
var userNames sync.Map

// lookupUserName returns the name of uid, or uid itself when it has none.
func lookupUserName(uid string) string {
	if v, ok := userNames.Load(uid); ok {
		return v.(string)
	}
	name := uid
	u, err := user.LookupId(uid)
	var unknown user.UnknownUserIdError
	switch {
	case err == nil && u.Username != "":
		name = u.Username
	case err != nil && !errors.As(err, &unknown):
		// A transient failure (NSS down): answer with the uid but do
		// not remember it.
		return uid
	}
	userNames.Store(uid, name)
	return name
}
