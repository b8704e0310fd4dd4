package enrich_test

// The cost of the lookups under a burst: 20,000 new UDP flows while
// `flowtop --batch` runs with every lookup on, then with -n -G (reverse DNS
// and GeoIP off; services and process lookups have no switch and stay on).
// Without --limit every flow is listed in every snapshot, so every flow is
// looked up: the worst case. With --limit 100, as a screen, only the listed
// flows are looked up.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mdlayher/netlink"
	ct "github.com/ti-mo/conntrack"
	"golang.org/x/sys/unix"

	"github.com/flowtop/flowtop/conntrack/nstest"
	"github.com/flowtop/flowtop/report"
)

// burstFlows is the size of the burst; burstDsts how many remote addresses
// per family it spreads over (each one a reverse DNS and GeoIP lookup).
const (
	burstFlows = 20000
	burstDsts  = 250
	// burstWindow is how long after the burst the benchmark follows
	// flowtop's CPU time, to include the process lookups' retries.
	burstWindow = 3 * time.Second
)

// burstResult is what one burst measured.
type burstResult struct {
	create   time.Duration // creating the flows
	complete time.Duration // from the last flow created to the first snapshot holding all
	cpu      time.Duration // flowtop's CPU time from the burst start to that snapshot
	window   time.Duration // how long after the burst CPU time was followed, if at all
	cpuAfter time.Duration // and to window after the burst
	maxRSS   int           // flowtop's peak resident set, KiB
	snapMB   float64       // size of the complete snapshot line
	geo      bool          // the complete snapshot had dst_geo keys
}

func (r burstResult) String() string {
	after := ""
	if r.window > 0 {
		after = fmt.Sprintf(", %v to %v after", r.cpuAfter.Round(time.Millisecond), r.window)
	}
	return fmt.Sprintf("created in %v; complete %v later; flowtop CPU %v to complete%s; peak RSS %d MiB; snapshot %.1f MB",
		r.create.Round(time.Millisecond), r.complete.Round(time.Millisecond), r.cpu.Round(time.Millisecond),
		after, r.maxRSS>>10, r.snapMB)
}

// burstLine is what the test reads of a snapshot line.
type burstLine struct {
	at         time.Time
	flows      int
	tableFlows int
	size       int
	geo, names bool
}

// parseBurstLine reads the totals of a snapshot without decoding its
// flows: they come last in the document, and the line is ~20 MB.
func parseBurstLine(line []byte) (burstLine, error) {
	l := burstLine{at: time.Now(), size: len(line)}
	head := line
	if i := bytes.Index(line, []byte(`,"flows":[`)); i > 0 {
		head = append(line[:i:i], '}')
	}
	var d struct{ Totals report.Totals }
	if err := json.Unmarshal(head, &d); err != nil {
		return l, fmt.Errorf("snapshot: %v: %.300s", err, line)
	}
	l.flows, l.tableFlows = d.Totals.Flows, d.Totals.TableFlows
	l.geo = bytes.Contains(line, []byte(`"dst_geo":`))
	l.names = bytes.Contains(line, []byte(`"dst_name":`))
	return l, nil
}

// procStat returns the CPU time (user + system) of pid.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	i := bytes.LastIndexByte(b, ')')
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("short /proc/%d/stat", pid)
	}
	// Fields 14 and 15 of stat(5), in clock ticks (USER_HZ, 100 on Linux).
	u, _ := strconv.ParseInt(f[11], 10, 64)
	s, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+s) * 10 * time.Millisecond, nil
}

// procMaxRSS returns VmHWM of pid in KiB.
func procMaxRSS(pid int) int {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	return 0
}

// burstFlow returns the i-th flow of the burst: alternately IPv4 and IPv6,
// from the namespace's own address (so the process lookup asks the kernel
// for a socket) to one of burstDsts remote addresses on testPort.
func burstFlow(i int) ct.Flow {
	j := i / 2
	host := byte(1 + j%burstDsts)
	src, dst := netip.MustParseAddr(nstest.AddrA4), netip.AddrFrom4([4]byte{198, 51, 100, host})
	if i%2 == 1 {
		src = netip.MustParseAddr(nstest.AddrA6)
		dst = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 15: host})
	}
	return ct.NewFlow(unix.IPPROTO_UDP, 0, src, dst, uint16(10000+j), testPort, 60, 0)
}

// createFlows creates the burst in ns with ti-mo's Conn.Create on two
// connections at once.
func createFlows(ns *nstest.NS) error {
	nsf, err := os.Open(ns.Path())
	if err != nil {
		return err
	}
	defer nsf.Close()
	const conns = 2
	errs := make(chan error, conns)
	var wg sync.WaitGroup
	for w := range conns {
		c, err := ct.Dial(&netlink.Config{NetNS: int(nsf.Fd())})
		if err != nil {
			return err
		}
		wg.Go(func() {
			defer c.Close()
			for i := w; i < burstFlows; i += conns {
				if err := c.Create(burstFlow(i)); err != nil {
					errs <- fmt.Errorf("create flow %d: %w", i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// burstMode is one way of running flowtop during a burst.
type burstMode struct {
	name    string
	lookups bool // false: -n -G
	limit   int  // --limit, 0 for none
}

var burstModes = []burstMode{
	{"all-listed/on", true, 0},
	{"all-listed/off", false, 0},
	{"limit100/on", true, 100},
	{"limit100/off", false, 100},
}

// runBurst runs one burst with flowtop in mode m and, with a window, follows
// flowtop's CPU time for that long after the burst.
func runBurst(tb testing.TB, m burstMode, window time.Duration) burstResult {
	tb.Helper()
	nstest.Require(tb, "nft")
	bin := flowtopBin(tb)
	a := nstest.New(tb, "burst")
	a.EnableConntrack(tb)
	a.Exec(tb, "ip", "addr", "add", nstest.AddrA4+"/32", "dev", "lo")
	a.Exec(tb, "ip", "-6", "addr", "add", nstest.AddrA6+"/128", "dev", "lo", "nodad")
	netnsEtc(tb, a, "198.51.100.1 burst-1.test\n2001:db8:1::1 burst6-1.test\n")
	geoDir, confDir := tb.TempDir(), tb.TempDir()
	writeGeoDBs(tb, geoDir)
	writeConf(tb, confDir, goodTCPConf)

	args := []string{"--batch", "-t", "1", "-46TUI", "--net", "198.51.100.0/24", "--net", "2001:db8:1::/48",
		"--geoip-dir", geoDir, "--config-dir", confDir, "--state-dir", tb.TempDir()}
	if !m.lookups {
		args = append(args, "-n", "-G")
	}
	if m.limit > 0 {
		args = append(args, "--limit", strconv.Itoa(m.limit))
	}
	// In the namespace (ip netns exec) rather than with --netns, so that the
	// hosts file applies and no reverse DNS query leaves the namespace.
	cmd := a.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	pid := cmd.Process.Pid
	lines := make(chan burstLine, 64)
	readErr := make(chan error, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer cmd.Wait()
		r := bufio.NewReaderSize(stdout, 1<<20)
		for {
			line, err := r.ReadBytes('\n')
			if err != nil {
				close(lines)
				return
			}
			l, err := parseBurstLine(line)
			if err != nil {
				select {
				case readErr <- err:
				default:
				}
				continue
			}
			select {
			case lines <- l:
			default: // never stall flowtop
			}
		}
	}()
	stop := func() {
		// SIGTERM: flowtop restores the sysctls and ends its watchdog, which
		// would otherwise still be writing to the state dir when the
		// test removes it.
		cmd.Process.Signal(unix.SIGTERM)
		select {
		case <-done:
		case <-time.After(nstest.Patience):
			tb.Errorf("flowtop pid %d still running %v after SIGTERM", pid, nstest.Patience)
			cmd.Process.Kill()
			<-done
		}
	}
	defer stop()
	next := func(deadline time.Time) (burstLine, bool) {
		select {
		case l, ok := <-lines:
			if !ok {
				tb.Fatalf("flowtop ended: stderr:\n%s", nstest.Truncate(stderr.String()))
			}
			return l, true
		case err := <-readErr:
			tb.Fatal(err)
		case <-time.After(time.Until(deadline)):
		}
		return burstLine{}, false
	}
	if _, ok := next(time.Now().Add(nstest.Patience)); !ok {
		tb.Fatalf("no first snapshot from flowtop within %v; stderr:\n%s", nstest.Patience, nstest.Truncate(stderr.String()))
	}
	if b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm"); strings.TrimSpace(string(b)) != "flowtop" {
		tb.Fatalf("pid %d is %q, not flowtop", pid, b)
	}

	var r burstResult
	cpu0, err := procCPU(pid)
	if err != nil {
		tb.Fatal(err)
	}
	start := time.Now()
	if err := createFlows(a); err != nil {
		tb.Fatal(err)
	}
	end := time.Now()
	r.create = end.Sub(start)
	for {
		// How soon is what the benchmark reports; the deadline only
		// stops a run that would never get there.
		l, ok := next(end.Add(nstest.Patience))
		if !ok {
			tb.Fatalf("no snapshot within %v of the burst holds its %d flows", nstest.Patience, burstFlows)
		}
		if l.flows >= burstFlows {
			cpu, _ := procCPU(pid)
			r.complete, r.cpu = l.at.Sub(end), cpu-cpu0
			r.snapMB, r.geo = float64(l.size)/1e6, l.geo
			break
		}
	}
	if window > 0 {
		// A measurement window, not a wait for anything.
		time.Sleep(time.Until(end.Add(window)))
		cpu, _ := procCPU(pid)
		r.window, r.cpuAfter = window, cpu-cpu0
	}
	r.maxRSS = procMaxRSS(pid)
	return r
}

// TestBurstLookups runs a 20,000-flow burst with the lookups on and off:
// a snapshot must come to hold every flow, with GeoIP data exactly when
// the lookups are on. The times are logged; BenchmarkBurstLookups
// measures them.
func TestBurstLookups(t *testing.T) {
	if testing.Short() {
		t.Skip("burst: -short")
	}
	for _, m := range burstModes {
		if m.limit == 0 {
			// Listing all 20,000 flows as JSON every second is slow under
			// -race next to the other packages' tests: a benchmark, not a
			// test (BenchmarkBurstLookups).
			continue
		}
		t.Run(m.name, func(t *testing.T) {
			r := runBurst(t, m, 0)
			t.Logf("%s: %v", m.name, r)
			if r.geo != m.lookups {
				t.Errorf("%s: dst_geo in the snapshot: %v", m.name, r.geo)
			}
		})
	}
}

// BenchmarkBurstLookups reports, per 20,000-flow burst, the time from the
// last flow created to a complete snapshot and flowtop's CPU time.
// ns/op includes setting up the namespace and creating the flows.
func BenchmarkBurstLookups(b *testing.B) {
	for _, m := range burstModes {
		b.Run(m.name, func(b *testing.B) {
			var complete, cpu, cpuAfter time.Duration
			for range b.N {
				r := runBurst(b, m, burstWindow)
				complete += r.complete
				cpu += r.cpu
				cpuAfter += r.cpuAfter
			}
			n := float64(b.N)
			b.ReportMetric(float64(complete.Milliseconds())/n, "ms-to-complete")
			b.ReportMetric(float64(cpu.Milliseconds())/n, "cpu-ms-to-complete")
			b.ReportMetric(float64(cpuAfter.Milliseconds())/n, "cpu-ms-3s")
		})
	}
}
