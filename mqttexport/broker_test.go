package mqttexport

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/flowtop/flowtop/mqttexport/mqtttest"
	"github.com/flowtop/flowtop/report"
)

// needTool finds a mosquitto program. Missing, it skips the test locally
// and fails it in CI, where the broker must be installed.
func needTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/bin", "/usr/local/sbin", "/usr/local/bin"} {
		p := filepath.Join(dir, name)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found: CI must install mosquitto", name)
	}
	t.Skipf("%s not found; install mosquitto to run this test", name)
	return ""
}

// brokerOptions shape a test broker.
type brokerOptions struct {
	users map[string]string // password file entries; none allows anonymous
	pki   *mqtttest.PKI     // TLS listener requiring a client certificate
}

// broker is a mosquitto process on 127.0.0.1 and a free port.
type broker struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	conf string
	opt  brokerOptions

	proc mqtttest.Mosquitto
}

func startBroker(t testing.TB, opt brokerOptions) *broker {
	t.Helper()
	b := &broker{t: t, bin: needTool(t, "mosquitto"), dir: t.TempDir(), opt: opt}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b.port = l.Addr().(*net.TCPAddr).Port
	l.Close()

	conf := []string{
		fmt.Sprintf("listener %d 127.0.0.1", b.port),
		"persistence false",
		"log_dest stderr",
		"log_type error", "log_type warning", "log_type notice",
		// As root mosquitto would switch to its own user, which cannot
		// read files in the test's directory; unprivileged it ignores this.
		"user root",
	}
	if len(opt.users) > 0 {
		pw := filepath.Join(b.dir, "passwd")
		passwd := needTool(t, "mosquitto_passwd")
		for user, pass := range opt.users {
			args := []string{"-b", pw, user, pass}
			if _, err := os.Stat(pw); err != nil {
				args = append([]string{"-c"}, args...)
			}
			if out, err := exec.Command(passwd, args...).CombinedOutput(); err != nil {
				t.Fatalf("mosquitto_passwd: %v: %s", err, out)
			}
		}
		conf = append(conf, "allow_anonymous false", "password_file "+pw)
	} else {
		conf = append(conf, "allow_anonymous true")
	}
	if opt.pki != nil {
		conf = append(conf,
			"cafile "+opt.pki.CAFile,
			"certfile "+opt.pki.ServerCert,
			"keyfile "+opt.pki.ServerKey,
			"require_certificate true")
	}
	b.conf = filepath.Join(b.dir, "mosquitto.conf")
	if err := os.WriteFile(b.conf, []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b.start()
	t.Cleanup(func() {
		b.stop()
		if t.Failed() {
			t.Logf("mosquitto log:\n%s", b.proc.Log(600))
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

func (b *broker) url() string {
	if b.opt.pki != nil {
		return "ssl://" + b.addr()
	}
	return "tcp://" + b.addr()
}

// clientTLS is the TLS config of a test subscriber.
func clientTLS(t testing.TB, p *mqtttest.PKI) *tls.Config {
	t.Helper()
	cfg, err := TLSConfig(p.CAFile, p.ClientCert, p.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// subscriber is a paho client that records what it receives.
type subscriber struct {
	c    mqtt.Client
	msgs chan received
}

type received struct {
	topic    string
	payload  []byte
	retained bool
	at       time.Time
}

// subscribe connects a test client to b and subscribes to filters (QoS 1).
// opt, when not nil, adjusts the client options (credentials, TLS).
func subscribe(t testing.TB, b *broker, opt func(*mqtt.ClientOptions), filters ...string) *subscriber {
	t.Helper()
	s := &subscriber{msgs: make(chan received, 10000)}
	handler := func(_ mqtt.Client, m mqtt.Message) {
		select {
		case s.msgs <- received{m.Topic(), bytes.Clone(m.Payload()), m.Retained(), time.Now()}:
		default:
		}
	}
	subs := map[string]byte{}
	for _, f := range filters {
		subs[f] = 1
	}
	o := mqtt.NewClientOptions().AddBroker(b.url()).
		SetClientID(fmt.Sprintf("test-sub-%d", time.Now().UnixNano())).
		SetAutoReconnect(true).SetConnectRetry(true).
		SetConnectRetryInterval(100 * time.Millisecond).
		SetMaxReconnectInterval(200 * time.Millisecond).
		SetOnConnectHandler(func(c mqtt.Client) { c.SubscribeMultiple(subs, handler) })
	if b.opt.pki != nil {
		o.SetTLSConfig(clientTLS(t, b.opt.pki))
	}
	if opt != nil {
		opt(o)
	}
	s.c = mqtt.NewClient(o)
	if tok := s.c.Connect(); !tok.WaitTimeout(patience) || tok.Error() != nil {
		t.Fatalf("test subscriber: connect: %v", tok.Error())
	}
	// Make sure the subscription is in place before the test goes on: a
	// round trip through the broker on a private topic.
	probe := fmt.Sprintf("test-probe/%d", time.Now().UnixNano())
	ready := make(chan struct{})
	var once sync.Once
	if tok := s.c.Subscribe(probe, 1, func(mqtt.Client, mqtt.Message) { once.Do(func() { close(ready) }) }); !tok.WaitTimeout(patience) || tok.Error() != nil {
		t.Fatalf("test subscriber: subscribe: %v", tok.Error())
	}
	deadline := time.After(patience)
	for done := false; !done; {
		s.c.Publish(probe, 1, false, "x").WaitTimeout(time.Second)
		select {
		case <-ready:
			done = true
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatal("test subscriber: subscription not ready")
		}
	}
	t.Cleanup(func() { s.c.Disconnect(100) })
	return s
}

// next returns the first message that matches, or fails the test after
// timeout.
func (s *subscriber) next(t testing.TB, timeout time.Duration, match func(received) bool) received {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m := <-s.msgs:
			if match == nil || match(m) {
				return m
			}
		case <-deadline:
			t.Fatalf("no matching message within %v", timeout)
			return received{}
		}
	}
}

// collect gathers the messages that match during d.
func (s *subscriber) collect(d time.Duration, match func(received) bool) []received {
	var out []received
	deadline := time.After(d)
	for {
		select {
		case m := <-s.msgs:
			if match == nil || match(m) {
				out = append(out, m)
			}
		case <-deadline:
			return out
		}
	}
}

func (s *subscriber) publish(t testing.TB, topic string, retained bool, payload any) {
	t.Helper()
	if tok := s.c.Publish(topic, 1, retained, payload); !tok.WaitTimeout(patience) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func onTopic(topic string) func(received) bool {
	return func(m received) bool { return m.topic == topic }
}

func isPayload(topic, payload string) func(received) bool {
	return func(m received) bool { return m.topic == topic && string(m.payload) == payload }
}

func decodeDoc(t testing.TB, m received) *report.Document {
	t.Helper()
	var d report.Document
	if err := json.Unmarshal(m.payload, &d); err != nil {
		t.Fatalf("snapshot on %s: %v: %.200s", m.topic, err, m.payload)
	}
	return &d
}

// tcpProxy forwards TCP connections from 127.0.0.1 to a broker, so that a
// test can break the exporter's connection (a network or broker failure)
// while its own subscriber, connected to the broker directly, stays.
type tcpProxy struct {
	t  testing.TB
	l  net.Listener
	to string

	mu      sync.Mutex
	conns   []net.Conn
	refuse  bool // new connections are closed at once
	hole    bool // what arrives is swallowed, both ways
	wg      sync.WaitGroup
	swallow atomic.Int64 // bytes swallowed
	accepts atomic.Int64 // connections accepted (refused ones too)
}

func startProxy(t testing.TB, b *broker) *tcpProxy {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tcpProxy{t: t, l: l, to: b.addr()}
	p.wg.Go(p.serve)
	t.Cleanup(func() {
		l.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *tcpProxy) url() string { return "tcp://" + p.l.Addr().String() }

func (p *tcpProxy) serve() {
	for {
		c, err := p.l.Accept()
		if err != nil {
			return
		}
		p.accepts.Add(1)
		p.mu.Lock()
		refuse := p.refuse
		p.mu.Unlock()
		if refuse {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.to)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, up)
		p.mu.Unlock()
		p.wg.Go(func() { p.pump(up, c) })
		p.wg.Go(func() { p.pump(c, up) })
	}
}

// pump copies src to dst until either closes, swallowing what arrives
// while the proxy is a black hole.
func (p *tcpProxy) pump(dst, src net.Conn) {
	defer dst.Close()
	defer src.Close()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			hole := p.hole
			p.mu.Unlock()
			if hole {
				p.swallow.Add(int64(n))
			} else if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// cut closes every connection through the proxy.
func (p *tcpProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns = nil
}

func (p *tcpProxy) setRefuse(on bool) {
	p.mu.Lock()
	p.refuse = on
	p.mu.Unlock()
}

func (p *tcpProxy) setHole(on bool) {
	p.mu.Lock()
	p.hole = on
	p.mu.Unlock()
}
