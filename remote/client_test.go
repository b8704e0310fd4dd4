package remote

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/export"
	"github.com/flowtop/flowtop/mqttexport"
	"github.com/flowtop/flowtop/mqttexport/mqtttest"
	"github.com/flowtop/flowtop/report"
)

// router runs the real MQTT exporter for node with n synthetic flows
// until the test ends (or stop is called).
type router struct {
	stop func()
}

func startRouter(t *testing.T, b *broker, node string, n int, opt func(*mqttexport.Config)) *router {
	t.Helper()
	snap := synthSnapshot(synthFlows(n))
	cfg := mqttexport.Config{
		URL: b.url(), ClientID: "router-" + node + fmt.Sprint(time.Now().UnixNano()), Node: node,
		QoS: 1, Interval: time.Hour,
	}
	if opt != nil {
		opt(&cfg)
	}
	e, err := mqttexport.New(cfg, export.Env{Host: node, Latest: func() *conntrack.Snapshot { return snap }, Names: synthNamer{}})
	if err != nil {
		t.Fatalf("exporter: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	var once sync.Once
	r := &router{stop: func() {
		once.Do(func() {
			cancel()
			select {
			case <-done:
			case <-time.After(patience):
				t.Errorf("exporter of %s did not stop", node)
			}
		})
	}}
	t.Cleanup(r.stop)
	return r
}

// TestFleetFromRouters: two real exporters, one splitting its document
// into parts, one gzipping it; the viewer shows both nodes online with
// every flow, the names the routers sent, the merged fleet, and a node
// going offline when its flowtop stops.
func TestFleetFromRouters(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c := openViewer(t, b.config())
	r1 := startRouter(t, b, "router1", 60, func(cfg *mqttexport.Config) { cfg.MaxPayload = 8 << 10 })
	startRouter(t, b, "router2", 12, func(cfg *mqttexport.Config) { cfg.Gzip = true })

	waitFor(t, c, "both nodes shown", func() bool {
		v1, v2 := c.Latest("router1"), c.Latest("router2")
		return v1 != nil && v2 != nil && len(v1.Snapshot.Flows) == 60 && len(v2.Snapshot.Flows) == 12
	})
	v1 := c.Latest("router1")
	if !v1.Complete || v1.Parts < 2 || v1.PartsReceived != v1.Parts {
		t.Errorf("router1: complete %v, parts %d/%d; want a complete document of several parts", v1.Complete, v1.PartsReceived, v1.Parts)
	}
	if v1.Totals.Flows != 60 || v1.Snapshot.TableFlows != 63 || v1.Snapshot.Health.Overruns != 2 {
		t.Errorf("router1: totals %d flows, table %d, overruns %d", v1.Totals.Flows, v1.Snapshot.TableFlows, v1.Snapshot.Health.Overruns)
	}
	want := synthFlows(60)
	for _, f := range v1.Snapshot.Flows {
		i := int(f.ID) - 1000
		if f.Orig != want[i].Orig || f.OrigCount != want[i].OrigCount || f.OrigRate != want[i].OrigRate {
			t.Fatalf("flow %d: %+v, want %+v", f.ID, f, want[i])
		}
		if got, want := v1.Names(f), (synthNamer{}).Names(&want[i]); got != want {
			t.Fatalf("names of flow %d: %+v, want %+v", f.ID, got, want)
		}
	}
	n1, _ := nodeInfo(c, "router1")
	if n1.Status != StatusOnline || n1.Flows != 60 || n1.Overruns != 2 || n1.Err != "" || n1.OrigBytesPerS == 0 {
		t.Errorf("router1 info: %s", nodesString([]NodeInfo{n1}))
	}

	fleet := c.Fleet()
	if len(fleet.Snapshot.Flows) != 72 || fleet.Totals.Flows != 72 || len(fleet.Nodes) != 2 || !fleet.Complete {
		t.Errorf("fleet: %d flows, totals %d, %d nodes, complete %v", len(fleet.Snapshot.Flows), fleet.Totals.Flows, len(fleet.Nodes), fleet.Complete)
	}
	perNode := map[string]int{}
	for _, f := range fleet.Snapshot.Flows {
		perNode[fleet.NodeOf(f)]++
		if fleet.Names(f) != fleet.view(f).Names(f) {
			t.Fatal("fleet names differ from the node's")
		}
	}
	if perNode["router1"] != 60 || perNode["router2"] != 12 {
		t.Errorf("flows by node: %v", perNode)
	}

	r1.stop() // a clean exit says offline
	waitFor(t, c, "router1 offline", func() bool { n, _ := nodeInfo(c, "router1"); return n.Status == StatusOffline })
	if c.Latest("router1") == nil {
		t.Error("the last view of an offline node is gone")
	}
}

// TestLastWill: a router that dies without a word goes offline by the
// broker's last will; a retained status seen at subscription counts.
func TestLastWill(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	gone := newPub(t, b, nil)
	gone.publish(t, "flowtop/gone/status", true, "offline") // retained before the viewer comes
	c := openViewer(t, b.config())
	waitFor(t, c, "retained offline read", func() bool { n, _ := nodeInfo(c, "gone"); return n.Status == StatusOffline })

	r := newPub(t, b, func(o *mqtt.ClientOptions) { o.SetWill("flowtop/crash/status", "offline", 1, true) })
	r.publish(t, "flowtop/crash/status", true, "online")
	waitFor(t, c, "crash online", func() bool { n, _ := nodeInfo(c, "crash"); return n.Status == StatusOnline })
	r.cut()
	waitFor(t, c, "crash offline by its will", func() bool { n, _ := nodeInfo(c, "crash"); return n.Status == StatusOffline })

	// A cleared retained status retires the node.
	gone.publish(t, "flowtop/gone/status", true, "")
	waitFor(t, c, "gone forgotten", func() bool { _, ok := nodeInfo(c, "gone"); return !ok })
}

// partDocs encodes flows as a document split into parts (each part a
// share of the flows, the whole totals), as the exporter does.
func partDocs(t *testing.T, flows []conntrack.Flow, parts int, at time.Time, requestID string) [][]byte {
	t.Helper()
	whole := synthSnapshot(flows)
	whole.Time = at
	totals := report.Prepare(whole, report.Options{}).Totals
	var out [][]byte
	per := (len(flows) + parts - 1) / parts
	for i := range parts {
		sub := *whole
		sub.Flows = whole.Flows[i*per : min((i+1)*per, len(flows))]
		p := report.Prepare(&sub, report.Options{Host: "h", Names: synthNamer{}})
		p.Totals, p.Part, p.Parts, p.RequestID = totals, i+1, parts, requestID
		var buf bytes.Buffer
		if err := p.Encode(&buf); err != nil {
			t.Fatal(err)
		}
		out = append(out, buf.Bytes())
	}
	return out
}

// TestPartsIncomplete: a document whose part never comes is shown with
// the parts that did, flagged incomplete, with the whole totals, after the
// part timeout; a document whose next one starts early is ended the same
// way; a complete one then replaces it.
func TestPartsIncomplete(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c := openViewer(t, b.config())
	p := newPub(t, b, nil)
	flows := synthFlows(30)

	t1 := docTime
	docs := partDocs(t, flows, 3, t1, "")
	p.publish(t, "flowtop/n1/snapshot", false, docs[0])
	p.publish(t, "flowtop/n1/snapshot", false, docs[2])
	waitFor(t, c, "n1 shown incomplete", func() bool { v := c.Latest("n1"); return v != nil })
	v := c.Latest("n1")
	if v.Complete || v.PartsReceived != 2 || v.Parts != 3 || len(v.Snapshot.Flows) != 20 || v.Totals.Flows != 30 {
		t.Errorf("incomplete view: complete %v, parts %d/%d, %d flows, totals %d; want false, 2/3, 20, 30",
			v.Complete, v.PartsReceived, v.Parts, len(v.Snapshot.Flows), v.Totals.Flows)
	}
	if n, _ := nodeInfo(c, "n1"); !strings.Contains(n.Err, "2 of 3 parts arrived") || n.Complete {
		t.Errorf("n1: %s", nodesString([]NodeInfo{n}))
	}

	// The first part of t2, then the whole of t3: t2 ends with one part.
	t2, t3 := t1.Add(time.Second), t1.Add(2*time.Second)
	p.publish(t, "flowtop/n1/snapshot", false, partDocs(t, flows, 3, t2, "")[0])
	for _, d := range partDocs(t, flows, 3, t3, "") {
		p.publish(t, "flowtop/n1/snapshot", false, d)
	}
	waitFor(t, c, "t3 shown complete", func() bool { v := c.Latest("n1"); return v.Snapshot.Time.Equal(t3) && v.Complete })
	if v := c.Latest("n1"); len(v.Snapshot.Flows) != 30 {
		t.Errorf("complete view: %d flows", len(v.Snapshot.Flows))
	}
	if n, _ := nodeInfo(c, "n1"); !strings.Contains(n.Err, "1 of 3 parts arrived") {
		t.Errorf("n1: %s; want t2's parts said", nodesString([]NodeInfo{n}))
	}
	// A part delivered twice (QoS 1) counts once.
	t4 := t1.Add(3 * time.Second)
	d4 := partDocs(t, flows, 2, t4, "")
	p.publish(t, "flowtop/n1/snapshot", false, d4[0])
	p.publish(t, "flowtop/n1/snapshot", false, d4[0])
	p.publish(t, "flowtop/n1/snapshot", false, d4[1])
	waitFor(t, c, "t4 shown", func() bool { return c.Latest("n1").Snapshot.Time.Equal(t4) })
	if v := c.Latest("n1"); !v.Complete || len(v.Snapshot.Flows) != 30 {
		t.Errorf("t4: complete %v, %d flows", v.Complete, len(v.Snapshot.Flows))
	}
}

func gzipped(b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	zw.Close()
	return buf.Bytes()
}

// TestBadInput: malformed, oversized, wrong-version and gzip-bomb
// documents give an error on their node only; odd node names are kept
// when printable and ignored (said on the connection) when too long (a
// control character cannot come through mosquitto: TestNodeNames); the
// node bound holds.
func TestBadInput(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	cfg := b.config()
	cfg.MaxMessage = 64 << 10
	cfg.MaxNodes = 8
	c := openViewer(t, cfg)
	p := newPub(t, b, nil)
	good := encodeDoc(t, synthSnapshot(synthFlows(5)), report.Options{Host: "good"})

	p.publish(t, "flowtop/good/snapshot", false, good)
	p.publish(t, "flowtop/malformed/snapshot", false, `{"version":1,"time":`)
	p.publish(t, "flowtop/v2/snapshot", false, strings.Replace(string(good), `"version":1`, `"version":2`, 1))
	p.publish(t, "flowtop/big/snapshot", false, bytes.Repeat([]byte{' '}, 100<<10))
	p.publish(t, "flowtop/bomb/snapshot/gz", false, gzipped(bytes.Repeat([]byte{' '}, 10<<20)))
	p.publish(t, "flowtop/junk/snapshot/gz", false, "not gzip")
	p.publish(t, "flowtop/badstatus/status", false, "maybe")
	p.publish(t, "flowtop/rüter 1 (lab)/snapshot", false, good)
	long := strings.Repeat("n", 300)
	p.publish(t, "flowtop/"+long+"/snapshot", false, good)

	wantErr := map[string]string{
		"malformed": "snapshot: invalid JSON",
		"v2":        "document version 2, this flowtop reads version 1",
		"big":       "snapshot: message of 100 KiB over the 64 KiB limit",
		"bomb":      "snapshot/gz: gzip body inflates past the 64 KiB limit",
		"junk":      "snapshot/gz: gzip:",
		"badstatus": `status: unexpected payload "maybe"`,
	}
	waitFor(t, c, "every node's error", func() bool {
		for name, want := range wantErr {
			if n, _ := nodeInfo(c, name); !strings.Contains(n.Err, want) {
				return false
			}
		}
		return c.Latest("rüter 1 (lab)") != nil && strings.Contains(c.Conn().Err, "node name of 300 bytes")
	})
	for name := range wantErr {
		n, _ := nodeInfo(c, name)
		if n.Rejected != 1 || c.Latest(name) != nil || strings.Contains(n.Err, "\n") {
			t.Errorf("%s: rejected %d, view %v, err %q", name, n.Rejected, c.Latest(name) != nil, n.Err)
		}
	}
	if v := c.Latest("good"); v == nil || len(v.Snapshot.Flows) != 5 {
		t.Error("the good node is not shown whole")
	}
	if n, _ := nodeInfo(c, "good"); n.Err != "" {
		t.Errorf("good node has an error: %q", n.Err)
	}
	if _, ok := nodeInfo(c, long); ok || c.Conn().Ignored != 1 {
		t.Errorf("a 300-byte name is tracked (ignored %d)", c.Conn().Ignored)
	}

	// A node that sends a good document after a bad one is shown.
	p.publish(t, "flowtop/malformed/snapshot", false, good)
	waitFor(t, c, "malformed node recovered", func() bool { return c.Latest("malformed") != nil })

	// The node bound: 8 tracked (7 so far), the ninth and tenth ignored.
	for i := range 3 {
		p.publish(t, fmt.Sprintf("flowtop/extra%d/status", i), false, "online")
	}
	waitFor(t, c, "node bound said", func() bool { return strings.Contains(c.Conn().Err, "8 nodes are tracked already") })
	if got := len(c.Nodes()); got != 8 {
		t.Errorf("%d nodes tracked, want the bound, 8", got)
	}
}

// TestBrokerGoesAway: the viewer says the connection is lost, keeps what
// it shows, and reconnects and resubscribes when the broker is back.
func TestBrokerGoesAway(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c := openViewer(t, b.config())
	p := newPub(t, b, nil)
	p.publish(t, "flowtop/n1/snapshot", false, encodeDoc(t, synthSnapshot(synthFlows(3)), report.Options{}))
	waitFor(t, c, "n1 shown", func() bool { return c.Latest("n1") != nil })

	b.stop()
	waitFor(t, c, "disconnected", func() bool { return !c.Conn().Connected && strings.Contains(c.Conn().Err, "lost") })
	if c.Latest("n1") == nil {
		t.Error("the view went with the broker")
	}
	b.start()
	waitFor(t, c, "reconnected", func() bool { return c.Conn().Connected })
	p2 := newPub(t, b, nil)
	later := synthSnapshot(synthFlows(7))
	later.Time = docTime.Add(time.Minute)
	p2.publish(t, "flowtop/n2/snapshot", false, encodeDoc(t, later, report.Options{}))
	waitFor(t, c, "n2 shown after the reconnect", func() bool { return c.Latest("n2") != nil })
}

// TestLiveAndForeign: while a node's live stream runs, its periodic
// documents and the answers to other clients' requests do not replace
// what is shown.
func TestLiveAndForeign(t *testing.T) {
	t.Parallel()
	b := startBroker(t)
	c := openViewer(t, b.config())
	p := newPub(t, b, nil)
	live := synthSnapshot(synthFlows(4))
	p.publish(t, "flowtop/n1/live", false, encodeDoc(t, live, report.Options{}))
	waitFor(t, c, "live shown", func() bool { v := c.Latest("n1"); return v != nil && v.Live })

	periodic := synthSnapshot(synthFlows(9))
	periodic.Time = docTime.Add(time.Second)
	p.publish(t, "flowtop/n1/snapshot", false, encodeDoc(t, periodic, report.Options{}))
	foreign := report.Prepare(synthSnapshot(synthFlows(2)), report.Options{})
	foreign.RequestID, foreign.Time = "someone-else", docTime.Add(2*time.Second)
	var buf bytes.Buffer
	foreign.Encode(&buf)
	p.publish(t, "flowtop/n1/snapshot", false, buf.Bytes())
	// A marker after both: once it is shown, they were read.
	p.publish(t, "flowtop/marker/snapshot", false, encodeDoc(t, live, report.Options{}))
	waitFor(t, c, "marker shown", func() bool { return c.Latest("marker") != nil })
	if v := c.Latest("n1"); !v.Live || len(v.Snapshot.Flows) != 4 {
		t.Errorf("n1: live %v, %d flows; want the live document (4 flows) still", v.Live, len(v.Snapshot.Flows))
	}
}

// TestOversizedDocumentNotHeld: a 32 MB message from the broker is cut
// at the connection: the viewer allocates a small part of it, refuses it
// on its node with its real size, and keeps its connection.
func TestOversizedDocumentNotHeld(t *testing.T) {
	const size = 32 << 20
	b := startBroker(t)
	cfg := b.config()
	cfg.MaxMessage = 64 << 10
	c := openViewer(t, cfg)
	p := newPub(t, b, nil)
	good := encodeDoc(t, synthSnapshot(synthFlows(5)), report.Options{Host: "good"})
	p.publish(t, "flowtop/before/snapshot", false, good)
	waitFor(t, c, "a first document", func() bool { return c.Latest("before") != nil })

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	p.publish(t, "flowtop/huge/snapshot", false, bytes.Repeat([]byte{' '}, size))
	// Publishing it allocated it here too (the test's own client): count
	// from after that.
	runtime.GC()
	runtime.ReadMemStats(&before)
	waitFor(t, c, "the huge document refused with its size", func() bool {
		n, _ := nodeInfo(c, "huge")
		return strings.Contains(n.Err, "message of 32 MiB over the 64 KiB limit")
	})
	p.publish(t, "flowtop/after/snapshot", false, good)
	waitFor(t, c, "a document after it", func() bool { return c.Latest("after") != nil })
	runtime.ReadMemStats(&after)
	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("a %d MB document: %.1f MB allocated by the viewer while it passed", size>>20, float64(allocated)/(1<<20))
	if allocated > 8<<20 {
		t.Errorf("%.1f MB allocated while a %d MB document passed: it was buffered", float64(allocated)/(1<<20), size>>20)
	}
	if !c.Conn().Connected {
		t.Error("the connection did not survive the huge document")
	}
}

// TestCutSizesResetOnConnect: a size left by a connection that died
// before paho delivered its message is forgotten at the next connection,
// so that later refusals name their own sizes.
func TestCutSizesResetOnConnect(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	var q cutSizes
	q.push(100 << 20) // a message of the connection that died
	dial := cappedConnection(64<<10, &q)
	o := mqtt.NewClientOptions()
	o.ConnectTimeout = 5 * time.Second
	c, err := dial(&url.URL{Scheme: "tcp", Host: l.Addr().String()}, *o)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if got := q.pop(64<<10 + 1); got != 64<<10+1 {
		t.Errorf("after a new connection the queue gave %d, want nothing queued (the size seen, %d)", got, 64<<10+1)
	}
}

// TestTLSAndLogin: the viewer reads a broker over TLS (ssl://, the CA of
// --mqtt-ca) with a login (--mqtt-user, --mqtt-password-file), as --mqtt
// does; a wrong password is one line that says what to check.
func TestTLSAndLogin(t *testing.T) {
	t.Parallel()
	pki := mqtttest.NewPKI(t)
	dir := t.TempDir()
	passwd := filepath.Join(dir, "passwd")
	if out, err := exec.Command("mosquitto_passwd", "-c", "-b", passwd, "viewer", "s3cret").CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_passwd: %v: %s", err, out)
	}
	tlsPort := freePort(t)
	b := startBrokerWith(t, fmt.Sprintf("listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\nallow_anonymous false\npassword_file %s\n",
		tlsPort, pki.CAFile, pki.ServerCert, pki.ServerKey, passwd))
	p := newPub(t, b, nil) // on the plain listener
	p.publish(t, "flowtop/secure/status", true, "online")
	p.publish(t, "flowtop/secure/snapshot", false, encodeDoc(t, synthSnapshot(synthFlows(3)), report.Options{Host: "secure"}))

	good := filepath.Join(dir, "good")
	bad := filepath.Join(dir, "bad")
	os.WriteFile(good, []byte("s3cret\n"), 0o600)
	os.WriteFile(bad, []byte("wrong\n"), 0o600)
	cfg := b.config()
	cfg.URL, cfg.CA, cfg.User, cfg.PasswordFile = fmt.Sprintf("ssl://127.0.0.1:%d", tlsPort), pki.CAFile, "viewer", good
	c := openViewer(t, cfg)
	waitFor(t, c, "node secure over TLS with a login", func() bool {
		n, ok := nodeInfo(c, "secure")
		return ok && n.Status == StatusOnline
	})

	cfg.PasswordFile = bad
	cfg.ClientID += "-bad"
	_, err := FetchNodes(context.Background(), cfg, 0)
	if err == nil || !strings.Contains(err.Error(), "check --mqtt-user") || strings.Contains(err.Error(), "\n") {
		t.Errorf("a wrong password: %v, want one line saying to check --mqtt-user", err)
	}
}
