package nstest

import (
	"errors"
	"net"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestPairConnectsAndTracks(t *testing.T) {
	a, b := Pair(t)
	var ln net.Listener
	if err := b.Do(func() (err error) {
		ln, err = net.Listen("tcp", "["+AddrB6+"]:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	if err := a.Do(func() error {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), Patience)
		if err != nil {
			return err
		}
		return c.Close()
	}); err != nil {
		t.Fatal(err)
	}
	if out := a.Exec(t, "cat", "/proc/sys/net/netfilter/nf_conntrack_count"); strings.TrimSpace(out) == "0" {
		t.Fatalf("conntrack did not track the connection in %s", a.Name)
	}
}

// Two test binaries building flowtop at once build one after the other.
func TestLockBuildExcludes(t *testing.T) {
	unlock, err := lockBuild()
	if err != nil {
		t.Fatal(err)
	}
	other, err := os.Open(buildLockPath) // another open file: another binary's lock
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if err := unix.Flock(int(other.Fd()), unix.LOCK_EX|unix.LOCK_NB); !errors.Is(err, unix.EWOULDBLOCK) {
		t.Fatalf("a second lock while the build holds it: %v, want EWOULDBLOCK", err)
	}
	unlock()
	if err := unix.Flock(int(other.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatalf("lock after unlock: %v", err)
	}
}
