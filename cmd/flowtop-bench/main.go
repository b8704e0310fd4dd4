// Command flowtop-bench measures flowtop against conntrack(8) on the same
// table: it builds a network namespace, fills its conntrack table with N
// flows through ctnetlink Create, and times a full read of it by
// `flowtop --once -t 0`, by `conntrack -L` and by a raw netlink dump that
// decodes nothing (the floor). It also measures steady CPU at a 1 s
// interval and a burst of new flows while flowtop runs. Figures are given
// as ratios to conntrack -L, since the machines it runs on are noisy.
//
// Run as root: go run ./cmd/flowtop-bench -flows 10000,100000
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mdlayher/netlink"
	tconntrack "github.com/ti-mo/conntrack"

	"github.com/flowtop/flowtop/conntrack/ctgen"
	"github.com/flowtop/flowtop/conntrack/kernel"
	"golang.org/x/sys/unix"
)

func main() {
	flowsFlag := flag.String("flows", "10000,100000", "table sizes to measure, comma separated")
	runs := flag.Int("runs", 3, "runs per measurement (the median is reported)")
	burst := flag.Int("burst", 50000, "new flows created within about a second while flowtop runs (0: skip)")
	cpuSecs := flag.Int("cpu-seconds", 10, "how long steady CPU is measured (0: skip)")
	bin := flag.String("flowtop", "", "flowtop binary (default: build ./cmd/flowtop)")
	raiseMax := flag.Bool("raise-max", false, "raise the host's net.netfilter.nf_conntrack_max (a global limit) for tables bigger than it, restoring it at the end")
	hold := flag.Int("hold", 0, "only build a namespace holding this many flows, print its name and keep it until interrupted (for profiling by hand)")
	var m modes
	flag.BoolVar(&m.ipfix, "ipfix", false, "measure the IPFIX exporter instead: -churn flows ending per second on each -flows table, every record counted at a collector, flowtop's CPU with --ipfix and without")
	flag.IntVar(&m.churn, "churn", 5000, "with -ipfix: flows deleted (and as many created) per second")
	flag.BoolVar(&m.metrics, "metrics", false, "measure /metrics scrapes instead: -scrapes scrapes of flowtop --no-ui --metrics-listen on each -flows table, next to conntrack -L")
	flag.IntVar(&m.scrapes, "scrapes", 20, "with -metrics: scrapes per variant")
	flag.BoolVar(&m.watch, "watch", false, "measure a watched router instead: flowtop --no-ui --mqtt on each -flows table, -cpu-seconds unwatched then watched by a viewer at 1 s (gzip off and on): its CPU and the bytes it sends to the broker")
	flag.IntVar(&m.fleet, "fleet", 0, "measure the fleet view instead: this many simulated nodes publish to a broker, flowtop --remote shows them in tmux: key-to-screen latency on the Nodes tab and the viewer's CPU")
	flag.IntVar(&m.fleetFlows, "fleet-flows", 50, "with -fleet: flows in each node's document")
	flag.DurationVar(&m.fleetPeriod, "fleet-period", 10*time.Second, "with -fleet: how often each node publishes")
	flag.BoolVar(&m.daemonRSS, "daemon-rss", false, "measure the lean router daemon (-tags headless) instead: RSS and CPU of --no-ui --mqtt on each -flows table, with GOMEMLIMIT=16MiB and without")
	flag.IntVar(&m.daemonSecs, "daemon-seconds", 60, "with -daemon-rss: how long each daemon runs before its RSS is read")
	flag.Parse()
	restore := func() {}
	if *raiseMax {
		var err error
		flows := *flowsFlag
		if *hold > 0 {
			flows = strconv.Itoa(*hold)
		}
		if restore, err = raiseConntrackMax(flows, *burst); err != nil {
			fmt.Fprintln(os.Stderr, "flowtop-bench:", err)
			os.Exit(1)
		}
	}
	var err error
	switch {
	case *hold > 0:
		err = holdTable(*hold)
	case m.any():
		err = m.run(*flowsFlag, *runs, *cpuSecs, *bin)
	default:
		err = run(*flowsFlag, *runs, *burst, *cpuSecs, *bin)
	}
	restore()
	if err != nil {
		fmt.Fprintln(os.Stderr, "flowtop-bench:", err)
		os.Exit(1)
	}
}

const conntrackMax = "/proc/sys/net/netfilter/nf_conntrack_max"

// raiseConntrackMax lifts the global conntrack limit above the biggest
// table asked for. The limit is the init namespace's; other namespaces
// only read it, so a million-flow table needs it raised.
func raiseConntrackMax(flowsList string, burst int) (restore func(), err error) {
	need := burst
	for _, s := range strings.Split(flowsList, ",") {
		n, _ := strconv.Atoi(strings.TrimSpace(s))
		need = max(need, n)
	}
	b, err := os.ReadFile(conntrackMax)
	if err != nil {
		return nil, err
	}
	old := strings.TrimSpace(string(b))
	if cur, _ := strconv.Atoi(old); cur >= need+need/10 {
		return func() {}, nil
	}
	if err := os.WriteFile(conntrackMax, []byte(strconv.Itoa(need+need/10)), 0o644); err != nil {
		return nil, fmt.Errorf("raise %s: %w", conntrackMax, err)
	}
	fmt.Fprintf(os.Stderr, "(nf_conntrack_max raised from %s to %d for the run)\n", old, need+need/10)
	return func() { os.WriteFile(conntrackMax, []byte(old), 0o644) }, nil
}

// gnuTime measures peak RSS (Debian package "time").
const gnuTime = "/usr/bin/time"

// stateDir is flowtop's --state-dir in every run: a directory of the
// bench's own, as flowtop refuses one others can write (such as /tmp).
var stateDir string

func run(flowsList string, runs, burst, cpuSecs int, bin string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (network namespaces, ctnetlink)")
	}
	var err error
	if stateDir, err = os.MkdirTemp("", "flowtop-bench-state"); err != nil {
		return err
	}
	defer os.RemoveAll(stateDir)
	if _, err := os.Stat(gnuTime); err != nil {
		return fmt.Errorf("needs GNU time at %s (apt-get install -y time) to measure peak RSS", gnuTime)
	}
	if bin == "" {
		var remove func()
		if bin, remove, err = buildFlowtop(""); err != nil {
			return err
		}
		defer remove()
	}
	fmt.Printf("machine: %d cores, kernel %s\n\n", nproc(), kernelRelease())
	fmt.Printf("%-9s %-22s %10s %10s %8s %8s\n", "flows", "reader", "time", "peak RSS", "x time", "x RSS")
	for _, s := range strings.Split(flowsList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("-flows: %w", err)
		}
		if err := measureTable(bin, n, runs, cpuSecs); err != nil {
			return err
		}
	}
	if burst > 0 {
		return measureBurst(bin, burst)
	}
	return nil
}

// buildFlowtop builds ./cmd/flowtop static, as the README does, with the
// given build tags; remove deletes it.
func buildFlowtop(tags string) (bin string, remove func(), err error) {
	dir, err := os.MkdirTemp("", "flowtop-bench")
	if err != nil {
		return "", nil, err
	}
	bin = filepath.Join(dir, "flowtop")
	build := exec.Command("go", "build", "-tags", tags, "-o", bin, "./cmd/flowtop")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("build flowtop: %v: %.300s", err, out)
	}
	return bin, func() { os.RemoveAll(dir) }, nil
}

// ns is a throw-away network namespace.
type ns struct{ name string }

func newNS() (*ns, error) {
	n := &ns{name: fmt.Sprintf("ftbench%d_%d", os.Getpid(), time.Now().UnixNano()%100000)}
	if out, err := exec.Command("ip", "netns", "add", n.name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add: %v: %s", err, out)
	}
	// Tables big enough for the run.
	exec.Command("ip", "netns", "exec", n.name, "sysctl", "-qw", "net.netfilter.nf_conntrack_max=4000000").Run()
	return n, nil
}

func (n *ns) path() string { return "/var/run/netns/" + n.name }
func (n *ns) close()       { exec.Command("ip", "netns", "del", n.name).Run() }

func (n *ns) count() int {
	b, err := exec.Command("ip", "netns", "exec", n.name, "cat", "/proc/sys/net/netfilter/nf_conntrack_count").Output()
	if err != nil {
		return -1
	}
	v, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return v
}

// fill creates count UDP flows, numbered from first, through ctnetlink,
// that the kernel expires after timeout unless something refreshes them.
func (n *ns) fill(first, count int, timeout time.Duration) (time.Duration, error) {
	f, err := os.Open(n.path())
	if err != nil {
		return 0, err
	}
	defer f.Close()
	c, err := tconntrack.Dial(&netlink.Config{NetNS: int(f.Fd())})
	if err != nil {
		return 0, fmt.Errorf("dial ctnetlink: %w", err)
	}
	defer c.Close()
	start := time.Now()
	for i := first; i < first+count; i++ {
		src, dst, sport, dport := benchFlow(i)
		fl := tconntrack.NewFlow(17, 0, src, dst, sport, dport, uint32(timeout/time.Second), 0)
		if err := c.Create(fl); err != nil {
			return 0, fmt.Errorf("create flow %d: %w", i, err)
		}
	}
	return time.Since(start), nil
}

type result struct {
	wall time.Duration
	rss  int64 // KiB
}

// timeIn runs a command inside the namespace x and returns its wall time
// and peak RSS. The command is started from a thread switched into the
// namespace, so that no wrapper (ip netns exec, a shell) adds its own
// memory to the child's peak RSS or its time to the wall time.
func timeIn(x *ns, name string, args ...string) (result, error) {
	type out struct {
		r   result
		err error
	}
	done := make(chan out, 1)
	go func() {
		// Never unlocked: the thread ends with the goroutine, so it cannot
		// run other code in the wrong namespace.
		runtime.LockOSThread()
		f, err := os.Open(x.path())
		if err != nil {
			done <- out{err: err}
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- out{err: fmt.Errorf("setns: %w", err)}
			return
		}
		// GNU time reports the peak RSS of the command alone: a child of
		// this (large) Go process would inherit its high-water mark.
		cmd := exec.Command(gnuTime, append([]string{"-f", "flowtop-bench %M", name}, args...)...)
		var stderr strings.Builder
		cmd.Stderr = &stderr // stdout goes to /dev/null
		start := time.Now()
		err = cmd.Run()
		wall := time.Since(start)
		if err != nil {
			done <- out{err: fmt.Errorf("%s %s: %v: %.300s", name, strings.Join(args, " "), err, stderr.String())}
			return
		}
		var rss int64
		if i := strings.LastIndex(stderr.String(), "flowtop-bench "); i >= 0 {
			fmt.Sscan(stderr.String()[i+len("flowtop-bench "):], &rss)
		}
		done <- out{r: result{wall, rss}}
	}()
	o := <-done
	return o.r, o.err
}

// holdTable fills a namespace with n flows and keeps it until SIGINT or
// SIGTERM, so that flowtop can be profiled by hand on a known table.
func holdTable(n int) error {
	x, err := newNS()
	if err != nil {
		return err
	}
	defer x.close()
	// A day: the table must not empty itself while someone profiles.
	if _, err := x.fill(0, n, 24*time.Hour); err != nil {
		return err
	}
	fmt.Printf("%s holds %d flows (for a day); interrupt to delete it\n", x.path(), x.count())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	return nil
}

func median(rs []result) result {
	sort.Slice(rs, func(i, j int) bool { return rs[i].wall < rs[j].wall })
	m := rs[len(rs)/2]
	sort.Slice(rs, func(i, j int) bool { return rs[i].rss < rs[j].rss })
	m.rss = rs[len(rs)/2].rss
	return m
}

func measureTable(bin string, n, runs, cpuSecs int) error {
	x, err := newNS()
	if err != nil {
		return err
	}
	defer x.close()
	took, err := x.fill(0, n, 10*time.Minute) // longer than a run
	if err != nil {
		return err
	}
	got := x.count()
	fmt.Fprintf(os.Stderr, "(%d flows created in %v; kernel holds %d)\n", n, took.Round(time.Millisecond), got)

	readers := []struct {
		name string
		fn   func() (result, error)
	}{
		{"conntrack -L", func() (result, error) {
			return timeIn(x, "conntrack", "-L")
		}},
		{"flowtop --once -t 0", func() (result, error) {
			return timeIn(x, bin, "--once", "-t", "0", "--limit", "10", "-46TUDIS", "-n", "-G", "--state-dir", stateDir)
		}},
		{"  same, every flow", func() (result, error) {
			// No --limit: the table is built and every flow written.
			return timeIn(x, bin, "--once", "-t", "0", "-46TUDIS", "-n", "-G", "--state-dir", stateDir)
		}},
		{"raw dump (floor)", func() (result, error) { return rawDump(x) }},
	}
	// Round-robin, so that the machine's noise (other work on the same
	// cores comes and goes) falls on every reader alike.
	rs := make([][]result, len(readers))
	for range runs {
		for i, r := range readers {
			res, err := r.fn()
			if err != nil {
				return err
			}
			rs[i] = append(rs[i], res)
		}
	}
	var ref result
	for i, r := range readers {
		m := median(rs[i])
		if i == 0 {
			ref = m
		}
		rss := "-"
		xrss := "-"
		if m.rss > 0 {
			rss = fmt.Sprintf("%.1f MB", float64(m.rss)/1024)
			xrss = fmt.Sprintf("%.2f", float64(m.rss)/float64(ref.rss))
		}
		fmt.Printf("%-9d %-22s %10s %10s %8.2f %8s\n", n, r.name, m.wall.Round(time.Millisecond), rss,
			float64(m.wall)/float64(ref.wall), xrss)
	}
	if cpuSecs > 0 {
		cpu, rss, err := steadyCPU(bin, x, time.Duration(cpuSecs)*time.Second)
		if err != nil {
			return err
		}
		fmt.Printf("%-9d %-22s %9.1f%% %7.1f MB   (steady CPU of one core at -t 1, peak RSS)\n", n, "flowtop --batch -t 1", cpu, rss)
		if _, err := exec.LookPath("tmux"); err != nil {
			fmt.Printf("%-9d %-22s   skipped: tmux is not installed\n", n, "flowtop -t 1 (screen)")
			return nil
		}
		cpu, rss, err = steadyScreen(bin, x, time.Duration(cpuSecs)*time.Second)
		if err != nil {
			return err
		}
		fmt.Printf("%-9d %-22s %9.1f%% %7.1f MB   (the same, on a 200x60 screen in tmux)\n", n, "flowtop -t 1 (screen)", cpu, rss)
	}
	return nil
}

// steadyScreen is steadyCPU for the interactive screen: flowtop runs in a
// private tmux server's 200x60 window, showing every flow.
func steadyScreen(bin string, x *ns, d time.Duration) (float64, float64, error) {
	dir, err := os.MkdirTemp("", "flowtop-bench-tmux")
	if err != nil {
		return 0, 0, err
	}
	defer os.RemoveAll(dir)
	sock := filepath.Join(dir, "sock")
	tmux := func(args ...string) (string, error) {
		out, err := exec.Command("tmux", append([]string{"-S", sock}, args...)...).CombinedOutput()
		if err != nil {
			return "", fmt.Errorf("tmux %s: %w: %s", args[0], err, out)
		}
		return strings.TrimSpace(string(out)), nil
	}
	command := fmt.Sprintf("exec %s --netns %s -t 1 -46TUDIS -n -G --state-dir %s", bin, x.path(), stateDir)
	if _, err := tmux("-f", "/dev/null", "new-session", "-d", "-x", "200", "-y", "60", command); err != nil {
		return 0, 0, fmt.Errorf("the screen measurement needs tmux: %w", err)
	}
	defer tmux("kill-server")
	out, err := tmux("display-message", "-p", "#{pane_pid}")
	if err != nil {
		return 0, 0, err
	}
	pid, err := strconv.Atoi(out)
	if err != nil {
		return 0, 0, fmt.Errorf("tmux pane pid %q: %w", out, err)
	}
	cpu := steadyCPUOf(pid, d)
	hwm := peakRSS(pid)
	if screen, err := tmux("capture-pane", "-p"); err != nil || !strings.Contains(screen, "flowtop") {
		return 0, 0, fmt.Errorf("flowtop's screen did not come up (%v):\n%s", err, screen)
	}
	return cpu, hwm, nil
}

// peakRSS is VmHWM of a running process, in MB.
func peakRSS(pid int) float64 { return mb(procStatus(pid, "VmHWM")) }

// rawDump reads the whole table without decoding it, with flowtop's own
// receive loop: the cost of the kernel and the socket alone.
func rawDump(x *ns) (result, error) {
	src, err := kernel.Open(x.path())
	if err != nil {
		return result{}, err
	}
	defer src.Close()
	start := time.Now()
	if _, err := src.DumpRaw(); err != nil {
		return result{}, err
	}
	return result{wall: time.Since(start)}, nil
}

// steadyCPU runs flowtop --batch -t 1 for d and returns its CPU use in
// percent of one core (after a warm-up of 2 s) and its peak RSS.
func steadyCPU(bin string, x *ns, d time.Duration) (float64, float64, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--batch", "-t", "1", "--limit", "10", "-46TUDIS", "-n", "-G",
		"--netns", x.path(), "--state-dir", stateDir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<26)
		for sc.Scan() {
		}
	}()
	cpu := steadyCPUOf(cmd.Process.Pid, d)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return cpu, float64(ru.Maxrss) / 1024, nil
}

// steadyCPUOf returns the CPU use of process pid over d, in percent of one
// core, after a warm-up of 2 s.
func steadyCPUOf(pid int, d time.Duration) float64 {
	time.Sleep(2 * time.Second)
	c0 := cpuTicks(pid)
	t0 := time.Now()
	time.Sleep(d)
	c1 := cpuTicks(pid)
	const hz = 100 // USER_HZ
	return float64(c1-c0) / hz / time.Since(t0).Seconds() * 100
}

func cpuTicks(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	u, _ := strconv.ParseInt(fields[11], 10, 64)
	st, _ := strconv.ParseInt(fields[12], 10, 64)
	return u + st
}

// measureBurst creates n new flows while flowtop --batch runs and checks
// the snapshot 2 s later holds every flow the kernel holds.
func measureBurst(bin string, n int) error {
	x, err := newNS()
	if err != nil {
		return err
	}
	defer x.close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--batch", "-t", "1", "--limit", "1", "-46TUDIS", "-n", "-G",
		"--netns", x.path(), "--state-dir", stateDir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer cmd.Wait()
	defer cmd.Process.Signal(syscall.SIGTERM)
	type doc struct {
		Time   time.Time `json:"time"`
		Totals struct {
			Flows int `json:"flows"`
		} `json:"totals"`
		Health struct {
			Overruns, Resyncs uint64
			KernelFlows       int `json:"kernel_flows"`
		} `json:"health"`
	}
	docs := make(chan doc, 64)
	go func() {
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<26)
		for sc.Scan() {
			var d doc
			if json.Unmarshal(sc.Bytes(), &d) == nil {
				docs <- d
			}
		}
		close(docs)
	}()
	<-docs // flowtop is up
	nsf, err := os.Open(x.path())
	if err != nil {
		return err
	}
	defer nsf.Close()
	msgs, err := ctgen.UDPFlowMessages(n)
	if err != nil {
		return err
	}
	start := time.Now()
	if err := ctgen.SendBatched(int(nsf.Fd()), msgs); err != nil {
		return fmt.Errorf("burst: %w", err)
	}
	end := time.Now()
	took := end.Sub(start)
	kernel := x.count()
	var last doc
	deadline := time.After(2*time.Second + 100*time.Millisecond)
loop:
	for {
		select {
		case d, ok := <-docs:
			if !ok {
				break loop
			}
			last = d
		case <-deadline:
			break loop
		}
	}
	fmt.Printf("\nburst: %d flows created in %v; 2 s later flowtop's snapshot (%v after the burst) holds %d of the kernel's %d (%.1f%%), overruns %d, resyncs %d\n",
		n, took.Round(time.Millisecond), last.Time.Sub(end).Round(time.Millisecond), last.Totals.Flows, kernel,
		100*float64(last.Totals.Flows)/float64(kernel), last.Health.Overruns, last.Health.Resyncs)
	return nil
}

func nproc() int {
	b, _ := exec.Command("nproc").Output()
	v, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return v
}

func kernelRelease() string {
	var u unix.Utsname
	unix.Uname(&u)
	return unix.ByteSliceToString(u.Release[:])
}
