package metrics

import (
	"compress/gzip"
	"context"
	"io"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/export"
)

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "cred")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// get sends a request to the server at addr and returns the status and
// body.
func get(t *testing.T, addr, path string, set func(*http.Request)) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
	if set != nil {
		set(req)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), resp.Header
}

// startServer serves c's metrics behind auth on a loopback port until the
// test ends.
func startServer(t *testing.T, c *Collector, auth Auth) string {
	t.Helper()
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, c, auth, nil) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return ln.Addr().String()
}

func TestAuth(t *testing.T) {
	fx := newFixture(t, setup{})
	basic, err := BasicAuthFile(writeFile(t, "prom:s3cr:et\n"))
	if err != nil {
		t.Fatal(err)
	}
	token, err := TokenFile(writeFile(t, "tok3n\r\n"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		auth Auth
		set  func(*http.Request)
		want int
	}{
		{"none configured", Auth{}, nil, 200},
		{"basic: no credentials", basic, nil, 401},
		{"basic: wrong password", basic, func(r *http.Request) { r.SetBasicAuth("prom", "s3cr") }, 401},
		{"basic: wrong user", basic, func(r *http.Request) { r.SetBasicAuth("root", "s3cr:et") }, 401},
		{"basic: right", basic, func(r *http.Request) { r.SetBasicAuth("prom", "s3cr:et") }, 200},
		{"token: none", token, nil, 401},
		{"token: basic instead", token, func(r *http.Request) { r.SetBasicAuth("prom", "tok3n") }, 401},
		{"token: wrong", token, func(r *http.Request) { r.Header.Set("Authorization", "Bearer tok3") }, 401},
		{"token: right", token, func(r *http.Request) { r.Header.Set("Authorization", "Bearer tok3n") }, 200},
		// RFC 9110, 11.1: the scheme is case-insensitive, the token not.
		{"token: scheme in lower case", token, func(r *http.Request) { r.Header.Set("Authorization", "bearer tok3n") }, 200},
		{"token: scheme in upper case", token, func(r *http.Request) { r.Header.Set("Authorization", "BEARER tok3n") }, 200},
		{"token: token in upper case", token, func(r *http.Request) { r.Header.Set("Authorization", "Bearer TOK3N") }, 401},
		{"token: scheme only", token, func(r *http.Request) { r.Header.Set("Authorization", "bearer") }, 401},
		{"basic: scheme in lower case", basic, func(r *http.Request) {
			r.SetBasicAuth("prom", "s3cr:et")
			r.Header.Set("Authorization", "basic"+r.Header.Get("Authorization")[5:])
		}, 200},
	} {
		code, body, hdr := get(t, startServer(t, fx.c, tc.auth), "/metrics", tc.set)
		if code != tc.want {
			t.Errorf("%s: status %d, want %d", tc.name, code, tc.want)
		}
		if code == 200 && !strings.Contains(body, "flowtop_build_info{") {
			t.Errorf("%s: no metrics in %.200q", tc.name, body)
		}
		if code == 401 && hdr.Get("WWW-Authenticate") == "" {
			t.Errorf("%s: 401 without WWW-Authenticate", tc.name)
		}
		if code == 401 && strings.Contains(body, "flowtop_") {
			t.Errorf("%s: metrics leaked in a 401: %.200q", tc.name, body)
		}
	}
}

func TestCredentialFiles(t *testing.T) {
	for _, tc := range []struct {
		content, wantErr string
		token            bool
	}{
		{"", ":1: empty", false},
		{"\nprom:pw\n", ":1: empty", false},
		{"prom\n", ":1: want user:password", false},
		{":pw\n", ":1: want user:password", false},
		{"prom:\n", ":1: want user:password", false},
		{"two words\n", ":1: a bearer token has no blanks", true},
		{"", ":1: empty", true},
	} {
		path := writeFile(t, tc.content)
		var err error
		if tc.token {
			_, err = TokenFile(path)
		} else {
			_, err = BasicAuthFile(path)
		}
		if err == nil || !strings.Contains(err.Error(), path+tc.wantErr) {
			t.Errorf("%q (token %v): error %v, want %q", tc.content, tc.token, err, path+tc.wantErr)
		}
	}
	if _, err := TokenFile("/nonexistent/token"); err == nil || !strings.Contains(err.Error(), "/nonexistent/token") {
		t.Errorf("missing file: %v", err)
	}
}

func TestCheckAddr(t *testing.T) {
	for addr, ok := range map[string]bool{
		"127.0.0.1:9790": true, "[::1]:9790": true, ":9790": true, "localhost:9790": true, "0.0.0.0:0": true,
		"127.0.0.1": false, "9790": false, "127.0.0.1:": false, "127.0.0.1:99999": false, "::1:9790": false,
		"127.0.0.1:nope": false, "": false, "a b:1": false,
	} {
		if err := CheckAddr(addr); (err == nil) != ok {
			t.Errorf("CheckAddr(%q) = %v, want ok %v", addr, err, ok)
		}
	}
}

func TestHandlerPaths(t *testing.T) {
	fx := newFixture(t, setup{})
	h := startServer(t, fx.c, Auth{})
	if code, body, _ := get(t, h, "/", nil); code != 200 || !strings.Contains(body, "/metrics") {
		t.Errorf("/: %d %q", code, body)
	}
	if code, _, _ := get(t, h, "/nope", nil); code != 404 {
		t.Errorf("/nope: %d, want 404", code)
	}
	code, _, hdr := get(t, h, "/metrics", nil)
	if code != 200 || hdr.Get("Content-Type") != ContentType {
		t.Errorf("/metrics: %d, Content-Type %q", code, hdr.Get("Content-Type"))
	}
	if code, _, hdr := get(t, h, "/metrics", func(r *http.Request) { r.Method = http.MethodPost }); code != 405 || hdr.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST /metrics: %d, Allow %q; want 405, GET, HEAD", code, hdr.Get("Allow"))
	}
	if code, _, hdr := get(t, h, "/metrics", func(r *http.Request) { r.Method = http.MethodHead }); code != 200 || hdr.Get("Content-Type") != ContentType {
		t.Errorf("HEAD /metrics: %d, Content-Type %q", code, hdr.Get("Content-Type"))
	}
	if code, _, _ := get(t, h, "/metrics/x", nil); code != 404 {
		t.Errorf("/metrics/x: %d, want 404", code)
	}
}

func TestGzip(t *testing.T) {
	fx := newFixture(t, setup{})
	srv := startServer(t, fx.c, Auth{})
	req, _ := http.NewRequest("GET", "http://"+srv+"/metrics", nil)
	// Set by hand, Go's client leaves the body compressed.
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(zr)
	if err != nil || !strings.Contains(string(body), "flowtop_build_info{") {
		t.Errorf("gunzipped body: %v %.200q", err, body)
	}
}

// TestAcceptsGzip: gzip unless refused by a weight of zero (RFC 9110,
// 12.4.2: "q=0", "q=0.0", "q=0.000"); content codings are
// case-insensitive.
func TestAcceptsGzip(t *testing.T) {
	for header, want := range map[string]bool{
		"gzip": true, "GZip": true, "deflate, gzip": true, "gzip;q=1": true, "gzip;q=0.001": true,
		"gzip; q=0.5": true, "br;q=1.0, gzip;q=0.8": true, "gzip;level=1;q=0.5": true,
		"": false, "br": false, "gzipx": false, "gzip;q=0": false, "gzip;q=0.0": false, "gzip;q=0.000": false,
		"gzip ; q=0 ": false, "gzip; q = 0.00": false, "br, gzip;q=0": false, "gzip;q=zero": false,
	} {
		h := textproto.MIMEHeader{}
		if header != "" {
			h.Set("Accept-Encoding", header)
		}
		if got := acceptsGzip(h); got != want {
			t.Errorf("Accept-Encoding %q: gzip %v, want %v", header, got, want)
		}
	}
}

// TestHeaderLimit: a request with huge headers is refused before any
// handler runs.
func TestHeaderLimit(t *testing.T) {
	fx := newFixture(t, setup{})
	code, _, _ := get(t, startServer(t, fx.c, Auth{}), "/metrics", func(r *http.Request) {
		r.Header.Set("X-Big", strings.Repeat("a", 64<<10))
	})
	if code != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status %d, want 431", code)
	}
}

// TestServeStops: cancelling the context stops the server, closes an idle
// keep-alive connection and a client that never finishes its headers, and
// leaves no goroutine behind.
func TestServeStops(t *testing.T) {
	fx := newFixture(t, setup{})
	before := runtime.NumGoroutine()
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Serve(ctx, ln, fx.c, Auth{}, nil) }()

	// A scrape on a keep-alive connection, and a slow client.
	tr := &http.Transport{}
	client := &http.Client{Transport: tr}
	resp, err := client.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	slow, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	slow.Write([]byte("GET /metrics HTTP/1.1\r\n"))

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after cancel")
	}
	tr.CloseIdleConnections()
	slow.Close()
	if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		t.Error("still listening after Serve returned")
	}
	deadline := time.Now().Add(30 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1000)
		t.Errorf("%d goroutines after Serve returned, %d before:\n%s", n, before, buf[:runtime.Stack(buf, true)])
	}
}

// TestScrapeAfterStop: once the collector has stopped, a scrape is
// answered 503 at once instead of hanging.
func TestScrapeAfterStop(t *testing.T) {
	c, err := New(Config{}, export.Env{Latest: func() *conntrack.Snapshot { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	cancel()
	<-done
	code, _, _ := get(t, startServer(t, c, Auth{}), "/metrics", nil)
	if code != http.StatusServiceUnavailable {
		t.Errorf("status %d, want 503", code)
	}
	if s := c.Stats(); s.Published != 0 || s.Errors != 1 {
		t.Errorf("stats %+v, want the failed scrape counted as an error", s)
	}
}

// TestScrapesCounted: answered scrapes are the exporter's published
// count; refused credentials are not counted.
func TestScrapesCounted(t *testing.T) {
	fx := newFixture(t, setup{})
	token, err := TokenFile(writeFile(t, "tok3n\n"))
	if err != nil {
		t.Fatal(err)
	}
	h := startServer(t, fx.c, token)
	for range 2 {
		if code, _, _ := get(t, h, "/metrics", func(r *http.Request) { r.Header.Set("Authorization", "Bearer tok3n") }); code != 200 {
			t.Fatalf("status %d, want 200", code)
		}
	}
	if code, _, _ := get(t, h, "/metrics", nil); code != http.StatusUnauthorized {
		t.Fatalf("status %d without the token, want 401", code)
	}
	if s := fx.c.Stats(); s.Published != 2 || s.Errors != 0 {
		t.Errorf("stats %+v, want 2 scrapes published, no error", s)
	}
}
