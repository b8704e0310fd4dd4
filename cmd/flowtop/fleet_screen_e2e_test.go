package main

// The fleet view's screen, end to end: flowtop --remote in a real
// terminal (a private tmux server), in the hub namespace, reading two
// routers through one broker or through two bridged brokers.

import (
	"bufio"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack/nstest"
)

// term is a private tmux server; each viewer is a session of it.
type term struct {
	t    *testing.T
	sock string
}

func newTerm(t *testing.T) *term {
	nstest.Require(t, "tmux")
	m := &term{t: t, sock: filepath.Join(t.TempDir(), "tmux.sock")}
	t.Cleanup(func() { m.run("kill-server") })
	return m
}

func (m *term) run(args ...string) (string, error) {
	out, err := exec.Command("tmux", append([]string{"-S", m.sock}, args...)...).CombinedOutput()
	return string(out), err
}

// open starts session name running flowtop with args inside ns.
func (m *term) open(name string, ns *nstest.NS, args ...string) {
	m.t.Helper()
	command := fmt.Sprintf("ip netns exec %s %s %s; echo EXIT=$?; sleep 60", ns.Name, flowtopBinary(m.t), strings.Join(args, " "))
	if out, err := m.run("-f", "/dev/null", "new-session", "-d", "-s", name, "-x", "180", "-y", "40", command); err != nil {
		m.t.Fatalf("tmux new-session: %v: %s", err, out)
	}
}

// keys sends tmux key names (Enter, Escape) or, with literal, text.
func (m *term) keys(session string, literal bool, keys ...string) {
	m.t.Helper()
	args := []string{"send-keys", "-t", session}
	if literal {
		args = append(args, "-l")
	}
	if out, err := m.run(append(args, keys...)...); err != nil {
		m.t.Fatalf("tmux send-keys %q: %v: %s", keys, err, out)
	}
}

func (m *term) screen(session string) string {
	m.t.Helper()
	out, err := m.run("capture-pane", "-p", "-t", session)
	if err != nil {
		m.t.Fatalf("tmux capture-pane: %v: %s", err, out)
	}
	return out
}

// waitFor polls session's screen until ok accepts it, failing the test
// with the screen after timeout; it returns the screen and the time taken.
func (m *term) waitFor(session, what string, timeout time.Duration, ok func(screen string) bool) (string, time.Duration) {
	m.t.Helper()
	start := time.Now()
	for {
		s := m.screen(session)
		if ok(s) {
			return s, time.Since(start)
		}
		if strings.Contains(s, "EXIT=") {
			m.t.Fatalf("flowtop (%s) ended while waiting for %s; screen:\n%s", session, what, s)
		}
		if time.Since(start) > timeout {
			m.t.Fatalf("after %v the screen (%s) does not show %s; screen:\n%s", timeout, session, what, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// line returns the first screen line holding every one of words, "" when
// none does.
func line(screen string, words ...string) string {
	for l := range strings.SplitSeq(screen, "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(l, w)
		}
		if all {
			return l
		}
	}
	return ""
}

// cell returns the word of row under the column titled title in the
// header line: the word of row that overlaps the title's columns.
func cell(header, row, title string) string {
	i := strings.Index(header, title)
	if i < 0 {
		return ""
	}
	for _, loc := range regexp.MustCompile(`\S+`).FindAllStringIndex(row, -1) {
		if loc[0] < i+len(title) && loc[1] > i {
			return row[loc[0]:loc[1]]
		}
	}
	return ""
}

// headerLine is the table's column header: the line holding title.
func headerLine(screen, title string) string { return line(screen, title, "RATE") }

// nodeRow is node's row on the Nodes tab.
func nodeRow(screen, node string) string {
	for l := range strings.SplitSeq(screen, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == node {
			return l
		}
	}
	return ""
}

var rateText = regexp.MustCompile(`([0-9.]+)([kMG]?)B/s`)

// parseRate reads a rate the screen prints ("4.0kB/s"), -1 when s is none.
func parseRate(s string) float64 {
	m := rateText.FindStringSubmatch(s)
	if m == nil {
		return -1
	}
	v, _ := strconv.ParseFloat(m[1], 64)
	return v * map[string]float64{"": 1, "k": 1e3, "M": 1e6, "G": 1e9}[m[2]]
}

// headerRates are the src and dst rates of the screen's first line.
func headerRates(screen string) (src, dst float64) {
	first, _, _ := strings.Cut(screen, "\n")
	_, s, ok1 := strings.Cut(first, "src ")
	_, d, ok2 := strings.Cut(first, "dst ")
	if !ok1 || !ok2 {
		return -1, -1
	}
	return parseRate(strings.Fields(s)[0]), parseRate(strings.Fields(d)[0])
}

// routerOnce is the router's own view of its namespace: flowtop --once
// there, its totals' rates.
func routerOnce(t *testing.T, ns *nstest.NS) (orig, reply float64) {
	out, stderr, code := runBinary(t, 30*time.Second, "-n", "--netns", ns.Path(), "--state-dir", t.TempDir(), "--keep-accounting", "-46TUI", "--once")
	if code != 0 {
		t.Fatalf("flowtop --once in %s: exit %d: %s", ns.Name, code, nstest.Truncate(stderr))
	}
	d := decodeDoc(t, out)
	return d.Totals.OrigBytesPerS, d.Totals.ReplyBytesPerS
}

func within(a, b, frac float64) bool { return a >= b*(1-frac) && a <= b*(1+frac) }

// TestFleetScreen: the Nodes tab lists both routers with their flow
// counts; Enter opens a router's flows, with rates within 10 % of what
// that router's own --once says; --mqtt-node + shows both routers' flows
// with their NODE; a router killed with SIGKILL turns offline on screen
// within the keepalive + 2 s. The same through two bridged brokers.
func TestFleetScreen(t *testing.T) {
	for _, bridged := range []bool{false, true} {
		name := "one broker"
		if bridged {
			name = "bridged brokers"
		}
		t.Run(name, func(t *testing.T) {
			h := newHub(t)
			up := h.broker(1883)
			viewerURL := up
			if bridged {
				viewerURL = h.broker(1884, bridge(up)...)
			}
			daemons, as := h.routers(up, "r1", "r2")
			a1, r2 := as[0], daemons[1]

			m := newTerm(t)
			m.open("nodes", h.ns, "--remote", viewerURL, "-n", "-G")
			onNodes := func(s string) bool {
				hdr := headerLine(s, "FLOWS")
				for _, n := range []string{"r1", "r2"} {
					r := nodeRow(s, n)
					if !strings.Contains(r, "online") {
						return false
					}
					if f, err := strconv.Atoi(cell(hdr, r, "FLOWS")); err != nil || f == 0 {
						return false
					}
				}
				return true
			}
			s, took := m.waitFor("nodes", "r1 and r2 online with their flow counts on the Nodes tab", 30*time.Second, onNodes)
			t.Logf("Nodes tab after %v:\n%s", took.Round(time.Millisecond), s)

			// Enter on r1 opens its flows: the TCP stream to B's address.
			m.keys("nodes", true, "/r1")
			m.keys("nodes", false, "Enter")
			m.waitFor("nodes", "r1 alone under /r1", 10*time.Second, func(s string) bool {
				return nodeRow(s, "r1") != "" && nodeRow(s, "r2") == ""
			})
			m.keys("nodes", false, "Enter")
			s, _ = m.waitFor("nodes", "r1's flows after Enter", 20*time.Second, func(s string) bool {
				return line(s, " tcp ", " "+nstest.AddrB4+" ") != "" && strings.Contains(s, "r1")
			})
			t.Logf("r1's Flows tab:\n%s", s)
			// Its rates agree with the router's own --once within 10 %
			// (taken close together; steady traffic, so a few tries).
			var got string
			nstest.WaitFor(t, 60*time.Second, "the screen's rates within 10 % of r1's own --once", func() (bool, string) {
				orig, reply := routerOnce(t, a1)
				src, dst := headerRates(m.screen("nodes"))
				got = fmt.Sprintf("screen src %.0f dst %.0f B/s, --once orig %.0f reply %.0f B/s", src, dst, orig, reply)
				return orig > 0 && within(src, orig, 0.10) && within(dst, reply, 0.10), got
			})
			t.Logf("r1: %s", got)

			// Every node in one table, each flow with its NODE.
			m.open("all", h.ns, "--remote", viewerURL, "-n", "-G", "--mqtt-node", "+")
			m.waitFor("all", "flows of r1 and r2 with a NODE column", 30*time.Second, func(s string) bool {
				hdr := headerLine(s, "NODE")
				var r1, r2 bool
				for l := range strings.SplitSeq(s, "\n") {
					if strings.Contains(l, " tcp ") {
						r1 = r1 || cell(hdr, l, "NODE") == "r1"
						r2 = r2 || cell(hdr, l, "NODE") == "r2"
					}
				}
				return r1 && r2
			})

			// SIGKILL r2: the broker sends its last will; the Nodes tab
			// says offline within the keepalive (30 s) + 2 s.
			m.open("watch", h.ns, "--remote", viewerURL, "-n", "-G")
			m.waitFor("watch", "r1 and r2 online", 30*time.Second, onNodes)
			r2.Process.Kill()
			_, took = m.waitFor("watch", "r2 offline on the Nodes tab", 32*time.Second, func(s string) bool {
				return strings.Contains(nodeRow(s, "r2"), "offline") && strings.Contains(nodeRow(s, "r1"), "online")
			})
			t.Logf("SIGKILL to offline on screen: %v", took.Round(time.Millisecond))
		})
	}
}

// TestFleetWatchRate: with one viewer on r1 the router publishes its live
// stream about once a second; three viewers do not triple it; once the
// viewers quit, the stream stops within the lease (10 s).
func TestFleetWatchRate(t *testing.T) {
	h := newHub(t)
	broker := h.broker(1883)
	h.routers(broker, "r1")

	// Count r1's live documents with a subscriber in the hub.
	var lives atomic.Int64
	sub := h.ns.Command("mosquitto_sub", "-h", "127.0.0.1", "-p", "1883", "-t", "flowtop/r1/live", "-t", "flowtop/r1/live/gz", "-F", "%t")
	out, err := sub.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := sub.Start(); err != nil {
		t.Fatalf("mosquitto_sub: %v", err)
	}
	t.Cleanup(func() { sub.Process.Kill(); sub.Wait() })
	go func() {
		for sc := bufio.NewScanner(out); sc.Scan(); {
			lives.Add(1)
		}
	}()
	// rate counts live documents over a window.
	rate := func(window time.Duration) float64 {
		n0 := lives.Load()
		start := time.Now()
		for time.Since(start) < window {
			time.Sleep(100 * time.Millisecond)
		}
		return float64(lives.Load()-n0) / time.Since(start).Seconds()
	}

	if r := rate(3 * time.Second); r != 0 {
		t.Fatalf("r1 publishes %.1f live documents/s before anyone watches, want none", r)
	}
	m := newTerm(t)
	m.open("v1", h.ns, "--remote", broker, "-n", "-G", "--mqtt-node", "r1")
	nstest.WaitFor(t, 30*time.Second, "r1's live stream with one viewer", func() (bool, string) {
		return lives.Load() > 0, "none yet"
	})
	one := rate(6 * time.Second)
	if one < 0.5 || one > 1.6 {
		t.Errorf("one viewer at -t 1: %.2f live documents/s, want about 1", one)
	}
	m.open("v2", h.ns, "--remote", broker, "-n", "-G", "--mqtt-node", "r1")
	m.open("v3", h.ns, "--remote", broker, "-n", "-G", "--mqtt-node", "r1")
	for _, v := range []string{"v2", "v3"} {
		m.waitFor(v, "r1's flows", 30*time.Second, func(s string) bool { return strings.Contains(s, nstest.AddrB4) })
	}
	three := rate(6 * time.Second)
	if three > 1.6 {
		t.Errorf("three viewers: %.2f live documents/s (one viewer: %.2f), want one stream at about 1/s", three, one)
	}
	t.Logf("live documents/s: one viewer %.2f, three viewers %.2f", one, three)

	// The viewers quit: the stream ends, at the latest when the leases
	// run out (10 s).
	for _, v := range []string{"v1", "v2", "v3"} {
		m.keys(v, true, "q")
		m.waitFor(v, "EXIT=0 after q", 10*time.Second, func(s string) bool { return strings.Contains(s, "EXIT=0") })
	}
	quit := time.Now()
	nstest.WaitFor(t, 12*time.Second, "r1's live stream stopped after the viewers quit", func() (bool, string) {
		r := rate(2 * time.Second)
		return r == 0, fmt.Sprintf("%.2f/s", r)
	})
	t.Logf("stream stopped within %v of the last q", time.Since(quit).Round(100*time.Millisecond))
}

// TestFleetBrokerLate: a viewer started before its broker says so in one
// header line and keeps trying; once the broker and a router are up, the
// router shows.
func TestFleetBrokerLate(t *testing.T) {
	h := newHub(t)
	m := newTerm(t)
	m.open("v", h.ns, "--remote", "tcp://127.0.0.1:1883", "-n", "-G")
	s, _ := m.waitFor("v", "the broker's error in the header", 30*time.Second, func(s string) bool {
		return strings.Contains(s, "connection refused")
	})
	if n := strings.Count(s, "connection refused"); n != 1 {
		t.Errorf("the broker's error is on %d lines, want one:\n%s", n, s)
	}
	broker := h.broker(1883)
	h.routers(broker, "r1")
	m.waitFor("v", "r1 online once the broker is up", 60*time.Second, func(s string) bool {
		return strings.Contains(nodeRow(s, "r1"), "online") && !strings.Contains(s, "connection refused")
	})
}

// TestFleetNodesFresh: routers publishing every minute, traffic started
// after their first document: the Nodes tab still shows their flows
// within seconds, through its summary lease, not at the next minute.
func TestFleetNodesFresh(t *testing.T) {
	h := newHub(t)
	h.routerArgs = []string{"--mqtt-interval", "60s"}
	broker := h.broker(1883)
	h.routers(broker, "r1", "r2")
	m := newTerm(t)
	m.open("v", h.ns, "--remote", broker, "-n", "-G")
	s, took := m.waitFor("v", "both routers' flows on the Nodes tab", 25*time.Second, func(s string) bool {
		hdr := headerLine(s, "FLOWS")
		for _, n := range []string{"r1", "r2"} {
			if f, err := strconv.Atoi(cell(hdr, nodeRow(s, n), "FLOWS")); err != nil || f == 0 {
				return false
			}
		}
		return true
	})
	t.Logf("flow counts after %v:\n%s", took.Round(time.Millisecond), s)
}
