package main

import (
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack/nstest"
)

func TestMetricsOptions(t *testing.T) {
	for _, tt := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--metrics-listen", "127.0.0.1:9790"}, ""},
		{[]string{"--metrics-listen", "[::1]:9790", "--local-net", "100.64.0.0/10,192.168.0.0/16"}, ""},
		{[]string{"--metrics-listen", ":9790", "--metrics-token-file", "/t"}, ""},
		{[]string{"--metrics-listen", "127.0.0.1"}, "--metrics-listen \"127.0.0.1\": want host:port"},
		{[]string{"--metrics-listen", "127.0.0.1:99999"}, "bad port"},
		{[]string{"--metrics-listen", ":9790", "--once"}, "makes no sense with --once"},
		{[]string{"--metrics-listen", ":9790", "--metrics-token-file", "/t", "--metrics-basic-auth-file", "/b"}, "exclude each other"},
		{[]string{"--metrics-token-file", "/t"}, "need --metrics-listen"},
		{[]string{"--local-net", "192.168.1.300/24"}, "--local-net \"192.168.1.300/24\""},
	} {
		_, err := parseOptions(tt.args, io.Discard)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%q: %v", tt.args, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%q: error %v, want one containing %q", tt.args, err, tt.wantErr)
		}
	}
}

// TestMetricsAddressInUse: an address flowtop cannot listen on is a usage
// error (exit 2, one line), found before the kernel side starts.
func TestMetricsAddressInUse(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for _, addr := range []string{ln.Addr().String(), "127.0.0.1:99999"} {
		_, stderr, code := runBinary(t, 30*time.Second, "--no-ui", "--metrics-listen", addr, "--state-dir", t.TempDir())
		if code != 2 {
			t.Errorf("%s: exit status %d, want 2", addr, code)
		}
		if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "--metrics-listen") {
			t.Errorf("%s: stderr %.300q: want one line naming --metrics-listen", addr, stderr)
		}
	}
}

var metricsURL = regexp.MustCompile(`url=(http://127\.0\.0\.1:\d+/metrics)`)

// TestMetricsEndToEnd runs flowtop headless on a test namespace with
// --metrics-listen and a token, makes traffic, and scrapes: the flows and
// host A's bytes show; promtool accepts the scrape; a scrape without the
// token is refused; SIGTERM stops flowtop cleanly.
func TestMetricsEndToEnd(t *testing.T) {
	nstest.Require(t, "nft")
	a, b := nstest.Pair(t)
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("e2e-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startFlowtop(t, "--no-ui", "--netns", a.Path(), "-46TUI", "-t", "0.2", "--state-dir", t.TempDir(),
		"--metrics-listen", "127.0.0.1:0", "--metrics-token-file", token, "--local-net", nstest.AddrA4+"/32")
	var url string
	for deadline := time.Now().Add(30 * time.Second); url == ""; time.Sleep(20 * time.Millisecond) {
		if m := metricsURL.FindStringSubmatch(p.stderr.String()); m != nil {
			url = m[1]
		} else if time.Now().After(deadline) {
			t.Fatalf("no metrics URL logged; stderr:\n%.500s", p.stderr.String())
		}
	}
	startTraffic(t, a, b)

	scrape := func(tok string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, _ := scrape(""); code != http.StatusUnauthorized {
		t.Errorf("scrape without token: %d, want 401", code)
	}
	want := []*regexp.Regexp{
		regexp.MustCompile(`(?m)^flowtop_build_info\{version="[^"]+",goversion="go[^"]+"\} 1$`),
		regexp.MustCompile(`(?m)^flowtop_flows\{family="ipv4",proto="tcp",state="ESTABLISHED"\} [1-9]`),
		regexp.MustCompile(`(?m)^flowtop_flows\{family="ipv6",proto="udp",state=""\} [1-9]`),
		regexp.MustCompile(`(?m)^flowtop_host_transmit_bytes_total\{host="192\.0\.2\.1"\} [1-9]`),
		regexp.MustCompile(`(?m)^flowtop_conntrack_stat_invalid_total \d+$`),
		// The exporters' health, as the JSON document's: the metrics
		// exporter itself, and its ended-flow subscription's losses.
		regexp.MustCompile(`(?m)^flowtop_exporter_published_total\{exporter="metrics"\} \d+$`),
		regexp.MustCompile(`(?m)^flowtop_ended_records_dropped_total \d+$`),
	}
	var body string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code, b := scrape("e2e-token")
		if code != 200 {
			t.Fatalf("scrape: status %d: %.300q", code, b)
		}
		body = b
		missing := 0
		for _, re := range want {
			if !re.MatchString(body) {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			for _, re := range want {
				if !re.MatchString(body) {
					t.Errorf("no line matching %s", re)
				}
			}
			t.Fatalf("in:\n%.1500s", body)
		}
	}
	if strings.Contains(body, nstest.AddrB4) {
		t.Errorf("B (not in --local-net) has series")
	}
	// The real thing passes promtool's parser and linter too (Debian's
	// prometheus package; .ci/run installs it).
	if promtool, err := exec.LookPath("promtool"); err == nil {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = strings.NewReader(body)
		if out, err := cmd.CombinedOutput(); err != nil || len(out) > 0 {
			t.Errorf("promtool check metrics: %v: %.500s", err, out)
		}
	} else if os.Getenv("CI") == "true" {
		t.Error("promtool not found (CI=true: failing instead of skipping the check)")
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM", code)
	}
}
