package metrics

import (
	"bufio"
	"compress/gzip"
	"context"
	"errors"
	"go/build"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// patience bounds every wait of these tests: what takes a millisecond
// may take seconds on a busy machine.
const patience = 30 * time.Second

// serveTest runs s on a loopback port until the test ends, and returns
// the address.
func serveTest(t *testing.T, s *server) string {
	t.Helper()
	addr, stop := serveUntil(t, s)
	t.Cleanup(func() {
		if !stop() {
			t.Errorf("serve did not return within %v of the test's end", patience)
		}
	})
	return addr
}

// metricsServer serves a fixture's metrics without credentials within lim.
func metricsServer(t *testing.T, lim limits) string {
	t.Helper()
	return serveTest(t, &server{handle: newFixture(t, setup{}).c.handler(Auth{}), limits: lim})
}

// rawConn is a client connection that sends requests as written and
// reads the answers with net/http's parser.
type rawConn struct {
	net.Conn
	br *bufio.Reader
}

func dial(t *testing.T, addr string) *rawConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, patience)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	nc.SetDeadline(time.Now().Add(patience))
	return &rawConn{Conn: nc, br: bufio.NewReader(nc)}
}

func (c *rawConn) send(t *testing.T, request string) {
	t.Helper()
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
}

// answer reads an answer to a request of method, and its body.
func (c *rawConn) answer(t *testing.T, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(c.br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, string(body)
}

// closed waits for the server to close the connection: nothing more
// comes, and no timeout.
func (c *rawConn) closed(t *testing.T) {
	t.Helper()
	b, err := c.br.ReadByte()
	switch {
	case err == io.EOF || errors.Is(err, syscall.ECONNRESET):
	case err == nil:
		rest, _ := c.br.Peek(c.br.Buffered())
		t.Errorf("connection open, sent %.200q", append([]byte{b}, rest...))
	default:
		t.Errorf("connection not closed: %v", err)
	}
}

func getMetrics(host string) string {
	return "GET /metrics HTTP/1.1\r\nHost: " + host + "\r\n\r\n"
}

// TestKeepAlive: two scrapes on one connection; Connection: close ends it.
func TestKeepAlive(t *testing.T) {
	addr := metricsServer(t, defaultLimits)
	c := dial(t, addr)
	for i := range 2 {
		c.send(t, getMetrics(addr))
		resp, body := c.answer(t, "GET")
		if resp.StatusCode != 200 || resp.Close || !strings.Contains(body, "flowtop_build_info{") {
			t.Fatalf("scrape %d: %s, close %v, body %.100q", i, resp.Status, resp.Close, body)
		}
		if resp.ContentLength != int64(len(body)) {
			t.Errorf("scrape %d: Content-Length %d, body %d bytes", i, resp.ContentLength, len(body))
		}
	}
	c.send(t, "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if resp, _ := c.answer(t, "GET"); resp.StatusCode != 200 || !resp.Close {
		t.Errorf("Connection: close: %s, close %v", resp.Status, resp.Close)
	}
	c.closed(t)

	// HTTP/1.0 closes unless asked to keep alive.
	c = dial(t, addr)
	c.send(t, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
	if resp, _ := c.answer(t, "GET"); resp.StatusCode != 200 || resp.Close || resp.ProtoMinor != 0 {
		t.Errorf("HTTP/1.0 keep-alive: %s %s, close %v", resp.Proto, resp.Status, resp.Close)
	}
	c.send(t, "GET / HTTP/1.0\r\n\r\n")
	c.answer(t, "GET")
	c.closed(t)
}

// TestHeadAnswer: HEAD gets the headers of a GET, Content-Length
// included, and no body: the next answer on the connection follows at
// once.
func TestHeadAnswer(t *testing.T) {
	addr := metricsServer(t, defaultLimits)
	c := dial(t, addr)
	c.send(t, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, _ := c.answer(t, "HEAD")
	if resp.StatusCode != 200 || resp.ContentLength <= 0 || resp.Header.Get("Content-Type") != ContentType {
		t.Errorf("HEAD: %s, Content-Length %d, Content-Type %q", resp.Status, resp.ContentLength, resp.Header.Get("Content-Type"))
	}
	c.send(t, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, body := c.answer(t, "GET"); resp.StatusCode != 200 || !strings.HasPrefix(body, "flowtop: ") {
		t.Errorf("GET after HEAD: %s %.100q (a body after the HEAD answer?)", resp.Status, body)
	}
}

// TestRequests: targets, methods and malformed requests get their
// status; a refused request closes the connection.
func TestRequests(t *testing.T) {
	addr := metricsServer(t, defaultLimits)
	for _, tc := range []struct {
		name, request string
		want          int
		close         bool
	}{
		{"query", "GET /metrics?debug=1 HTTP/1.1\r\nHost: x\r\n\r\n", 200, false},
		{"absolute form", "GET http://" + addr + "/metrics?x=y HTTP/1.1\r\nHost: x\r\n\r\n", 200, false},
		{"absolute form, no path", "GET HTTP://" + addr + "?x HTTP/1.1\r\nHost: x\r\n\r\n", 200, false},
		{"absolute form, other path", "GET http://" + addr + "/nope HTTP/1.1\r\nHost: x\r\n\r\n", 404, false},
		{"unknown path", "GET /metrics/x HTTP/1.1\r\nHost: x\r\n\r\n", 404, false},
		{"asterisk", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", 404, false},
		{"POST", "POST /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 405, false},
		{"DELETE /", "DELETE / HTTP/1.1\r\nHost: x\r\n\r\n", 405, false},
		{"no version", "GET /metrics\r\n\r\n", 400, true},
		{"bad version", "GET /metrics FOO/1.1\r\nHost: x\r\n\r\n", 400, true},
		{"HTTP/2 prior knowledge", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, true},
		{"HTTP/1.2", "GET /metrics HTTP/1.2\r\nHost: x\r\n\r\n", 505, true},
		{"version and more", "GET /metrics HTTP/1.1 x\r\nHost: x\r\n\r\n", 400, true},
		{"version glued to more", "GET /metrics HTTP/1.1x\r\nHost: x\r\n\r\n", 400, true},
		{"version not digits", "GET /metrics HTTP/x.y\r\nHost: x\r\n\r\n", 400, true},
		{"version of two digits", "GET /metrics HTTP/10.0\r\nHost: x\r\n\r\n", 400, true},
		{"version without minor", "GET /metrics HTTP/1\r\nHost: x\r\n\r\n", 400, true},
		{"bad method", "G(T /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 400, true},
		{"no Host", "GET /metrics HTTP/1.1\r\n\r\n", 400, true},
		{"bad header", "GET /metrics HTTP/1.1\r\nHost: x\r\nno colon\r\n\r\n", 400, true},
		{"bad Content-Length", "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400, true},
	} {
		c := dial(t, addr)
		c.send(t, tc.request)
		resp, _ := c.answer(t, "GET")
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %s, want %d", tc.name, resp.Status, tc.want)
		}
		if resp.StatusCode == 405 && resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: Allow %q, want GET, HEAD", tc.name, resp.Header.Get("Allow"))
		}
		if resp.Close != tc.close {
			t.Errorf("%s: close %v, want %v", tc.name, resp.Close, tc.close)
		}
		if tc.close {
			c.closed(t)
		}
		c.Close()
	}
}

// TestRequestBody: a request with a body is answered without waiting for
// the body, then the connection closes (the server reads no body, so it
// cannot find the next request).
func TestRequestBody(t *testing.T) {
	addr := metricsServer(t, defaultLimits)
	for _, tc := range []struct {
		name, request string
		want          int
	}{
		{"body never sent", "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n", 200},
		{"chunked, never sent", "GET /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 200},
		// The body looks like a request: it must not be answered.
		{"POST with a body", "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 37\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", 405},
	} {
		c := dial(t, addr)
		c.send(t, tc.request)
		resp, _ := c.answer(t, "GET")
		if resp.StatusCode != tc.want || !resp.Close {
			t.Errorf("%s: %s, close %v; want %d and close", tc.name, resp.Status, resp.Close, tc.want)
		}
		c.closed(t)
	}
}

// TestHeaderTooBig: headers past maxHeaderBytes get 431, and the
// connection closes.
func TestHeaderTooBig(t *testing.T) {
	addr := metricsServer(t, defaultLimits)
	c := dial(t, addr)
	c.send(t, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 2*maxHeaderBytes)+"\r\n\r\n")
	if resp, _ := c.answer(t, "GET"); resp.StatusCode != 431 || !resp.Close {
		t.Errorf("%s, close %v; want 431 and close", resp.Status, resp.Close)
	}
	c.closed(t)
	// Many small headers count as much.
	c = dial(t, addr)
	c.send(t, "GET /metrics HTTP/1.1\r\nHost: x\r\n"+strings.Repeat("X-A: b\r\n", maxHeaderBytes/4)+"\r\n")
	if resp, _ := c.answer(t, "GET"); resp.StatusCode != 431 {
		t.Errorf("many headers: %s, want 431", resp.Status)
	}
}

// TestPipelinedNearLimit: two requests in one write, the first's line
// and headers at the size limit or just under: both are answered (what
// the server reads ahead of the second must not count against the first,
// nor end the connection).
func TestPipelinedNearLimit(t *testing.T) {
	addr := metricsServer(t, defaultLimits)
	// The last size is all a request may read (net/http's allowance for
	// bufio's read-ahead): the next one needs a budget of its own.
	for _, size := range []int{maxHeaderBytes - 1, maxHeaderBytes, maxHeaderBytes + 4096} {
		first := "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: "
		first += strings.Repeat("a", size-len(first)-len("\r\n\r\n")) + "\r\n\r\n"
		c := dial(t, addr)
		c.send(t, first+getMetrics(addr))
		for i, path := range []string{"/", "/metrics"} {
			resp, body := c.answer(t, "GET")
			if resp.StatusCode != 200 {
				t.Errorf("first request %d bytes: answer %d (%s): %s %.100q", size, i+1, path, resp.Status, body)
			}
		}
		c.Close()
	}
}

// TestSlowClients: a client that stops in the middle of its headers is
// closed after limits.readHeader, on a new connection as on a kept-alive
// one; a kept-alive connection with no request is closed after
// limits.idle.
func TestSlowClients(t *testing.T) {
	lim := defaultLimits
	lim.readHeader = 200 * time.Millisecond
	addr := metricsServer(t, lim)
	c := dial(t, addr)
	c.send(t, "GET /metr")
	c.closed(t)

	// The first request must make it within readHeader of the accept on a
	// busy machine: 5 s (the default). The second one, partial, shows the
	// limit holds on a kept-alive connection too.
	lim.readHeader = 5 * time.Second
	addr = metricsServer(t, lim)
	c = dial(t, addr)
	c.send(t, getMetrics(addr))
	c.answer(t, "GET")
	c.send(t, "GET /metrics HTTP/1.1\r\nHos")
	c.closed(t)

	// Only the idle limit can close this one within patience.
	lim = defaultLimits
	lim.idle = 200 * time.Millisecond
	lim.readHeader = 2 * patience
	addr = metricsServer(t, lim)
	c = dial(t, addr)
	c.send(t, getMetrics(addr))
	c.answer(t, "GET")
	c.closed(t)
}

// TestStopWakesWaitingConns: when the server stops, a kept-alive
// connection waiting for its next request and one in the middle of its
// headers are closed at once, not after the grace or their own limits.
func TestStopWakesWaitingConns(t *testing.T) {
	lim := defaultLimits
	lim.grace, lim.idle, lim.readHeader = 2*patience, 2*patience, 2*patience
	s := &server{handle: newFixture(t, setup{}).c.handler(Auth{}), limits: lim}
	addr, stop := serveUntil(t, s)
	idle := dial(t, addr)
	idle.send(t, getMetrics(addr))
	idle.answer(t, "GET")
	half := dial(t, addr)
	half.send(t, "GET /metrics HTTP/1.1\r\nHo")
	eventually(t, "two connections, one idle", func() bool { return s.countConns(false) == 2 && s.countConns(true) == 1 })
	if !stop() {
		t.Fatal("serve did not return: waiting connections not woken")
	}
	idle.closed(t)
	half.closed(t)
}

// TestConnectionCap: at limits.maxConns open connections, a new one
// closes the connection idle the longest to make room: kept-alive
// clients cannot lock a scraper out.
func TestConnectionCap(t *testing.T) {
	lim := defaultLimits
	lim.maxConns = 2
	s := &server{handle: newFixture(t, setup{}).c.handler(Auth{}), limits: lim}
	addr := serveTest(t, s)
	var idle []*rawConn
	for i := range lim.maxConns {
		c := dial(t, addr)
		c.send(t, getMetrics(addr))
		if resp, _ := c.answer(t, "GET"); resp.StatusCode != 200 {
			t.Fatalf("scrape: %s", resp.Status)
		}
		// Idle one after the other: the first is the idle the longest.
		eventually(t, "connection idle", func() bool { return s.countConns(true) == i+1 })
		idle = append(idle, c)
	}
	c := dial(t, addr)
	c.send(t, getMetrics(addr))
	if resp, _ := c.answer(t, "GET"); resp.StatusCode != 200 {
		t.Errorf("scrape at the cap: %s", resp.Status)
	}
	idle[0].closed(t)
	idle[1].send(t, getMetrics(addr))
	if resp, _ := idle[1].answer(t, "GET"); resp.StatusCode != 200 {
		t.Errorf("scrape on the connection idle the shortest: %s", resp.Status)
	}
}

// TestConnectionCapBusy: at limits.maxConns open connections none of
// which is idle, a new one is closed at once; once one closes, a new one
// is served again.
func TestConnectionCapBusy(t *testing.T) {
	lim := defaultLimits
	lim.maxConns = 2
	s := &server{handle: newFixture(t, setup{}).c.handler(Auth{}), limits: lim}
	addr := serveTest(t, s)
	var busy []*rawConn
	for range lim.maxConns {
		c := dial(t, addr)
		c.send(t, "GET /metr") // reading its headers: not idle
		busy = append(busy, c)
	}
	eventually(t, "connections open", func() bool { return s.countConns(false) == lim.maxConns })
	extra := dial(t, addr)
	io.WriteString(extra, getMetrics(addr)) // may fail: the server may have closed already
	extra.closed(t)

	busy[0].Close()
	for deadline := time.Now().Add(patience); ; {
		c := dial(t, addr)
		c.send(t, getMetrics(addr))
		resp, err := http.ReadResponse(c.br, &http.Request{Method: "GET"})
		c.Close()
		if err == nil && resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no scrape served after a connection closed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// countConns counts the server's open connections, or only the idle ones.
func (s *server) countConns(idle bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		if !idle || !c.idleSince.IsZero() {
			n++
		}
	}
	return n
}

// eventually waits, within patience, until cond holds.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(patience); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, patience)
		}
	}
}

// TestStopGrace: when the server stops, an answer under way still gets
// out within limits.grace; past it, the handler's context ends and
// serve returns.
func TestStopGrace(t *testing.T) {
	for _, finish := range []bool{true, false} {
		entered, release := make(chan struct{}), make(chan struct{})
		lim := defaultLimits
		lim.grace = patience
		if !finish {
			lim.grace = 100 * time.Millisecond
		}
		s := &server{limits: lim, log: slog.New(slog.DiscardHandler), handle: func(w *response, r *request) {
			close(entered)
			select {
			case <-release:
				w.send(200, []byte("finished"))
			case <-r.ctx.Done():
			}
		}}
		ln, err := Listen("127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.serve(ctx, ln) }()
		c := dial(t, ln.Addr().String())
		c.send(t, getMetrics("x"))
		<-entered
		cancel()
		if finish {
			// Released once the server no longer accepts: it is stopping.
			for deadline := time.Now().Add(patience); ; time.Sleep(10 * time.Millisecond) {
				nc, err := net.Dial("tcp", ln.Addr().String())
				if err != nil {
					break
				}
				nc.Close()
				if time.Now().After(deadline) {
					t.Fatal("still accepting after its context ended")
				}
			}
			close(release)
			if resp, body := c.answer(t, "GET"); resp.StatusCode != 200 || body != "finished" || !resp.Close {
				t.Errorf("answer under way: %s %q, close %v", resp.Status, body, resp.Close)
			}
		}
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(patience):
			t.Fatalf("finish %v: serve did not return", finish)
		}
	}
}

// TestCurl: curl as Prometheus asks (its Accept and Accept-Encoding, a
// token): two scrapes on one connection, gzipped.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("no curl (CI=true: failing instead of skipping)")
		}
		t.Skip("no curl")
	}
	fx := newFixture(t, setup{})
	addr := startServer(t, fx.c, Auth{token: "tok3n"})
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	url := "http://" + addr + "/metrics"
	out, err := exec.CommandContext(ctx, curl, "-sS",
		"-H", "Accept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
		"-H", "Accept-Encoding: gzip", "-H", "Authorization: Bearer tok3n",
		"-w", "%{http_code} %{num_connects}\n", "-o", filepath.Join(dir, "1"), "-o", filepath.Join(dir, "2"), url, url).CombinedOutput()
	if err != nil {
		t.Fatalf("curl: %v: %.300s", err, out)
	}
	if string(out) != "200 1\n200 0\n" {
		t.Errorf("curl: %q, want two 200s, the second on the first's connection (0 new connections)", out)
	}
	for _, name := range []string{"1", "2"} {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatalf("scrape %s: %v", name, err)
		}
		body, err := io.ReadAll(zr)
		if err != nil || !strings.Contains(string(body), "flowtop_build_info{") {
			t.Errorf("scrape %s gunzipped: %v %.200q", name, err, body)
		}
	}
}

// TestNoNetHTTP: the package serves without net/http, which is some
// 700 kB of a router's binary (its tests may use it as a client).
func TestNoNetHTTP(t *testing.T) {
	p, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, imp := range p.Imports {
		if imp == "net/http" || strings.HasPrefix(imp, "net/http/") {
			t.Errorf("package metrics imports %s", imp)
		}
	}
}

// serveUntil runs s on a loopback port; the returned stop cancels it and
// tells whether serve returned within patience.
func serveUntil(t *testing.T, s *server) (addr string, stop func() bool) {
	t.Helper()
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.serve(ctx, ln) }()
	return ln.Addr().String(), func() bool {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
			return true
		case <-time.After(patience):
			return false
		}
	}
}

// TestStopStuckHandler: a handler that heeds neither its context nor its
// connection's close (a read of the kernel's statistics stuck behind a
// lock) does not keep serve from returning: flowtop must exit and restore
// its sysctls.
func TestStopStuckHandler(t *testing.T) {
	entered, release := make(chan struct{}), make(chan struct{})
	t.Cleanup(func() { close(release) }) // the stuck handler ends with the test
	lim := defaultLimits
	lim.grace = 100 * time.Millisecond
	addr, stop := serveUntil(t, &server{limits: lim, handle: func(w *response, r *request) {
		close(entered)
		<-release
	}})
	c := dial(t, addr)
	c.send(t, getMetrics("x"))
	select {
	case <-entered:
	case <-time.After(patience):
		t.Fatal("handler not called")
	}
	if !stop() {
		t.Fatal("serve did not return while a handler was stuck")
	}
	c.closed(t)
}
