package main

import (
	"bytes"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/report"
)

// measureFleet is the fleet view under load: nodes simulated routers
// publish a document of flowsPerNode flows every period to a broker, and
// flowtop --remote shows them on its Nodes tab in a real terminal (tmux).
// It reports the key-to-screen latency of j/k on that tab (next to the
// same measurement on cat, the floor of tmux's own round trip) and the
// viewer's CPU.
func measureFleet(bin string, nodes, flowsPerNode int, period time.Duration, presses int, cpuFor time.Duration) error {
	if _, err := exec.LookPath("tmux"); err != nil {
		return fmt.Errorf("-fleet needs tmux: %w", err)
	}
	b, err := startBroker()
	if err != nil {
		return err
	}
	defer b.stop()
	stopPub, err := simulateNodes(b.url, nodes, flowsPerNode, period)
	if err != nil {
		return err
	}
	defer stopPub()

	dir, err := os.MkdirTemp("", "flowtop-bench-tmux")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tm := &tmux{sock: filepath.Join(dir, "sock")}
	defer tm.run("kill-server")

	fmt.Printf("\nfleet: %d simulated nodes, %d flows each, a document every %v each; %s --remote on its Nodes tab (180x50 tmux)\n",
		nodes, flowsPerNode, period, bin)
	if err := tm.open("floor", "cat"); err != nil {
		return err
	}
	floor, err := tm.latencies("floor", presses, func(i int) (string, func(string) bool) {
		mark := fmt.Sprintf("k%d.", i)
		// The echo wraps at the pane's width: look at it unwrapped.
		return mark, func(s string) bool { return strings.Contains(strings.ReplaceAll(s, "\n", ""), mark) }
	})
	if err != nil {
		return err
	}
	fmt.Printf("  tmux floor (a key to cat's echo on screen): %s\n", summary(floor))

	if err := tm.open("fleet", bin+" --remote "+b.url+" -n -G"); err != nil {
		return err
	}
	all := "1/" + strconv.Itoa(nodes)
	if err := waitFor(60*time.Second, "every node on the Nodes tab", func() (bool, error) {
		s, err := tm.capture("fleet")
		return strings.Contains(s, all), err
	}); err != nil {
		s, _ := tm.capture("fleet")
		return fmt.Errorf("%w; screen:\n%s", err, s)
	}
	lat, err := tm.latencies("fleet", presses, func(i int) (string, func(string) bool) {
		key, want := "j", "2/"+strconv.Itoa(nodes)
		if i%2 == 1 {
			key, want = "k", all
		}
		return key, func(s string) bool { return strings.Contains(lastLine(s), want) }
	})
	if err != nil {
		return err
	}
	fmt.Printf("  j/k on the Nodes tab, key to screen: %s\n", summary(lat))
	pid, err := tm.pid("fleet")
	if err != nil {
		return err
	}
	fmt.Printf("  the viewer's CPU over %v: %.2f%% of one core (load %s)\n", cpuFor, steadyCPUOf(pid, cpuFor), loadAvg())
	return nil
}

// simulateNodes publishes, for each of n nodes, a retained "online"
// status and then a document of flows flows every period, the nodes
// spread evenly over the period.
func simulateNodes(url string, n, flows int, period time.Duration) (stop func(), err error) {
	o := mqtt.NewClientOptions().AddBroker(url).SetClientID("flowtop-bench-fleet").SetCleanSession(true)
	c := mqtt.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("simulated nodes: connect: %v", tok.Error())
	}
	name := func(i int) string { return fmt.Sprintf("node%03d", i) }
	for i := range n {
		c.Publish("flowtop/"+name(i)+"/status", 1, true, "online").WaitTimeout(5 * time.Second)
	}
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(period / time.Duration(n))
		defer tick.Stop()
		for i := 0; ; i = (i + 1) % n {
			doc, err := fleetDocument(name(i), i, flows, time.Now())
			if err == nil {
				c.Publish("flowtop/"+name(i)+"/snapshot", 0, false, doc)
			}
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	}()
	return func() {
		close(quit)
		<-done
		for i := range n { // leave no retained status behind
			c.Publish("flowtop/"+name(i)+"/status", 1, true, []byte{}).WaitTimeout(5 * time.Second)
		}
		c.Disconnect(250)
	}, nil
}

// fleetDocument is node i's document: flows TCP flows from its LAN to
// documentation addresses, with rates that differ per node.
func fleetDocument(node string, i, flows int, now time.Time) ([]byte, error) {
	fs := make([]conntrack.Flow, flows)
	for j := range fs {
		f := &fs[j]
		f.ID = uint32(j + 1)
		f.Family, f.Proto, f.State = conntrack.IPv4, conntrack.ProtoTCP, 3
		f.Status = conntrack.StatusSeenReply | conntrack.StatusAssured | conntrack.StatusConfirmed
		f.Orig = conntrack.Tuple{
			Src: conntrack.AddrFrom(netip.AddrFrom4([4]byte{192, 168, byte(i % 256), byte(j % 254)})), SrcPort: uint16(40000 + j),
			Dst: conntrack.AddrFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(j % 254)})), DstPort: 443,
		}
		f.Reply = conntrack.Tuple{Src: f.Orig.Dst, Dst: f.Orig.Src, SrcPort: 443, DstPort: f.Orig.SrcPort}
		f.HasCounters = true
		f.OrigCount = conntrack.Counter{Packets: uint64(10 * (j + 1)), Bytes: uint64(1000 * (j + 1))}
		f.ReplyCount = conntrack.Counter{Packets: uint64(20 * (j + 1)), Bytes: uint64(5000 * (j + 1))}
		r := float32((i+1)*(flows-j)) * 10
		f.OrigRate = conntrack.Rate{Bytes: r, Avg2: r, Avg10: r, Avg40: r}
		f.ReplyRate = conntrack.Rate{Bytes: 5 * r, Avg2: 5 * r, Avg10: 5 * r, Avg40: 5 * r}
		f.Start = conntrack.StampOf(now.Add(-time.Duration(j+1) * time.Second))
		f.Seen = conntrack.StampOf(now)
	}
	filter := conntrack.Filter{IPv4: true, IPv6: true}
	filter.Protos.Add(conntrack.ProtoTCP)
	s := &conntrack.Snapshot{Time: now, Interval: time.Second, Flows: conntrack.Pointers(fs), TableFlows: flows, Filter: filter,
		Health: conntrack.Health{Accounting: true, Timestamps: true, KernelFlows: flows, RefreshEvery: time.Second}}
	var buf bytes.Buffer
	err := report.Prepare(s, report.Options{Host: node}).Encode(&buf)
	return buf.Bytes(), err
}

// tmux is a private tmux server for the screen measurements.
type tmux struct{ sock string }

func (t *tmux) run(args ...string) (string, error) {
	out, err := exec.Command("tmux", append([]string{"-S", t.sock}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("tmux %s: %w: %s", args[0], err, out)
	}
	return string(out), nil
}

func (t *tmux) open(session, command string) error {
	_, err := t.run("-f", "/dev/null", "new-session", "-d", "-s", session, "-x", "180", "-y", "50", command)
	return err
}

func (t *tmux) capture(session string) (string, error) {
	return t.run("capture-pane", "-p", "-t", session)
}

func (t *tmux) pid(session string) (int, error) {
	out, err := t.run("display-message", "-p", "-t", session, "#{pane_pid}")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(strings.TrimSpace(out))
}

// latencies sends press(i)'s key presses times and measures each until
// its condition holds on screen (polled every millisecond).
func (t *tmux) latencies(session string, presses int, press func(i int) (keys string, on func(string) bool)) ([]time.Duration, error) {
	var out []time.Duration
	for i := range presses {
		keys, on := press(i)
		start := time.Now()
		if _, err := t.run("send-keys", "-t", session, "-l", keys); err != nil {
			return nil, err
		}
		for {
			s, err := t.capture(session)
			if err != nil {
				return nil, err
			}
			if on(s) {
				break
			}
			if time.Since(start) > 10*time.Second {
				return nil, fmt.Errorf("key %q: no change on screen within 10 s; screen:\n%s", keys, s)
			}
			time.Sleep(time.Millisecond)
		}
		out = append(out, time.Since(start))
		time.Sleep(50 * time.Millisecond)
	}
	return out, nil
}

func lastLine(s string) string {
	s = strings.TrimRight(s, "\n")
	return s[strings.LastIndexByte(s, '\n')+1:]
}

// summary is median / 95th percentile / slowest.
func summary(ds []time.Duration) string {
	s := slices.Clone(ds)
	slices.Sort(s)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
	return fmt.Sprintf("median %.1f ms, p95 %.1f ms, slowest %.1f ms (%d presses)",
		ms(s[len(s)/2]), ms(s[len(s)*95/100]), ms(s[len(s)-1]), len(s))
}
