package enrich_test

// End-to-end tests of the lookups: the real flowtop binary runs inside a
// test namespace (ip netns exec, so /etc/netns/NAME/hosts is its /etc/hosts)
// with a generated GeoIP database and its own tcp.conf/udp.conf, while a
// helper process the test starts holds TCP and UDP connections to the peer
// namespace. The JSON must carry name, service, GeoIP and owning process.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack/nstest"
	"github.com/flowtop/flowtop/geo"
	"github.com/flowtop/flowtop/geo/geotest"
	"github.com/flowtop/flowtop/report"
)

// helperEnv, when set, makes the test binary the traffic helper: the value
// lists the connections to open ("tcp/192.0.2.2:8443,udp/...").
const helperEnv = "FLOWTOP_ENRICH_E2E_HELPER"

// testPort is the peer's port of every connection; the test's tcp.conf and
// udp.conf name it.
const testPort = 8443

func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		os.Exit(helperMain(spec))
	}
	code := m.Run()
	nstest.RemoveFlowtop()
	os.Exit(code)
}

// helperMain opens the connections of spec, makes one echo round trip on
// each, prints "ready PID COMM" and holds them (UDP ones kept alive) until
// its stdin closes.
func helperMain(spec string) int {
	var udp []net.Conn
	for item := range strings.SplitSeq(spec, ",") {
		network, addr, _ := strings.Cut(item, "/")
		c, err := net.DialTimeout(network, addr, nstest.Patience)
		if err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 1
		}
		c.SetDeadline(time.Now().Add(nstest.Patience))
		if _, err := c.Write([]byte("flowtop e2e")); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			return 1
		}
		if _, err := c.Read(make([]byte, 64)); err != nil {
			fmt.Fprintf(os.Stderr, "helper: no echo from %s %s: %v\n", network, addr, err)
			return 1
		}
		c.SetDeadline(time.Time{})
		if strings.HasPrefix(network, "udp") {
			udp = append(udp, c)
		}
		go io.Copy(io.Discard, c) // drain echoes
	}
	go func() {
		// UDP flows expire after 30 s without traffic.
		for range time.Tick(time.Second) {
			for _, c := range udp {
				c.Write([]byte("keepalive"))
			}
		}
	}()
	comm, _ := os.ReadFile("/proc/self/comm")
	fmt.Printf("ready %d %s\n", os.Getpid(), strings.TrimSpace(string(comm)))
	io.Copy(io.Discard, os.Stdin)
	return 0
}

// flowtopBin returns the flowtop binary, built on first use.
func flowtopBin(t testing.TB) string { return nstest.Flowtop(t) }

// target is one connection of the helper and what flowtop should say about
// it.
type target struct {
	proto   string // "tcp" or "udp", as in the JSON
	dst     netip.Addr
	name    string // reverse DNS of dst, from the namespace's hosts file
	service string // from the test's tcp.conf / udp.conf
	geo     report.Geo
}

var (
	geoNL = geo.Info{Country: "NL", CountryName: "Netherlands", City: "Amsterdam"}
	geoDE = geo.Info{Country: "DE", CountryName: "Germany", City: "Berlin"}
	geoUS = geo.Info{Country: "US", CountryName: "United States", City: "Chicago"}
	asNL  = geo.Info{ASN: 64500, ASOrg: "E2E Net NL"}
	asDE  = geo.Info{ASN: 64501, ASOrg: "E2E Net DE"}
	asUS  = geo.Info{ASN: 64502, ASOrg: "E2E Net US"}
)

func reportGeo(loc, as geo.Info) report.Geo {
	return report.Geo{Country: loc.Country, CountryName: loc.CountryName, City: loc.City, ASN: as.ASN, ASOrg: as.ASOrg}
}

var targets = []target{
	{"tcp", netip.MustParseAddr(nstest.AddrB4), "peer-b.test", "e2e-svc", reportGeo(geoNL, asNL)},
	{"tcp", netip.MustParseAddr(nstest.AddrB6), "peer-b6.test", "e2e-svc", reportGeo(geoDE, asDE)},
	{"udp", netip.MustParseAddr(nstest.AddrB4), "peer-b.test", "e2e-udp", reportGeo(geoNL, asNL)},
	{"udp", netip.MustParseAddr(nstest.AddrB6), "peer-b6.test", "e2e-udp", reportGeo(geoDE, asDE)},
}

func (tg target) String() string {
	return fmt.Sprintf("%s to %s", tg.proto, netip.AddrPortFrom(tg.dst, testPort))
}

// find returns the flow of tg in d, or nil.
func (tg target) find(d *report.Document) *report.Flow {
	for i := range d.Flows {
		f := &d.Flows[i]
		if dst, err := netip.ParseAddr(f.Dst); err == nil && f.Proto == tg.proto && dst.Unmap() == tg.dst && f.Dport == testPort {
			return f
		}
	}
	return nil
}

// writeGeoDBs writes a City database and an ASN database covering the test
// networks into dir.
func writeGeoDBs(t testing.TB, dir string) {
	t.Helper()
	geotest.WriteCity(t, filepath.Join(dir, "GeoLite2-City.mmdb"), map[string]geo.Info{
		"192.0.2.0/24": geoNL, "2001:db8::/32": geoDE, "198.51.100.0/24": geoUS,
	})
	writeASNDB(t, dir)
}

func writeASNDB(t testing.TB, dir string) {
	t.Helper()
	geotest.WriteASN(t, filepath.Join(dir, "GeoLite2-ASN.mmdb"), map[string]geo.Info{
		"192.0.2.0/24": asNL, "2001:db8::/32": asDE, "198.51.100.0/24": asUS,
	})
}

// writeConf writes the test's service maps into dir: tcp.conf is given,
// udp.conf names testPort e2e-udp.
func writeConf(t testing.TB, dir, tcpConf string) {
	t.Helper()
	for name, text := range map[string]string{
		"tcp.conf": tcpConf,
		"udp.conf": fmt.Sprintf("# flowtop enrich e2e\n%d, e2e-udp\n", testPort),
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

var goodTCPConf = fmt.Sprintf("# flowtop enrich e2e\n%d, e2e-svc\n", testPort)

// netnsEtc writes /etc/netns/NAME/{hosts,resolv.conf}, which ip netns exec
// bind-mounts over /etc for what it runs in namespace NAME, and removes
// them when the test ends. resolv.conf points at a dead server on the
// namespace's loopback so that addresses missing from hosts fail at once
// and no query leaves the namespace.
func netnsEtc(t testing.TB, ns *nstest.NS, hosts string) {
	t.Helper()
	const root = "/etc/netns"
	_, err := os.Stat(root)
	createdRoot := errors.Is(err, os.ErrNotExist)
	dir := filepath.Join(root, ns.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		os.RemoveAll(dir)
		if createdRoot {
			os.Remove(root) // only when empty: another test may use it
		}
	})
	for name, text := range map[string]string{
		"hosts":       "127.0.0.1 localhost\n::1 localhost\n" + hosts,
		"resolv.conf": "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// scene is a namespace pair with echo servers in B on testPort and a
// helper process in A connected to them over TCP and UDP, IPv4 and IPv6.
type scene struct {
	a, b       *nstest.NS
	helperPID  int
	helperComm string
}

func newScene(t *testing.T) *scene {
	t.Helper()
	nstest.Require(t, "nft")
	flowtopBin(t)
	s := &scene{}
	s.a, s.b = nstest.Pair(t)
	netnsEtc(t, s.a, fmt.Sprintf("%s peer-b.test\n%s peer-b6.test\n", nstest.AddrB4, nstest.AddrB6))
	startEchoServers(t, s.b)

	var spec []string
	for _, tg := range targets {
		spec = append(spec, tg.proto+"/"+netip.AddrPortFrom(tg.dst, testPort).String())
	}
	cmd := s.a.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+strings.Join(spec, ","))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper: %v", err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		stdin.Close() // the helper's signal to end
		select {
		case <-exited:
		case <-time.After(nstest.Patience):
			cmd.Process.Kill()
			<-exited
		}
	})
	ready := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		ready <- line
		io.Copy(io.Discard, stdout)
		cmd.Wait()
		close(exited)
	}()
	select {
	case line := <-ready:
		f := strings.Fields(line)
		if len(f) != 3 || f[0] != "ready" {
			t.Fatalf("helper did not start: %q; stderr:\n%s", line, nstest.Truncate(stderr.String()))
		}
		s.helperPID, _ = strconv.Atoi(f[1])
		s.helperComm = f[2]
	case <-time.After(nstest.Patience):
		t.Fatalf("helper not ready after %v; stderr:\n%s", nstest.Patience, nstest.Truncate(stderr.String()))
	}
	return s
}

// startEchoServers listens on testPort of B's addresses, TCP and UDP, and
// echoes everything until the test ends.
func startEchoServers(t *testing.T, b *nstest.NS) {
	t.Helper()
	for _, addr := range []string{nstest.AddrB4, nstest.AddrB6} {
		hostPort := net.JoinHostPort(addr, strconv.Itoa(testPort))
		nstest.EchoTCP(t, b, hostPort)
		nstest.EchoUDP(t, b, hostPort)
	}
}

// syncBuffer is a bytes.Buffer for one writer and one reader goroutine.
type syncBuffer = nstest.SyncBuffer

// run runs flowtop in A (ip netns exec, so the hosts file applies) to its
// end and returns stdout, stderr and the exit status.
func (s *scene) run(t *testing.T, args ...string) (stdout []byte, stderr string, code int) {
	t.Helper()
	cmd := s.a.Command(flowtopBin(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// ip netns exec execs flowtop in place: the PID is flowtop's.
	timer := time.AfterFunc(nstest.Patience, func() { cmd.Process.Kill() })
	err := cmd.Wait()
	if !timer.Stop() {
		t.Fatalf("flowtop %s: killed after %v; stderr:\n%s", strings.Join(args, " "), nstest.Patience, nstest.Truncate(errb.String()))
	}
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("flowtop %s: %v", strings.Join(args, " "), err)
	}
	return out.Bytes(), errb.String(), cmd.ProcessState.ExitCode()
}

// once runs `flowtop --once` with args, expects exit 0, and decodes the
// document.
func (s *scene) once(t *testing.T, args ...string) (*report.Document, string) {
	t.Helper()
	stdout, stderr, code := s.run(t, append([]string{"--once", "-46TUI"}, args...)...)
	if code != 0 {
		t.Fatalf("flowtop %s: exit %d; stderr:\n%s", strings.Join(args, " "), code, nstest.Truncate(stderr))
	}
	var d report.Document
	if err := json.Unmarshal(stdout, &d); err != nil {
		t.Fatalf("flowtop %s: output is not a JSON document: %v\n%s", strings.Join(args, " "), err, nstest.Truncate(string(stdout)))
	}
	return &d, stderr
}

// poll runs flowtop --once with args until check finds no problem (the
// asynchronous lookups may need more than one interval on a busy machine)
// and fails the test after deadline.
func (s *scene) poll(t *testing.T, within time.Duration, check func(*report.Document) []string, args ...string) *report.Document {
	t.Helper()
	deadline := time.Now().Add(within)
	for attempt := 1; ; attempt++ {
		d, stderr := s.once(t, args...)
		problems := check(d)
		if len(problems) == 0 {
			if attempt > 1 {
				t.Logf("flowtop %s: complete on attempt %d", strings.Join(args, " "), attempt)
			}
			return d
		}
		if time.Now().After(deadline) {
			b, _ := json.Marshal(d.Flows)
			t.Fatalf("flowtop %s: after %d runs:\n  %s\nflows: %s\nstderr:\n%s", strings.Join(args, " "), attempt,
				nstest.Truncate(strings.Join(problems, "\n  ")), nstest.Truncate(string(b)), nstest.Truncate(stderr))
		}
	}
}

// checkFlows applies want to the flow of each target, collecting problems.
func checkFlows(d *report.Document, want func(tg target, f *report.Flow) []string) []string {
	var problems []string
	for _, tg := range targets {
		f := tg.find(d)
		if f == nil {
			problems = append(problems, fmt.Sprintf("%v: no flow", tg))
			continue
		}
		for _, p := range want(tg, f) {
			problems = append(problems, fmt.Sprintf("%v: %s", tg, p))
		}
	}
	return problems
}

func wantName(tg target, f *report.Flow) []string {
	if f.DstName != tg.name {
		return []string{fmt.Sprintf("dst_name %q, want %q", f.DstName, tg.name)}
	}
	return nil
}

func wantService(tg target, f *report.Flow) []string {
	if f.Service != tg.service {
		return []string{fmt.Sprintf("service %q, want %q", f.Service, tg.service)}
	}
	return nil
}

func wantGeo(tg target, f *report.Flow) []string {
	if f.DstGeo == nil || *f.DstGeo != tg.geo {
		return []string{fmt.Sprintf("dst_geo %+v, want %+v", f.DstGeo, tg.geo)}
	}
	return nil
}

func (s *scene) wantProcess(_ target, f *report.Flow) []string {
	if f.Process == nil || f.Process.PID != s.helperPID || f.Process.Name != s.helperComm {
		return []string{fmt.Sprintf("process %+v, want pid %d name %q", f.Process, s.helperPID, s.helperComm)}
	}
	return nil
}

func all(checks ...func(target, *report.Flow) []string) func(target, *report.Flow) []string {
	return func(tg target, f *report.Flow) []string {
		var out []string
		for _, c := range checks {
			out = append(out, c(tg, f)...)
		}
		return out
	}
}

// TestFlowtopNamesEndToEnd: name (hosts file), service (--config-dir),
// GeoIP (--geoip-dir) and owning process of real TCP and UDP flows, IPv4
// and IPv6, in flowtop --once; -n drops the names and -G the GeoIP data.
func TestFlowtopNamesEndToEnd(t *testing.T) {
	s := newScene(t)
	geoDir, confDir, stateDir := t.TempDir(), t.TempDir(), t.TempDir()
	writeGeoDBs(t, geoDir)
	writeConf(t, confDir, goodTCPConf)
	common := []string{"-t", "1", "--geoip-dir", geoDir, "--config-dir", confDir, "--state-dir", stateDir}

	d := s.poll(t, nstest.Patience, func(d *report.Document) []string {
		return checkFlows(d, all(wantName, wantService, wantGeo, s.wantProcess))
	}, common...)
	for _, tg := range targets {
		f := tg.find(d)
		t.Logf("%v: dst_name %s, service %s, dst_geo %+v, process %+v", tg, f.DstName, f.Service, *f.DstGeo, *f.Process)
	}

	t.Run("-n", func(t *testing.T) {
		d, _ := s.once(t, append(common, "-n")...)
		for _, f := range d.Flows {
			if f.SrcName != "" || f.DstName != "" {
				t.Errorf("-n: flow %s -> %s has src_name %q dst_name %q", f.Src, f.Dst, f.SrcName, f.DstName)
			}
		}
		for _, p := range checkFlows(d, all(wantService, wantGeo)) {
			t.Error("-n: " + p)
		}
	})
	t.Run("-G", func(t *testing.T) {
		d := s.poll(t, nstest.Patience, func(d *report.Document) []string {
			return checkFlows(d, all(wantName, wantService))
		}, append(common, "-G")...)
		for _, f := range d.Flows {
			if f.SrcGeo != nil || f.DstGeo != nil {
				t.Errorf("-G: flow %s -> %s has src_geo %+v dst_geo %+v", f.Src, f.Dst, f.SrcGeo, f.DstGeo)
			}
		}
	})
}

// systemGeoIP reports whether the system directories flowtop searches
// after --geoip-dir hold a database, which would mask a missing one.
func systemGeoIP() bool {
	for _, dir := range []string{"/usr/share/GeoIP", "/var/lib/GeoIP"} {
		if m, _ := filepath.Glob(filepath.Join(dir, "*.mmdb")); len(m) > 0 {
			return true
		}
	}
	return false
}

// linesWith returns the lines of s containing sub.
func linesWith(s, sub string) []string {
	var out []string
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			out = append(out, strings.TrimSuffix(line, "\n"))
		}
	}
	return out
}

// TestFlowtopGeoIPProblems: a missing database is a one-line hint (none
// with -G), a corrupt one an error naming the file, and neither stops
// flowtop; the good ASN database next to a corrupt City one is used.
func TestFlowtopGeoIPProblems(t *testing.T) {
	s := newScene(t)
	confDir, stateDir := t.TempDir(), t.TempDir()
	writeConf(t, confDir, goodTCPConf)
	common := []string{"-t", "0", "--config-dir", confDir, "--state-dir", stateDir}

	t.Run("missing", func(t *testing.T) {
		if systemGeoIP() {
			t.Skip("a GeoIP database in /usr/share/GeoIP or /var/lib/GeoIP hides a missing one")
		}
		empty := t.TempDir()
		_, stderr := s.once(t, append(common, "--geoip-dir", empty)...)
		hint := linesWith(stderr, "geoip")
		if len(hint) != 1 || !strings.Contains(hint[0], "no database") || !strings.Contains(hint[0], empty) {
			t.Errorf("empty --geoip-dir: want one hint line naming %s, stderr:\n%s", empty, stderr)
		} else {
			t.Logf("hint: %s", hint[0])
		}
		_, stderr = s.once(t, append(common, "--geoip-dir", empty, "-G")...)
		if hint := linesWith(stderr, "geoip"); len(hint) > 0 {
			t.Errorf("-G: want no GeoIP hint, got:\n%s", strings.Join(hint, "\n"))
		}
	})

	t.Run("corrupt", func(t *testing.T) {
		dir := t.TempDir()
		city := filepath.Join(dir, "GeoLite2-City.mmdb")
		junk := make([]byte, 64<<10)
		rand.NewChaCha8([32]byte{'f', 'l', 'o', 'w', 't', 'o', 'p'}).Read(junk)
		if err := os.WriteFile(city, junk, 0o644); err != nil {
			t.Fatal(err)
		}
		writeASNDB(t, dir)
		d, stderr := s.once(t, append(common, "--geoip-dir", dir)...)
		errs := linesWith(stderr, city)
		if len(errs) != 1 || !strings.Contains(errs[0], "invalid MaxMind DB") {
			t.Errorf("corrupt %s: want one error line naming it, stderr:\n%s", city, stderr)
		} else {
			t.Logf("error: %s", errs[0])
		}
		for _, p := range checkFlows(d, func(tg target, f *report.Flow) []string {
			want := report.Geo{ASN: tg.geo.ASN, ASOrg: tg.geo.ASOrg}
			if f.DstGeo == nil || f.DstGeo.ASN != want.ASN || f.DstGeo.ASOrg != want.ASOrg {
				return []string{fmt.Sprintf("dst_geo %+v, want the ASN data %+v", f.DstGeo, want)}
			}
			if !systemGeoIP() && *f.DstGeo != want {
				return []string{fmt.Sprintf("dst_geo %+v, want only the ASN data %+v", f.DstGeo, want)}
			}
			return nil
		}) {
			t.Error(p)
		}
	})
}

// TestFlowtopServicesBadLine: a bad line of --config-dir's tcp.conf is a
// warning naming file and line; the lines after it still name ports.
func TestFlowtopServicesBadLine(t *testing.T) {
	s := newScene(t)
	confDir := t.TempDir()
	writeConf(t, confDir, fmt.Sprintf("# flowtop enrich e2e: line 2 is bad\nnot-a-port, broken\n%d, e2e-svc\n", testPort))
	d, stderr := s.once(t, "-t", "0", "-G", "--config-dir", confDir, "--state-dir", t.TempDir())
	tcpConf := filepath.Join(confDir, "tcp.conf")
	if w := linesWith(stderr, tcpConf+":2:"); len(w) != 1 {
		t.Errorf("want one warning naming %s:2, stderr:\n%s", tcpConf, stderr)
	} else {
		t.Logf("warning: %s", w[0])
	}
	if w := linesWith(stderr, ".conf:"); len(w) != 1 {
		t.Errorf("want only the warning of tcp.conf line 2, got:\n%s", strings.Join(w, "\n"))
	}
	for _, p := range checkFlows(d, wantService) {
		t.Error(p)
	}
}
