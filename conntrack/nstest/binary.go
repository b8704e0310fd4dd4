package nstest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// Flowtop builds ./cmd/flowtop once per test binary, on first use, and
// returns its path. The directory is world readable, so that a test can
// run the binary as an unprivileged user. Call RemoveFlowtop from TestMain
// after m.Run.
func Flowtop(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			build.err = err
			return
		}
		if build.dir, build.err = os.MkdirTemp("", "flowtop-e2e-"); build.err != nil {
			return
		}
		if build.err = os.Chmod(build.dir, 0o755); build.err != nil {
			return
		}
		build.bin = filepath.Join(build.dir, "flowtop")
		unlock, err := lockBuild()
		if err != nil {
			build.err = err
			return
		}
		defer unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		// go test puts its own go tool first on PATH.
		cmd := exec.CommandContext(ctx, "go", "build", "-o", build.bin, "./cmd/flowtop")
		cmd.Dir = root
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // as the README builds it
		if out, err := cmd.CombinedOutput(); err != nil {
			build.err = fmt.Errorf("go build ./cmd/flowtop: %v\n%s", err, out)
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.bin
}

// buildLockPath is the lock every test binary takes around its build of
// flowtop.
var buildLockPath = filepath.Join(os.TempDir(), "flowtop-e2e-build.lock")

// lockBuild waits for the builds of flowtop by other test binaries to end.
// `go test ./...` runs several packages' end-to-end tests at once, and the
// go command does not share work between concurrent builds: each would
// compile every package of flowtop itself, on a machine already busy with
// the tests. One after the other, the first compiles and the others link
// from the build cache.
func lockBuild() (unlock func(), err error) {
	f, err := os.OpenFile(buildLockPath, os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return nil, fmt.Errorf("build lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("build lock %s: %w", buildLockPath, err)
	}
	return func() { f.Close() }, nil // closing releases the lock
}

// RemoveFlowtop removes what Flowtop built, if anything.
func RemoveFlowtop() {
	if build.dir != "" {
		os.RemoveAll(build.dir)
	}
}

// moduleRoot finds the directory of go.mod above the working directory (a
// package's directory under go test).
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers and readers,
// e.g. a child process's stderr read while it runs.
type SyncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *SyncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *SyncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
