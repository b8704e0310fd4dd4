package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack/nstest"
)

// leanTags are the router build's tags (scripts/sizes.sh,
// packaging/openwrt/flowtop/Makefile).
const leanTags = "headless"

// buildLean builds the router daemon for this machine as scripts/sizes.sh
// does (its tags and scripts/lean-gcflags), with its symbols.
func buildLean(t *testing.T) string {
	t.Helper()
	gcflags, err := os.ReadFile("../../scripts/lean-gcflags")
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "flowtop-lean")
	args := []string{"build", "-tags", leanTags, "-o", bin}
	for line := range strings.Lines(string(gcflags)) {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			args = append(args, line)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", append(args, ".")...)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build -tags %s: %v\n%s", leanTags, err, nstest.Truncate(string(out)))
	}
	return bin
}

// TestLeanBuildLeavesOut pins what the router build does without, so that
// an import cannot quietly bring it back (scripts/sizes.sh --check only
// sees growth past 5 %): nftables (--enable-tracking), the regexp engine
// (only the GeoIP downloader, left out too, matches regexps), net/http
// (/metrics has its own small server), the fleet
// view's reader (a router publishes; it does not watch others) and paho's
// websockets.
func TestLeanBuildLeavesOut(t *testing.T) {
	bin := buildLean(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "go", "tool", "nm", bin).Output()
	if err != nil {
		t.Fatalf("go tool nm: %v", err)
	}
	absent := []string{
		" github.com/google/nftables.",
		" regexp/syntax.Parse",
		" net/http.",                                   // 0.7 MB: /metrics serves itself, paho is built without websockets, no GeoIP download
		" github.com/flowtop/flowtop/remote.(*Client)", // the fleet view (--remote)
		" github.com/gorilla/websocket.",               // paho's ws:// and wss://
	}
	for _, sym := range absent {
		n, first := 0, ""
		for line := range strings.Lines(string(out)) {
			if strings.Contains(line, sym) {
				if n++; n == 1 {
					first = strings.TrimSpace(line)
				}
			}
		}
		if n > 0 {
			t.Errorf("the lean build links %d symbols like%s, e.g. %s", n, sym, first)
		}
	}

	// The one-shot JSON mode works, and the hint for a namespace whose
	// traffic conntrack ignores names no flag this build lacks.
	t.Run("--once", func(t *testing.T) {
		a, b := barePair(t)
		tcpConnect(t, a, b, nstest.AddrB4)
		ctx, cancel := context.WithTimeout(context.Background(), nstest.Patience)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "-n", "--once", "-t", "0", "--netns", a.Path(), "--state-dir", t.TempDir())
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("flowtop --once: %v; stderr:\n%s", err, nstest.Truncate(stderr.String()))
		}
		decodeDoc(t, out)
		if !strings.Contains(stderr.String(), "ct state") || strings.Contains(stderr.String(), "--enable-tracking") {
			t.Errorf("want the hint without --enable-tracking on stderr:\n%s", nstest.Truncate(stderr.String()))
		}
	})

	// Flags this build lacks are usage errors: exit status 2 and one line.
	// --netns names a namespace that does not exist: should a flag get
	// through, flowtop fails there instead of touching this machine's
	// conntrack.
	noNS := filepath.Join(t.TempDir(), "no-such-netns")
	refusals := []struct {
		name string
		args []string
		want string
	}{
		{"--remote", []string{"--remote", "tcp://127.0.0.1:1", "--once"}, "flowtop: this build (-tags headless) has no fleet view"},
		{"--mqtt ws://", []string{"--no-ui", "--mqtt", "ws://127.0.0.1:1/mqtt", "--netns", noNS}, "flowtop: --mqtt \"ws://127.0.0.1:1/mqtt\": this build of flowtop has no websockets"},
		{"--mqtt WSS://", []string{"--no-ui", "--mqtt", "WSS://127.0.0.1:1/mqtt", "--netns", noNS}, "flowtop: --mqtt \"WSS://127.0.0.1:1/mqtt\": this build of flowtop has no websockets"},
		{"--enable-tracking", []string{"-n", "--once", "--enable-tracking", "--netns", noNS}, "flowtop: this build (-tags headless) has no --enable-tracking"},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), nstest.Patience)
			defer cancel()
			cmd := exec.CommandContext(ctx, bin, tt.args...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if code := cmd.ProcessState.ExitCode(); code != 2 || !strings.HasPrefix(stderr.String(), tt.want) ||
				strings.Count(stderr.String(), "\n") != 1 {
				t.Errorf("exit status %d (%v), stderr:\n%s\nwant status 2 and one line starting %q", code, err, nstest.Truncate(stderr.String()), tt.want)
			}
		})
	}
}
