package rdns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// records is what the test server knows.
var records = map[string][]string{
	"192.0.2.1":   {"host1.example."},
	"192.0.2.2":   {"host2.example."},
	"192.0.2.3":   {"first.example.", "second.example."},
	"192.0.2.4":   {"host4.example."},
	"192.0.2.5":   {"host5.example."},
	"2001:db8::1": {"host6.example."},
}

// newCache returns a cache asking s, closed when the test ends.
func newCache(t *testing.T, s *testServer, cfg Config) *Cache {
	t.Helper()
	if s != nil {
		cfg.Resolver = resolverFor(s.addr)
	}
	c := New(cfg)
	t.Cleanup(c.Close)
	return c
}

func waitName(t *testing.T, c *Cache, a, want string) {
	t.Helper()
	addr := netip.MustParseAddr(a)
	waitFor(t, fmt.Sprintf("name of %s to be %q", a, want), func() bool { return c.Name(addr) == want })
}

func TestNameArrives(t *testing.T) {
	s := startServer(t, serverConfig{ptr: records})
	tests := []struct {
		addr  string
		query string // address the server is asked about
		want  string
	}{
		{addr: "192.0.2.1", query: "192.0.2.1", want: "host1.example"},
		{addr: "2001:db8::1", query: "2001:db8::1", want: "host6.example"},
		{addr: "::ffff:192.0.2.2", query: "192.0.2.2", want: "host2.example"},
		{addr: "192.0.2.3", query: "192.0.2.3", want: "first.example"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			c := newCache(t, s, Config{})
			a := netip.MustParseAddr(tt.addr)
			if got := c.Name(a); got != "" {
				t.Fatalf("first Name = %q, want \"\" before the answer", got)
			}
			waitName(t, c, tt.addr, tt.want)
			select {
			case <-c.Changed():
			default:
				t.Error("Changed not signalled after a name arrived")
			}

			// The cache answers from now on without asking the server.
			before := c.Stats()
			for range 100 {
				if got := c.Name(a); got != tt.want {
					t.Fatalf("cached Name = %q, want %q", got, tt.want)
				}
			}
			if got := s.queriesFor(t, tt.query); got != 1 {
				t.Errorf("server asked %d times, want 1", got)
			}
			after := c.Stats()
			if d := after.Hits - before.Hits; d != 100 {
				t.Errorf("hits grew by %d, want 100", d)
			}
			if after.Lookups != 1 || after.Inflight != 0 || after.Entries != 1 {
				t.Errorf("stats = %+v, want 1 lookup, 0 in flight, 1 entry", after)
			}
		})
	}
}

func TestMappedSharesEntry(t *testing.T) {
	s := startServer(t, serverConfig{ptr: records})
	c := newCache(t, s, Config{})
	waitName(t, c, "192.0.2.1", "host1.example")
	if got := c.Name(netip.MustParseAddr("::ffff:192.0.2.1")); got != "host1.example" {
		t.Errorf("mapped Name = %q, want the IPv4 entry's name", got)
	}
	if got := s.queriesFor(t, "192.0.2.1"); got != 1 {
		t.Errorf("server asked %d times, want 1", got)
	}
}

func TestNeverLooksUpInvalid(t *testing.T) {
	c := newCache(t, nil, Config{Resolver: resolverFor("127.0.0.1:1")})
	for _, a := range []netip.Addr{
		{},
		netip.IPv4Unspecified(),
		netip.IPv6Unspecified(),
		netip.MustParseAddr("::ffff:0.0.0.0"),
	} {
		if got := c.Name(a); got != "" {
			t.Errorf("Name(%v) = %q, want \"\"", a, got)
		}
	}
	if diff := cmp.Diff(Stats{}, c.Stats(), cmp.Comparer(errorsEqual)); diff != "" {
		t.Errorf("stats (-want +got):\n%s", diff)
	}
}

func errorsEqual(a, b error) bool { return a == b }

func TestInflightDedup(t *testing.T) {
	gate := make(chan struct{})
	s := startServer(t, serverConfig{ptr: records, gates: map[string]chan struct{}{"192.0.2.1": gate}})
	c := newCache(t, s, Config{})
	a := netip.MustParseAddr("192.0.2.1")

	var wg sync.WaitGroup
	for range 50 {
		wg.Go(func() {
			for range 10 {
				c.Name(a)
			}
		})
	}
	wg.Wait()
	if got := c.Stats().Inflight; got != 1 {
		t.Errorf("in flight = %d, want 1", got)
	}
	close(gate)
	waitName(t, c, "192.0.2.1", "host1.example")
	if got := s.queriesFor(t, "192.0.2.1"); got != 1 {
		t.Errorf("server asked %d times, want 1", got)
	}
	if got := c.Stats().Lookups; got != 1 {
		t.Errorf("lookups = %d, want 1", got)
	}
}

func TestNegativeCache(t *testing.T) {
	s := startServer(t, serverConfig{ptr: records})
	clk := newFakeClock()
	c := newCache(t, s, Config{NegativeTTL: time.Minute, now: clk.Now})
	a := netip.MustParseAddr("192.0.2.99")

	c.Name(a)
	waitFor(t, "NXDOMAIN to be counted", func() bool { return c.Stats().NotFound == 1 })
	for range 10 {
		if got := c.Name(a); got != "" {
			t.Fatalf("Name = %q, want \"\"", got)
		}
	}
	st := c.Stats()
	if st.Hits != 10 || st.Failures != 0 || st.Timeouts != 0 || st.LastErr != nil {
		t.Errorf("stats = %+v, want 10 hits and no failure", st)
	}
	if got := s.queriesFor(t, "192.0.2.99"); got != 1 {
		t.Errorf("server asked %d times, want 1", got)
	}

	clk.Advance(time.Minute + time.Second)
	c.Name(a)
	waitFor(t, "a second query after the negative TTL", func() bool { return s.queriesFor(t, "192.0.2.99") == 2 })
}

func TestTTLExpiry(t *testing.T) {
	s := startServer(t, serverConfig{ptr: records})
	clk := newFakeClock()
	c := newCache(t, s, Config{TTL: 10 * time.Minute, now: clk.Now})
	a := netip.MustParseAddr("192.0.2.1")

	waitName(t, c, "192.0.2.1", "host1.example")
	clk.Advance(10*time.Minute - time.Second)
	c.Name(a)
	if got := c.Stats().Inflight; got != 0 {
		t.Fatalf("lookup queued before the TTL expired")
	}

	clk.Advance(2 * time.Second)
	if got := c.Name(a); got != "host1.example" {
		t.Errorf("Name after expiry = %q, want the stale name while refreshing", got)
	}
	waitFor(t, "a second query after the TTL", func() bool { return s.queriesFor(t, "192.0.2.1") == 2 })
	waitFor(t, "the refresh to finish", func() bool { return c.Stats().Lookups == 2 && c.Stats().Inflight == 0 })
	before := c.Stats().Hits
	c.Name(a)
	if got := c.Stats().Hits; got != before+1 {
		t.Errorf("refreshed entry not fresh: hits %d, want %d", got, before+1)
	}
}

func TestSlowServerTimesOut(t *testing.T) {
	gate := make(chan struct{}) // never opened: the server never answers
	s := startServer(t, serverConfig{ptr: records, gates: map[string]chan struct{}{"192.0.2.1": gate}})
	const timeout = 300 * time.Millisecond
	c := newCache(t, s, Config{Timeout: timeout})
	a := netip.MustParseAddr("192.0.2.1")

	start := time.Now()
	got := c.Name(a)
	if d := time.Since(start); d > timeout/3 {
		t.Errorf("Name took %v; it must not wait for the lookup", d)
	}
	if got != "" {
		t.Errorf("Name = %q, want \"\"", got)
	}
	waitFor(t, "a timeout", func() bool { return c.Stats().Timeouts == 1 })
	st := c.Stats()
	if !errors.Is(st.LastErr, ErrTimeout) {
		t.Errorf("LastErr = %v, want ErrTimeout", st.LastErr)
	}
	if st.Failures != 0 || st.Inflight != 0 {
		t.Errorf("stats = %+v, want no failures and nothing in flight", st)
	}
	// The timeout is cached: asking again does not queue another lookup.
	c.Name(a)
	if got := c.Stats().Inflight; got != 0 {
		t.Errorf("timed-out address looked up again within the negative TTL")
	}
}

func TestDeadServerFails(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	dead := pc.LocalAddr().String()
	pc.Close()

	c := newCache(t, nil, Config{Resolver: resolverFor(dead), Timeout: 5 * time.Second})
	c.Name(netip.MustParseAddr("192.0.2.1"))
	waitFor(t, "a failure", func() bool { return c.Stats().Failures == 1 })
	st := c.Stats()
	if st.LastErr == nil || errors.Is(st.LastErr, ErrTimeout) || errors.Is(st.LastErr, ErrNotFound) {
		t.Errorf("LastErr = %v, want a failure that is neither timeout nor not-found", st.LastErr)
	}
	t.Logf("LastErr: %v", st.LastErr)
	if st.Timeouts != 0 {
		t.Errorf("timeouts = %d, want 0", st.Timeouts)
	}
}

func TestQueueFullDrops(t *testing.T) {
	gate := make(chan struct{})
	s := startServer(t, serverConfig{ptr: records, gates: map[string]chan struct{}{
		"192.0.2.1": gate, "192.0.2.2": gate,
	}})
	c := newCache(t, s, Config{Workers: 1, QueueLen: 1})
	a1, a2, a3 := netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("192.0.2.2"), netip.MustParseAddr("192.0.2.3")

	c.Name(a1)
	waitFor(t, "the only worker to be busy", func() bool { return s.queriesFor(t, "192.0.2.1") == 1 })
	c.Name(a2) // fills the queue
	c.Name(a3) // dropped
	c.Name(a3) // dropped again: a drop is not remembered as in flight
	c.Name(a2) // already queued: not a drop
	st := c.Stats()
	if st.Dropped != 2 || st.Inflight != 2 {
		t.Errorf("dropped %d, in flight %d; want 2 and 2", st.Dropped, st.Inflight)
	}

	close(gate)
	waitName(t, c, "192.0.2.1", "host1.example")
	waitName(t, c, "192.0.2.2", "host2.example")
	waitName(t, c, "192.0.2.3", "first.example") // retried once there was room
	if got := s.queriesFor(t, "192.0.2.3"); got != 1 {
		t.Errorf("dropped address asked %d times, want 1", got)
	}
}

func TestEvictsLeastRecentlyUsed(t *testing.T) {
	s := startServer(t, serverConfig{ptr: records})
	c := newCache(t, s, Config{MaxEntries: 2})

	waitName(t, c, "192.0.2.4", "host4.example")
	waitName(t, c, "192.0.2.5", "host5.example")
	c.Name(netip.MustParseAddr("192.0.2.4")) // 192.0.2.5 is now the oldest
	waitName(t, c, "192.0.2.1", "host1.example")

	if got := c.Stats().Entries; got != 2 {
		t.Errorf("entries = %d, want 2", got)
	}
	if got := c.Name(netip.MustParseAddr("192.0.2.4")); got != "host4.example" {
		t.Errorf("recently used entry evicted: Name = %q", got)
	}
	if got := c.Name(netip.MustParseAddr("192.0.2.5")); got != "" {
		t.Errorf("oldest entry kept: Name = %q", got)
	}
	waitFor(t, "the evicted address to be asked again", func() bool { return s.queriesFor(t, "192.0.2.5") == 2 })
}

func TestFailureKeepsName(t *testing.T) {
	clk := newFakeClock()
	c := newCache(t, nil, Config{Resolver: resolverFor("127.0.0.1:1"), now: clk.Now})
	a := netip.MustParseAddr("192.0.2.1")

	if !c.store(a, "host1.example", nil) {
		t.Error("store of a new name did not report a change")
	}
	if c.store(a, "", fmt.Errorf("rdns: lookup %s: %w", a, ErrTimeout)) {
		t.Error("timeout reported as a change")
	}
	if got := c.Name(a); got != "host1.example" {
		t.Errorf("after a timeout Name = %q, want the old name", got)
	}
	c.store(a, "", fmt.Errorf("rdns: lookup %s: %w", a, ErrNotFound))
	if got := c.Name(a); got != "" {
		t.Errorf("after NXDOMAIN Name = %q, want \"\"", got)
	}
}

func TestCloseStopsGoroutines(t *testing.T) {
	gate := make(chan struct{}) // never opened: a lookup is running at Close
	s := startServer(t, serverConfig{ptr: records, gates: map[string]chan struct{}{"192.0.2.2": gate}})
	c := New(Config{Resolver: resolverFor(s.addr), Workers: 4, Timeout: time.Minute})

	waitName(t, c, "192.0.2.1", "host1.example")
	c.Name(netip.MustParseAddr("192.0.2.2"))
	waitFor(t, "the slow lookup to start", func() bool { return s.queriesFor(t, "192.0.2.2") == 1 })
	c.Name(netip.MustParseAddr("192.0.2.3"))

	start := time.Now()
	c.Close()
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Close took %v; it must cancel running lookups", d)
	}
	c.Close() // twice is fine

	// A worker is done once wg.Done has run, a moment before it exits, so
	// poll as goleak does.
	var left string
	deadline := time.Now().Add(5 * time.Second)
	for left = leaked(); left != "" && time.Now().Before(deadline); left = leaked() {
		time.Sleep(10 * time.Millisecond)
	}
	if left != "" {
		t.Fatalf("goroutines left after Close:\n%s", left)
	}
	before := c.Stats()
	if got := c.Name(netip.MustParseAddr("192.0.2.1")); got != "host1.example" {
		t.Errorf("Name after Close = %q, want the cached name", got)
	}
	c.Name(netip.MustParseAddr("192.0.2.4"))
	after := c.Stats()
	if after.Inflight != 0 || after.Lookups != before.Lookups || after.Dropped != before.Dropped {
		t.Errorf("Name after Close queued work: %+v", after)
	}
}

// leaked returns the stacks of goroutines still running the cache's code.
// Close waits for its workers, so none may be left when it returns.
func leaked() string {
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	var out []string
	for g := range strings.SplitSeq(string(buf), "\n\n") {
		if strings.Contains(g, "rdns.(*Cache)") || strings.Contains(g, "rdns.resolve") {
			out = append(out, g)
		}
	}
	return strings.Join(out, "\n\n")
}
