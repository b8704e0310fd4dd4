// Package nstest builds throw-away network namespaces for integration tests:
// two hosts joined by a veth pair, conntrack switched on by an nft rule,
// and helpers to run code or commands inside them. It never touches the
// host namespace's conntrack table or sysctls.
package nstest

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// Addresses of the two ends of a Pair. They exist only inside the test's
// own namespaces.
const (
	AddrA4 = "192.0.2.1"
	AddrB4 = "192.0.2.2"
	AddrA6 = "2001:db8::1"
	AddrB6 = "2001:db8::2"
)

// Require skips a test that needs root and the ip/nft tools, except in CI
// (CI=true), where a skipped integration test would hide a failure: there
// it fails instead.
func Require(t testing.TB, tools ...string) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range append([]string{"ip"}, tools...) {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "integration test needs " + strings.Join(missing, ", ")
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: failing instead of skipping)")
	}
	t.Skip(msg)
}

// NS is a named network namespace under /var/run/netns.
type NS struct {
	Name string
}

// Path is the namespace's bind mount, usable as flowtop --netns.
func (ns *NS) Path() string { return "/var/run/netns/" + ns.Name }

var seq atomic.Uint32

// New creates a namespace with a unique name and removes it when the test
// ends. Loopback is brought up.
func New(t testing.TB, prefix string) *NS {
	t.Helper()
	Require(t, "nft")
	name := fmt.Sprintf("ft%s%d_%d", prefix, os.Getpid(), seq.Add(1))
	ns := &NS{Name: name}
	run(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		exec.Command("ip", "netns", "pids", name).Run()
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Logf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	ns.Exec(t, "ip", "link", "set", "lo", "up")
	return ns
}

// Pair creates two namespaces joined by a veth pair, A (192.0.2.1,
// 2001:db8::1) and B (.2, ::2), with conntrack active in both (an nft rule
// using ct state).
func Pair(t testing.TB) (a, b *NS) {
	t.Helper()
	a, b = New(t, "a"), New(t, "b")
	run(t, "ip", "link", "add", "veth0", "netns", a.Name, "type", "veth", "peer", "name", "veth0", "netns", b.Name)
	for _, x := range []struct {
		ns     *NS
		v4, v6 string
	}{{a, AddrA4, AddrA6}, {b, AddrB4, AddrB6}} {
		x.ns.Exec(t, "ip", "addr", "add", x.v4+"/24", "dev", "veth0")
		x.ns.Exec(t, "ip", "-6", "addr", "add", x.v6+"/64", "dev", "veth0", "nodad")
		x.ns.Exec(t, "ip", "link", "set", "veth0", "up")
		x.ns.EnableConntrack(t)
	}
	return a, b
}

// EnableConntrack adds an nft table whose rule uses conntrack, which is what
// makes the kernel track the namespace's traffic.
func (ns *NS) EnableConntrack(t testing.TB) {
	t.Helper()
	ns.NFT(t, `table inet nstest {
	chain in {
		type filter hook input priority 0;
		ct state invalid counter
	}
	chain out {
		type filter hook output priority 0;
		ct state invalid counter
	}
}
`)
}

// NFT loads an nft ruleset text inside the namespace.
func (ns *NS) NFT(t testing.TB, ruleset string) {
	t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns.Name, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(ruleset)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft in %s: %v: %s", ns.Name, err, out)
	}
}

// Exec runs a command inside the namespace and returns its output; a
// failure fails the test.
func (ns *NS) Exec(t testing.TB, name string, args ...string) string {
	t.Helper()
	return run(t, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Command prepares a command that runs inside the namespace.
func (ns *NS) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Do runs fn on an OS thread switched into the namespace. Sockets created
// by fn stay in the namespace after Do returns and may be used from any
// goroutine.
func (ns *NS) Do(fn func() error) error {
	target, err := os.Open(ns.Path())
	if err != nil {
		return fmt.Errorf("open netns %s: %w", ns.Name, err)
	}
	defer target.Close()
	errc := make(chan error, 1)
	go func() {
		// The thread is never handed back to the scheduler (no
		// UnlockOSThread): Go ends it with the goroutine, so a thread left
		// in the wrong namespace can never run other code.
		runtime.LockOSThread()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns.Name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// ReadSysctl reads a sysctl of the namespace, e.g.
// "net/netfilter/nf_conntrack_acct".
func (ns *NS) ReadSysctl(t testing.TB, key string) string {
	t.Helper()
	return strings.TrimSpace(ns.Exec(t, "cat", "/proc/sys/"+key))
}

// WriteSysctl sets a sysctl of the namespace.
func (ns *NS) WriteSysctl(t testing.TB, key, value string) {
	t.Helper()
	ns.Exec(t, "sh", "-c", "echo "+value+" > /proc/sys/"+key)
}

func run(t testing.TB, name string, args ...string) string {
	t.Helper()
	var stderr bytes.Buffer
	cmd := exec.Command(name, args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v: %s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}
