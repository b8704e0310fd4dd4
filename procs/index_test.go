package procs

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fakeProc is a /proc fixture in a temporary directory.
type fakeProc struct {
	t    *testing.T
	root string
}

func newFakeProc(t *testing.T) *fakeProc {
	t.Helper()
	p := &fakeProc{t: t, root: t.TempDir()}
	// Entries that are not processes must be skipped.
	p.write("self", "")
	p.write("net/tcp", "")
	return p
}

func (p *fakeProc) write(rel, content string) {
	p.t.Helper()
	path := filepath.Join(p.root, rel)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		p.t.Fatal(err)
	}
}

// process adds a process with the given uid and command line.
func (p *fakeProc) process(pid int, comm, uid string, argv ...string) {
	p.t.Helper()
	dir := strconv.Itoa(pid)
	p.write(dir+"/comm", comm+"\n")
	p.write(dir+"/status", "Name:\t"+comm+"\nUmask:\t0022\nState:\tS (sleeping)\nUid:\t"+uid+"\t"+uid+"\t"+uid+"\t"+uid+"\nGid:\t0\t0\t0\t0\n")
	var cmd []byte
	for _, a := range argv {
		cmd = append(append(cmd, a...), 0)
	}
	p.write(dir+"/cmdline", string(cmd))
	if err := os.MkdirAll(filepath.Join(p.root, dir, "fd"), 0o755); err != nil {
		p.t.Fatal(err)
	}
}

// fd adds a link /proc/PID/fd/N -> target, e.g. "socket:[123]".
func (p *fakeProc) fd(pid, fd int, target string) {
	p.t.Helper()
	if err := os.Symlink(target, filepath.Join(p.root, strconv.Itoa(pid), "fd", strconv.Itoa(fd))); err != nil {
		p.t.Fatal(err)
	}
}

func testUserName(uid string) string {
	if uid == "1000" {
		return "alice"
	}
	return uid
}

// fakeClock is a settable time source.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time                { return c.t }
func (c *fakeClock) add(d time.Duration)           { c.t = c.t.Add(d) }
func newFakeClock() *fakeClock                     { return &fakeClock{t: time.Unix(1_700_000_000, 0)} }
func (c *fakeClock) set(x *inodeIndex) *inodeIndex { x.now = c.now; return x }

func TestInodeIndex(t *testing.T) {
	p := newFakeProc(t)
	p.process(100, "sshd", "0", "sshd: /usr/sbin/sshd -D")
	p.fd(100, 0, "/dev/null")
	p.fd(100, 3, "socket:[1111]")
	p.fd(100, 4, "pipe:[5]")
	p.process(200, "curl", "1000", "curl", "-s", "https://example.org/")
	p.fd(200, 5, "socket:[2222]")
	p.fd(200, 6, "socket:[1111]")      // inherited from 100
	p.process(300, "kworker/0:1", "0") // kernel thread: no fds, empty cmdline
	if err := os.RemoveAll(filepath.Join(p.root, "300", "fd")); err != nil {
		t.Fatal(err)
	}

	clk := newFakeClock()
	x := clk.set(newInodeIndex(p.root, 500*time.Millisecond))
	x.userName = testUserName

	gen := x.generation()
	pid, res, _ := x.pid(2222, gen)
	if pid != 200 || res != indexFound {
		t.Fatalf("pid(2222) = %d, %v; want 200, found", pid, res)
	}
	if pid, _, _ := x.pid(1111, gen); pid != 100 {
		t.Errorf("shared socket: pid = %d, want the lowest, 100", pid)
	}
	if x.started != 1 || x.size() != 2 {
		t.Errorf("after first lookups: scans = %d, inodes = %d; want 1, 2", x.started, x.size())
	}

	// A socket the scan has not seen: no rescan within minEvery.
	p.fd(200, 7, "socket:[3333]")
	gen = x.generation()
	_, res, at := x.pid(3333, gen)
	if res != indexLater || !at.Equal(clk.t.Add(500*time.Millisecond)) {
		t.Errorf("unknown inode right after a scan: %v at %v, want later at +500ms", res, at)
	}
	clk.add(500 * time.Millisecond)
	if pid, res, _ := x.pid(3333, gen); pid != 200 || res != indexFound {
		t.Errorf("after minEvery: pid(3333) = %d, %v; want 200, found", pid, res)
	}
	// The rescan started after gen: an inode it did not find is gone, and
	// asking again does not scan again.
	if _, res, _ := x.pid(4444, gen); res != indexGone {
		t.Errorf("inode missing from a later scan: %v, want gone", res)
	}
	if x.started != 2 {
		t.Errorf("scans = %d, want 2", x.started)
	}

	got := map[int]Info{}
	for _, pid := range []int{100, 200, 300} {
		in, err := x.info(pid)
		if err != nil {
			t.Fatal(err)
		}
		got[pid] = in
	}
	want := map[int]Info{
		100: {PID: 100, Name: "sshd", User: "0", Cmdline: "sshd: /usr/sbin/sshd -D"},
		200: {PID: 200, Name: "curl", User: "alice", Cmdline: "curl -s https://example.org/"},
		300: {PID: 300, Name: "kworker/0:1", User: "0"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("info (-want +got):\n%s", diff)
	}
	if _, err := x.info(999); err == nil {
		t.Error("info of a missing process: no error")
	}
}

func TestInodeIndexMissingRoot(t *testing.T) {
	x := newInodeIndex(filepath.Join(t.TempDir(), "nope"), time.Second)
	if _, res, _ := x.pid(1, x.generation()); res != indexGone {
		t.Errorf("missing /proc: %v, want gone", res)
	}
	if x.scanErrors != 1 {
		t.Errorf("scanErrors = %d, want 1", x.scanErrors)
	}
}

func TestSocketInode(t *testing.T) {
	tests := []struct {
		in   string
		want uint64
		ok   bool
	}{
		{"socket:[12345]", 12345, true},
		{"socket:[0]", 0, true},
		{"socket:[]", 0, false},
		{"socket:[12x]", 0, false},
		{"socket:[12", 0, false},
		{"pipe:[12]", 0, false},
		{"anon_inode:[eventpoll]", 0, false},
		{"/dev/null", 0, false},
	}
	for _, tt := range tests {
		got, ok := socketInode([]byte(tt.in))
		if got != tt.want || ok != tt.ok {
			t.Errorf("socketInode(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestParseStatusUID(t *testing.T) {
	if uid, ok := parseStatusUID([]byte("Name:\tx\nUid:\t1000\t0\t0\t0\n")); !ok || uid != "1000" {
		t.Errorf("real uid = %q, %v; want 1000", uid, ok)
	}
	if _, ok := parseStatusUID([]byte("Name:\tx\n")); ok {
		t.Error("no Uid line: ok")
	}
}

func TestParseCmdline(t *testing.T) {
	for in, want := range map[string]string{
		"python3\x00-c\x00print(1)\x00": "python3 -c print(1)",
		"":                              "",
		"nginx: worker process":         "nginx: worker process", // rewritten argv, no NUL
		"a\x00\x00b\x00":                "a  b",
	} {
		if got := parseCmdline([]byte(in)); got != want {
			t.Errorf("parseCmdline(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestLookupUserName(t *testing.T) {
	if got := lookupUserName("4294967"); got != "4294967" {
		t.Errorf("unknown uid: %q, want the uid", got)
	}
	// uid 0 is named in every passwd database worth the name.
	if got := lookupUserName("0"); got != "root" {
		t.Logf("uid 0 is %q on this host", got)
	}
}
