package main

// End-to-end tests of the fleet view (--remote): routers are flowtop
// daemons watching namespaces with real traffic and publishing to a real
// mosquitto; the viewer reads that broker. The brokers, the daemons' own
// sockets and the viewer live in a "hub" namespace of the test's, so
// nothing listens on the host's loopback.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack/nstest"
	"github.com/flowtop/flowtop/remote"
)

// hub is the namespace of the brokers and the viewer.
type hub struct {
	t  *testing.T
	ns *nstest.NS
	// routerArgs are added to every router's command line (after the
	// defaults, so they win).
	routerArgs []string
}

func newHub(t *testing.T) *hub {
	nstest.Require(t, "mosquitto")
	return &hub{t: t, ns: nstest.New(t, "hub")}
}

// broker starts a mosquitto on 127.0.0.1:port inside the hub, with the
// extra configuration lines (a bridge), and returns its URL once it
// accepts connections.
func (h *hub) broker(port int, extra ...string) string {
	t := h.t
	t.Helper()
	conf := filepath.Join(t.TempDir(), "mosquitto.conf")
	lines := append([]string{fmt.Sprintf("listener %d 127.0.0.1", port), "allow_anonymous true"}, extra...)
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := h.ns.Command(mosquittoPath(t), "-c", conf)
	var out nstest.SyncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("mosquitto :%d:\n%s", port, nstest.Truncate(out.String()))
		}
	})
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	nstest.WaitFor(t, nstest.Patience, "mosquitto listening on "+addr, func() (bool, string) {
		err := h.ns.Do(func() error {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				c.Close()
			}
			return err
		})
		return err == nil, fmt.Sprint(err)
	})
	return "tcp://" + addr
}

func mosquittoPath(t *testing.T) string {
	for _, p := range []string{"/usr/sbin/mosquitto", "/usr/bin/mosquitto"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("mosquitto")
	if err != nil {
		t.Fatal("mosquitto not found")
	}
	return p
}

// router runs a flowtop daemon in the hub that watches ns and publishes
// as node to broker. It is killed when the test ends.
func (h *hub) router(ns *nstest.NS, node, broker string, args ...string) *exec.Cmd {
	t := h.t
	t.Helper()
	all := append([]string{"-n", "--netns", ns.Path(), "--state-dir", t.TempDir(), "--no-ui", "-46TUI",
		"-t", "0.5", "--mqtt", broker, "--mqtt-node", node, "--mqtt-client-id", "router-" + node,
		// Periodic documents every 2 s rather than a minute: the nodes
		// list's flow counts come from them.
		"--mqtt-interval", "2s"}, args...)
	cmd := h.ns.Command(flowtopBinary(t), all...)
	var stderr nstest.SyncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the %s daemon: %v", node, err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("daemon %s stderr:\n%s", node, nstest.Truncate(stderr.String()))
		}
	})
	return cmd
}

// viewer runs flowtop in the hub with args (--remote ...) and returns
// its stdout, stderr and exit status.
func (h *hub) viewer(timeout time.Duration, args ...string) (stdout []byte, stderr string, code int) {
	t := h.t
	t.Helper()
	cmd := h.ns.Command(flowtopBinary(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	timer := time.AfterFunc(timeout, func() { cmd.Process.Kill() })
	defer timer.Stop()
	err := cmd.Wait()
	code = cmd.ProcessState.ExitCode()
	if code < 0 {
		t.Fatalf("flowtop %s: %v (timed out after %v?)\nstderr: %s", strings.Join(args, " "), err, timeout, nstest.Truncate(errb.String()))
	}
	return out.Bytes(), errb.String(), code
}

// nodesOnce is flowtop --remote URL --once: the nodes document.
func (h *hub) nodesOnce(broker string) remote.NodesDocument {
	t := h.t
	t.Helper()
	out, stderr, code := h.viewer(30*time.Second, "--remote", broker, "--once", "-t", "1")
	if code != 0 {
		t.Fatalf("flowtop --remote %s --once: exit %d: %s", broker, code, nstest.Truncate(stderr))
	}
	var d remote.NodesDocument
	if err := json.Unmarshal(out, &d); err != nil {
		t.Fatalf("the nodes document: %v: %s", err, nstest.Truncate(string(out)))
	}
	return d
}

func nodeEntry(d remote.NodesDocument, name string) (remote.NodeEntry, bool) {
	for _, n := range d.Nodes {
		if n.Node == name {
			return n, true
		}
	}
	return remote.NodeEntry{}, false
}

// routers starts a namespace pair for each name, a daemon watching its A
// side that publishes under that name to broker, and, once every daemon
// is online (so byte accounting is on, and the flows are counted from
// their first packet), traffic from A to B. It returns the daemons and
// the A sides.
func (h *hub) routers(broker string, names ...string) ([]*exec.Cmd, []*nstest.NS) {
	t := h.t
	t.Helper()
	var cmds []*exec.Cmd
	var as, bs []*nstest.NS
	for _, name := range names {
		a, b := nstest.Pair(t)
		as, bs = append(as, a), append(bs, b)
		cmds = append(cmds, h.router(a, name, broker, h.routerArgs...))
	}
	nstest.WaitFor(t, 30*time.Second, "every router online", func() (bool, string) {
		d := h.nodesOnce(broker)
		for _, name := range names {
			if n, ok := nodeEntry(d, name); !ok || n.Status != "online" {
				return false, nstest.Dump(d.Nodes)
			}
		}
		return true, ""
	})
	for i := range as {
		startTraffic(t, as[i], bs[i])
	}
	return cmds, as
}

// TestFleetOnce: --remote URL --once lists both routers with their flows;
// --mqtt-node NAME --once prints that router's document, with its real
// flows, also to a viewer running as nobody with no capability; a node
// that does not answer is exit 1 with one line.
func TestFleetOnce(t *testing.T) {
	h := newHub(t)
	broker := h.broker(1883)
	h.routers(broker, "r1", "r2")

	var d remote.NodesDocument
	nstest.WaitFor(t, 30*time.Second, "both routers online with flows in the nodes document", func() (bool, string) {
		d = h.nodesOnce(broker)
		r1, ok1 := nodeEntry(d, "r1")
		r2, ok2 := nodeEntry(d, "r2")
		return ok1 && ok2 && r1.Status == "online" && r2.Status == "online" && r1.Flows > 0 && r2.Flows > 0,
			nstest.Dump(d.Nodes)
	})
	if d.Version != remote.NodesVersion || d.Broker != broker || d.Topic != "flowtop" {
		t.Errorf("nodes document header: version %d broker %q topic %q", d.Version, d.Broker, d.Topic)
	}

	out, stderr, code := h.viewer(30*time.Second, "--remote", broker, "--mqtt-node", "r1", "--once")
	if code != 0 {
		t.Fatalf("--mqtt-node r1 --once: exit %d: %s", code, nstest.Truncate(stderr))
	}
	doc := decodeDoc(t, out)
	var tcp4 bool
	for _, f := range doc.Flows {
		tcp4 = tcp4 || f.Proto == "tcp" && f.Dst == nstest.AddrB4
	}
	if !tcp4 || doc.Totals.Flows == 0 {
		t.Errorf("r1's document has %d flows (TCP to %s: %v), want its real traffic: %s", doc.Totals.Flows, nstest.AddrB4, tcp4, nstest.Truncate(string(out)))
	}

	// The viewer needs no privilege: as nobody, with no capability.
	cmd := h.ns.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all",
		flowtopBinary(t), "--remote", broker, "--mqtt-node", "r2", "--once")
	if out, err := cmd.Output(); err != nil {
		t.Errorf("--remote --once as nobody: %v: %s", err, nstest.Truncate(string(out)))
	} else if doc := decodeDoc(t, out); doc.Totals.Flows == 0 {
		t.Errorf("r2's document read as nobody has no flows: %s", nstest.Truncate(string(out)))
	}

	start := time.Now()
	_, stderr, code = h.viewer(30*time.Second, "--remote", broker, "--mqtt-node", "nosuch", "--once")
	took := time.Since(start)
	if code != 1 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 || !strings.Contains(stderr, "nosuch did not answer within 5s") {
		t.Errorf("a node that does not answer: exit %d, stderr %q; want 1 and one line saying it did not answer within 5s", code, stderr)
	}
	if took > 20*time.Second {
		t.Errorf("a node that does not answer took %v to give up, want about 5 s", took)
	}
}

// bridge is the configuration of a mosquitto that bridges the flowtop
// topics both ways with the broker at url.
func bridge(url string) []string {
	return []string{"connection upstream", "address " + strings.TrimPrefix(url, "tcp://"),
		"topic flowtop/# both 1", "cleansession true", "restart_timeout 1"}
}

// TestFleetOnceBridged: a daemon publishes to broker A, B bridges A, the
// viewer reads B: the node is listed, and a request goes through both
// brokers to the router and its answer back.
func TestFleetOnceBridged(t *testing.T) {
	h := newHub(t)
	a := h.broker(1883)
	b := h.broker(1884, bridge(a)...)
	h.routers(a, "r1")

	nstest.WaitFor(t, 30*time.Second, "r1 online with flows on the bridged broker", func() (bool, string) {
		d := h.nodesOnce(b)
		r1, ok := nodeEntry(d, "r1")
		return ok && r1.Status == "online" && r1.Flows > 0, nstest.Dump(d.Nodes)
	})
	out, stderr, code := h.viewer(30*time.Second, "--remote", b, "--mqtt-node", "r1", "--once")
	if code != 0 {
		t.Fatalf("--mqtt-node r1 --once through the bridge: exit %d: %s", code, nstest.Truncate(stderr))
	}
	if doc := decodeDoc(t, out); doc.Totals.Flows == 0 {
		t.Errorf("r1's document through the bridge has no flows: %s", nstest.Truncate(string(out)))
	}
}
