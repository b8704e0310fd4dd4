package remote

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/flowtop/flowtop/mqttexport/mqtttest"
)

// patience is how long a test waits for what normally takes a second: the
// machine running the tests may be busy.
const patience = 30 * time.Second

// needMosquitto finds the broker. Missing, it skips the test locally and
// fails it in CI, where the broker must be installed (as mqttexport's
// tests do).
func needMosquitto(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("mosquitto"); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"} {
		if p := filepath.Join(dir, "mosquitto"); fileExists(p) {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("mosquitto not found: CI must install mosquitto")
	}
	t.Skip("mosquitto not found; install mosquitto to run this test")
	return ""
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// broker is a mosquitto on 127.0.0.1 and a port of its own; it can be
// stopped and started again on the same port.
type broker struct {
	t    testing.TB
	bin  string
	conf string
	port int

	proc mqtttest.Mosquitto
}

func startBroker(t testing.TB) *broker {
	t.Helper()
	return startBrokerWith(t, "")
}

// freePort is a TCP port free on 127.0.0.1 a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startBrokerWith starts a mosquitto with an anonymous listener on
// b.port and the configuration lines more after it (other listeners).
func startBrokerWith(t testing.TB, more string) *broker {
	t.Helper()
	b := &broker{t: t, bin: needMosquitto(t), port: freePort(t)}
	b.conf = filepath.Join(t.TempDir(), "mosquitto.conf")
	conf := fmt.Sprintf("per_listener_settings true\nlistener %d 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stderr\n"+
		"log_type error\nlog_type warning\nuser root\n", b.port) + more
	if err := os.WriteFile(b.conf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	b.start()
	t.Cleanup(func() {
		b.stop()
		if t.Failed() {
			t.Logf("mosquitto log: %s", b.proc.Log(500))
		}
	})
	return b
}

// start runs mosquitto and waits until it accepts connections.
func (b *broker) start() {
	b.t.Helper()
	b.proc.Bin, b.proc.Conf, b.proc.Addr = b.bin, b.conf, b.addr()
	b.proc.Start(b.t, patience)
}

// stop ends mosquitto (SIGTERM, then SIGKILL) and waits for it.
func (b *broker) stop() { b.proc.Stop() }

func (b *broker) addr() string { return fmt.Sprintf("127.0.0.1:%d", b.port) }
func (b *broker) url() string  { return "tcp://" + b.addr() }

// testConfig is a viewer's configuration for tests: quick part timeouts
// and leases.
func (b *broker) config() Config {
	return Config{URL: b.url(), QoS: 1, ClientID: fmt.Sprintf("viewer-%d", time.Now().UnixNano()),
		PartTimeout: 500 * time.Millisecond}
}

// openViewer opens a Client on b and waits until it is subscribed.
func openViewer(t *testing.T, cfg Config) *Client {
	t.Helper()
	c, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	waitFor(t, c, "connected", func() bool { return c.Conn().Connected })
	return c
}

// waitFor waits until cond holds, looking after every change of c, and
// fails the test (saying what) after patience.
func waitFor(t *testing.T, c *Client, what string, cond func() bool) {
	t.Helper()
	deadline := time.NewTimer(patience)
	defer deadline.Stop()
	for !cond() {
		select {
		case <-c.Changes():
		case <-time.After(100 * time.Millisecond): // cond may depend on the clock
		case <-deadline.C:
			t.Fatalf("not %s within %v; nodes: %.600s; conn: %+v", what, patience, nodesString(c.Nodes()), c.Conn())
		}
	}
}

func nodesString(nodes []NodeInfo) string {
	var b strings.Builder
	for _, n := range nodes {
		fmt.Fprintf(&b, "[%q %v flows=%d listed=%d complete=%v parts=%d/%d docs=%d err=%q] ",
			n.Name, n.Status, n.Flows, n.Listed, n.Complete, n.PartsReceived, n.Parts, n.Documents, n.Err)
	}
	return b.String()
}

// node returns the named node's info, and whether it is tracked.
func nodeInfo(c *Client, name string) (NodeInfo, bool) {
	for _, n := range c.Nodes() {
		if n.Name == name {
			return n, true
		}
	}
	return NodeInfo{}, false
}

// pubClient is a plain MQTT client that plays a router by hand.
type pubClient struct {
	c    mqtt.Client
	conn atomic.Pointer[net.Conn] // the socket, to cut it without a DISCONNECT
	msgs chan mqtt.Message
}

// newPub connects a client; opt adjusts its options (a will).
func newPub(t *testing.T, b *broker, opt func(*mqtt.ClientOptions)) *pubClient {
	t.Helper()
	p := &pubClient{msgs: make(chan mqtt.Message, 1000)}
	o := mqtt.NewClientOptions().AddBroker(b.url()).
		SetClientID(fmt.Sprintf("test-pub-%d", time.Now().UnixNano())).
		SetAutoReconnect(false).
		SetDefaultPublishHandler(func(_ mqtt.Client, m mqtt.Message) {
			select {
			case p.msgs <- m:
			default:
			}
		}).
		SetCustomOpenConnectionFn(func(uri *url.URL, _ mqtt.ClientOptions) (net.Conn, error) {
			c, err := net.DialTimeout("tcp", uri.Host, 10*time.Second)
			if err == nil {
				p.conn.Store(&c)
			}
			return c, err
		})
	if opt != nil {
		opt(o)
	}
	p.c = mqtt.NewClient(o)
	if tok := p.c.Connect(); !tok.WaitTimeout(patience) || tok.Error() != nil {
		t.Fatalf("test client: connect: %v", tok.Error())
	}
	t.Cleanup(func() { p.c.Disconnect(0) })
	return p
}

func (p *pubClient) publish(t *testing.T, topic string, retained bool, payload any) {
	t.Helper()
	if tok := p.c.Publish(topic, 1, retained, payload); !tok.WaitTimeout(patience) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// subscribe subscribes and waits for the broker's acknowledgement.
func (p *pubClient) subscribe(t *testing.T, filters ...string) {
	t.Helper()
	subs := map[string]byte{}
	for _, f := range filters {
		subs[f] = 1
	}
	if tok := p.c.SubscribeMultiple(subs, nil); !tok.WaitTimeout(patience) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
}

// next returns the next message that matches, failing after patience.
func (p *pubClient) next(t *testing.T, what string, match func(mqtt.Message) bool) mqtt.Message {
	t.Helper()
	deadline := time.After(patience)
	for {
		select {
		case m := <-p.msgs:
			if match(m) {
				return m
			}
		case <-deadline:
			t.Fatalf("no %s within %v", what, patience)
			return nil
		}
	}
}

// cut closes the client's socket without a DISCONNECT, as a crash or a
// power loss would: the broker then sends the client's will.
func (p *pubClient) cut() {
	if c := p.conn.Load(); c != nil {
		(*c).Close()
	}
}
