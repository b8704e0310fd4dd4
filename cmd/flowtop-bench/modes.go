package main

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// modes are the measurements of flowtop's exporters and of the router
// daemon, each on its own table and against a reference of the same run.
type modes struct {
	ipfix, metrics, daemonRSS, watch bool
	churn, scrapes                   int
	fleet, fleetFlows                int
	fleetPeriod                      time.Duration
	daemonSecs                       int
}

func (m *modes) any() bool { return m.ipfix || m.metrics || m.daemonRSS || m.watch || m.fleet > 0 }

func (m *modes) run(flowsList string, runs, cpuSecs int, bin string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (network namespaces, ctnetlink)")
	}
	var sizes []int
	for _, s := range strings.Split(flowsList, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return fmt.Errorf("-flows %q: want table sizes like 100000", s)
		}
		sizes = append(sizes, n)
	}
	var err error
	if stateDir, err = os.MkdirTemp("", "flowtop-bench-state"); err != nil {
		return err
	}
	defer os.RemoveAll(stateDir)
	stop := cleanUpOnSignal()
	defer stop()
	fmt.Printf("machine: %d cores, kernel %s\n", nproc(), kernelRelease())
	full, lean := bin, bin
	if bin == "" && (m.ipfix || m.metrics || m.watch || m.fleet > 0) {
		var remove func()
		if full, remove, err = buildFlowtop(""); err != nil {
			return err
		}
		defer remove()
	}
	if bin == "" && m.daemonRSS {
		var remove func()
		if lean, remove, err = buildFlowtop("headless"); err != nil {
			return err
		}
		defer remove()
	}
	if m.fleet > 0 {
		// The viewer reads a broker: no table of its own.
		return measureFleet(full, m.fleet, m.fleetFlows, m.fleetPeriod, 100, time.Duration(cpuSecs)*time.Second)
	}
	for _, n := range sizes {
		if m.ipfix {
			if err := measureIPFIX(full, n, m.churn, runs, time.Duration(cpuSecs)*time.Second); err != nil {
				return err
			}
		}
		if m.metrics {
			if err := measureMetrics(full, n, m.scrapes); err != nil {
				return err
			}
		}
		if m.watch {
			if err := measureWatch(full, n, time.Duration(cpuSecs)*time.Second); err != nil {
				return err
			}
		}
		if m.daemonRSS {
			if err := measureDaemon(lean, n, runs, time.Duration(m.daemonSecs)*time.Second); err != nil {
				return err
			}
		}
	}
	return nil
}

// Cleanups run at an interrupt too: a namespace or a daemon must not
// outlive the bench.
var (
	cleanupMu sync.Mutex
	cleanups  = map[int]func(){}
	cleanupID int
)

// atInterrupt registers f to run if the bench is interrupted; the returned
// function runs it now (once) and unregisters it.
func atInterrupt(f func()) (done func()) {
	cleanupMu.Lock()
	defer cleanupMu.Unlock()
	cleanupID++
	id := cleanupID
	cleanups[id] = f
	return func() {
		cleanupMu.Lock()
		g, ok := cleanups[id]
		delete(cleanups, id)
		cleanupMu.Unlock()
		if ok {
			g()
		}
	}
}

// cleanUpOnSignal runs the registered cleanups and exits on SIGINT or
// SIGTERM; stop ends that.
func cleanUpOnSignal() (stop func()) {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	quit := make(chan struct{})
	go func() {
		select {
		case <-sig:
			cleanupMu.Lock()
			for _, f := range cleanups {
				f()
			}
			cleanupMu.Unlock()
			fmt.Fprintln(os.Stderr, "flowtop-bench: interrupted")
			os.Exit(1)
		case <-quit:
		}
	}()
	return func() { signal.Stop(sig); close(quit) }
}

// benchNS is newNS with a cleanup at an interrupt.
func benchNS() (x *ns, close func(), err error) {
	if x, err = newNS(); err != nil {
		return nil, nil, err
	}
	return x, atInterrupt(x.close), nil
}

// heldTable makes a namespace holding n flows that stay (no churn), for
// the measurements that read a fixed table; close removes it.
func heldTable(n int) (x *ns, close func(), err error) {
	x, closeNS, err := benchNS()
	if err != nil {
		return nil, nil, err
	}
	t, err := newChurnTable(x, n)
	if err != nil {
		closeNS()
		return nil, nil, err
	}
	t.close() // the flows stay: only the churn goes
	return x, closeNS, nil
}

// proc is a process the bench started (flowtop, a broker), with the tail
// of its stderr for error messages.
type proc struct {
	cmd    *exec.Cmd
	stderr *tail
	exited chan struct{}
	done   func()
}

func startProc(env []string, name string, args ...string) (*proc, error) {
	p := &proc{cmd: exec.Command(name, args...), stderr: &tail{}, exited: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stderr = p.stderr
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	go func() { p.cmd.Wait(); close(p.exited) }()
	p.done = atInterrupt(func() {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.exited:
		case <-time.After(20 * time.Second):
			p.cmd.Process.Kill()
			<-p.exited
		}
	})
	return p, nil
}

func (p *proc) pid() int { return p.cmd.Process.Pid }

// running reports an error if the process has exited.
func (p *proc) running() error {
	select {
	case <-p.exited:
		return fmt.Errorf("%s exited: %v: %s", p.cmd.Path, p.cmd.ProcessState, p.stderr)
	default:
		return nil
	}
}

// stop ends the process with SIGTERM (SIGKILL after 20 s) and waits.
func (p *proc) stop() { p.done() }

// tail keeps the last few hundred bytes written to it.
type tail struct {
	mu sync.Mutex
	b  []byte
}

func (t *tail) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.b = append(t.b, p...)
	if len(t.b) > 600 {
		t.b = slices.Clone(t.b[len(t.b)-600:])
	}
	return len(p), nil
}

func (t *tail) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.TrimSpace(string(t.b))
}

// envWithout is the bench's environment without the named variables.
func envWithout(names ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if !slices.Contains(names, k) {
			env = append(env, kv)
		}
	}
	return env
}

// freePort returns a TCP port on loopback that nothing listens on now.
func freePort() (int, error) {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// loadAvg is the machine's one-minute load average.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// waitFor polls cond every 100 ms until it holds, or fails after d.
func waitFor(d time.Duration, what string, cond func() (bool, error)) error {
	deadline := time.Now().Add(d)
	for {
		ok, err := cond()
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// procStatus returns a field of /proc/PID/status in kB (VmRSS, VmHWM).
func procStatus(pid int, field string) int {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, field+":"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return kb
		}
	}
	return 0
}

// snapshotDoc is what the bench reads of flowtop's --write document.
type snapshotDoc struct {
	Time   time.Time `json:"time"`
	Totals struct {
		TableFlows int `json:"table_flows"`
	} `json:"totals"`
	Health struct {
		Events      uint64 `json:"events"`
		Overruns    uint64 `json:"overruns"`
		Resyncs     uint64 `json:"resyncs"`
		KernelFlows int    `json:"kernel_flows"`
		// RefreshIntervalS is how often the table is dumped: flows
		// ended without a DESTROY event are found a dump's worth at a
		// time.
		RefreshIntervalS float64 `json:"refresh_interval_s"`
		Exporters        map[string]struct {
			Published uint64 `json:"published"`
			Dropped   uint64 `json:"dropped"`
			Errors    uint64 `json:"errors"`
		} `json:"exporters"`
	} `json:"health"`
}

// readDoc reads a --write document; ok is false while there is none.
func readDoc(path string) (d snapshotDoc, ok bool, err error) {
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return d, false, nil
	}
	if err != nil {
		return d, false, err
	}
	if err := json.Unmarshal(b, &d); err != nil {
		return d, false, fmt.Errorf("%s: %w", path, err)
	}
	return d, true, nil
}

// quantile is the q-quantile (nearest rank) of sorted values.
func quantile[T any](sorted []T, q float64) T {
	i := int(float64(len(sorted))*q+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
