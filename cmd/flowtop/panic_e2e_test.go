package main

import (
	"context"
	"github.com/flowtop/flowtop/conntrack/kernel"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack/nstest"
)

// A panic in a goroutine other than main kills the process before any
// deferred restore can run; the watchdog must put the sysctls back.
func TestSysctlsRestoredAfterPanicInGoroutine(t *testing.T) {
	nstest.Require(t, "nft")
	a := nstest.New(t, "p")
	a.EnableConntrack(t)
	acct := sysctl(t, a, kernel.SysctlAcct)
	stamp := sysctl(t, a, kernel.SysctlTimestamp)
	a.WriteSysctl(t, kernel.SysctlAcct, "0")
	a.WriteSysctl(t, kernel.SysctlTimestamp, "0")
	dir := t.TempDir()

	// A flowtop that does not panic would run on: killed after a while.
	ctx, cancel := context.WithTimeout(context.Background(), nstest.Patience)
	defer cancel()
	cmd := exec.CommandContext(ctx, crashhookBinary(t), numeric([]string{"--batch", "--netns", a.Path(), "--state-dir", dir})...)
	cmd.Env = append(os.Environ(), "FLOWTOP_TEST_PANIC=1")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.Contains(stderr.String(), "FLOWTOP_TEST_PANIC") {
		t.Fatalf("flowtop with FLOWTOP_TEST_PANIC=1: %v, exit %d, want the panic (exit 2); stderr:\n%s", err, code, nstest.Truncate(stderr.String()))
	}
	died := time.Now()
	nstest.WaitFor(t, nstest.Patience, "the watchdog restoring nf_conntrack_acct and nf_conntrack_timestamp to 0 0 after the panic",
		func() (bool, string) {
			a, s := acct(), stamp()
			return a == "0" && s == "0", "nf_conntrack_acct=" + a + " nf_conntrack_timestamp=" + s
		})
	t.Logf("sysctls restored %v after the panic", time.Since(died).Round(time.Millisecond))
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) > 0 {
		t.Errorf("state files left behind: %q", left)
	}
}

// crashhookBinary builds flowtop with -tags crashhook, the build whose
// crashHook panics on request (the shipped binary has no such hook).
func crashhookBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "flowtop-crashhook")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", "crashhook", "-o", bin, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0") // as the README builds it
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags crashhook: %v\n%.2000s", err, out)
	}
	return bin
}
