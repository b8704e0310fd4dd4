package metrics

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/flowtop/flowtop/conntrack"
)

// requirePromtool returns the path of promtool (Debian's prometheus
// package). Without it the test is skipped, except in CI (CI=true), where
// it fails: .ci/run installs it.
func requirePromtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err == nil {
		return path
	}
	msg := "promtool not found (apt-get install prometheus)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg + " (CI=true: failing instead of skipping)")
	}
	t.Skip(msg)
	return ""
}

// TestPromtoolAcceptsExposition runs `promtool check metrics`, which
// parses the text format and lints names, units, types and help, on the
// golden table and on a full host table with an overflow, odd versions
// and every kind of flow.
func TestPromtoolAcceptsExposition(t *testing.T) {
	promtool := requirePromtool(t)

	golden := newFixture(t, goldenConfig())
	golden.scrape(t, snap())

	cfg := goldenConfig()
	cfg.MaxHosts = 300
	cfg.Version = `v1.0 "odd" \ build` + "\n"
	cfg.GoVersion = "go1.26.0"
	full := newFixture(t, cfg)
	full.scrape(t, snap())
	var flows []conntrack.Flow
	for i := range 400 {
		src := fmt.Sprintf("10.0.%d.%d", i/250, i%250+1)
		if i%3 == 0 {
			src = fmt.Sprintf("fd00::%x", i+1)
		}
		dst := "203.0.113.9"
		if i%3 == 0 {
			dst = "2001:db8::9"
		}
		f := counted(flow(uint32(i+1), src, uint16(10000+i), dst, 443), uint64(i), uint64(10*i))
		switch i % 4 {
		case 1:
			f.Proto, f.State = conntrack.ProtoUDP, 0
		case 2:
			f.Proto, f.State = conntrack.ProtoSCTP, 4
		case 3:
			f.Proto, f.State = 50, 0 // ESP, no name of its own
		}
		flows = append(flows, f)
	}

	for name, text := range map[string]string{
		"golden": golden.scrape(t, goldenSnapshot()),
		"full":   full.scrape(t, snap(flows...)),
	} {
		if name == "full" && !strings.Contains(text, `host="other"`) {
			t.Errorf("full: no host=\"other\" series")
		}
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(text)
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("%s: promtool check metrics: %v: %.500s", name, err, out)
		}
	}
}

// TestPromtoolCatchesBadNames proves the check above can fail: promtool
// refuses a counter without _total.
func TestPromtoolCatchesBadNames(t *testing.T) {
	promtool := requirePromtool(t)
	var w expWriter
	w.header("flowtop_bad_bytes", typeCounter, "A counter named against the rules.")
	w.uint("flowtop_bad_bytes", 1)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(string(w.b))
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("promtool accepted a counter without _total: %s", out)
	}
}
