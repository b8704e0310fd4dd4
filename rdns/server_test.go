package rdns

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// testServer is a DNS server on 127.0.0.1 answering PTR questions from a
// fixed table and counting the questions it is asked.
type testServer struct {
	addr string

	ptr   map[string][]string      // reverse name -> PTR targets; missing: NXDOMAIN
	gates map[string]chan struct{} // reverse name -> answer only once closed

	mu      sync.Mutex
	queries map[string]int
}

// serverConfig is what a test server answers.
type serverConfig struct {
	ptr   map[string][]string      // address -> PTR targets
	gates map[string]chan struct{} // address -> gate
}

// startServer serves cfg on a free UDP port until the test ends.
func startServer(t *testing.T, cfg serverConfig) *testServer {
	t.Helper()
	s := &testServer{
		ptr:     make(map[string][]string),
		gates:   make(map[string]chan struct{}),
		queries: make(map[string]int),
	}
	for a, names := range cfg.ptr {
		s.ptr[reverse(t, a)] = names
	}
	for a, g := range cfg.gates {
		s.gates[reverse(t, a)] = g
	}

	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	s.addr = pc.LocalAddr().String()

	// release unblocks handlers held at a gate, so Shutdown, which waits
	// for them, does not hang.
	release := make(chan struct{})
	started := make(chan struct{})
	srv := &dns.Server{
		PacketConn:        pc,
		Handler:           dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) { s.serve(w, r, release) }),
		NotifyStartedFunc: func() { close(started) },
	}
	served := make(chan error, 1)
	go func() { served <- srv.ActivateAndServe() }()
	select {
	case <-started:
	case err := <-served:
		t.Fatalf("dns server: %v", err)
	}
	t.Cleanup(func() {
		close(release)
		if err := srv.Shutdown(); err != nil {
			t.Errorf("dns server shutdown: %v", err)
		}
		<-served
	})
	return s
}

func (s *testServer) serve(w dns.ResponseWriter, r *dns.Msg, release <-chan struct{}) {
	if len(r.Question) != 1 {
		return
	}
	q := r.Question[0]
	s.mu.Lock()
	s.queries[q.Name]++
	s.mu.Unlock()

	if g, ok := s.gates[q.Name]; ok {
		select {
		case <-g:
		case <-release:
			return
		}
	}

	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	m.RecursionAvailable = true
	names, ok := s.ptr[q.Name]
	if !ok || q.Qtype != dns.TypePTR {
		m.Rcode = dns.RcodeNameError
	}
	for _, n := range names {
		m.Answer = append(m.Answer, &dns.PTR{
			Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 60},
			Ptr: n,
		})
	}
	_ = w.WriteMsg(m)
}

// queriesFor returns how many questions were asked about address a.
func (s *testServer) queriesFor(t *testing.T, a string) int {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[reverse(t, a)]
}

// resolver returns a Go resolver that sends every question to addr over UDP.
func resolverFor(addr string) *net.Resolver {
	return &net.Resolver{
		PreferGo: true,
		Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "udp", addr)
		},
	}
}

func reverse(t *testing.T, a string) string {
	t.Helper()
	r, err := dns.ReverseAddr(a)
	if err != nil {
		t.Fatalf("reverse %s: %v", a, err)
	}
	return r
}

// fakeClock is a settable clock for TTL tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{t: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// waitFor polls cond until it holds, failing the test after a deadline.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
