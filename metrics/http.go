package metrics

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

// Server limits: a scrape is one small request, so anything slow or big is
// a broken or hostile client.
const (
	readHeaderTimeout = 5 * time.Second
	readTimeout       = 10 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10
	// shutdownGrace is how long a scrape under way may take to finish once
	// flowtop stops.
	shutdownGrace = 2 * time.Second
)

// Auth is the credential a scrape must present: HTTP basic auth or a
// bearer token. The zero Auth lets every request through.
type Auth struct {
	user, password, token string
}

// BasicAuthFile reads a user:password line (the first line of the file;
// the password may contain colons).
func BasicAuthFile(path string) (Auth, error) {
	line, err := credentialLine(path)
	if err != nil {
		return Auth{}, err
	}
	user, password, ok := strings.Cut(line, ":")
	if !ok || user == "" || password == "" {
		return Auth{}, fmt.Errorf("%s:1: want user:password", path)
	}
	return Auth{user: user, password: password}, nil
}

// TokenFile reads a bearer token (the first line of the file).
func TokenFile(path string) (Auth, error) {
	line, err := credentialLine(path)
	if err != nil {
		return Auth{}, err
	}
	if strings.ContainsAny(line, " \t") {
		return Auth{}, fmt.Errorf("%s:1: a bearer token has no blanks", path)
	}
	return Auth{token: line}, nil
}

// credentialLine returns the first line of a file, without its line end;
// an empty line is an error.
func credentialLine(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("read credentials: %w", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSuffix(line, "\r")
	if line == "" {
		return "", fmt.Errorf("%s:1: empty", path)
	}
	return line, nil
}

// allows reports whether the request carries the credential.
func (a Auth) allows(r *http.Request) bool {
	switch {
	case a.token != "":
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		return ok && equal(got, a.token)
	case a.user != "":
		user, password, ok := r.BasicAuth()
		// Both compared, whatever the first gives, so that the time taken
		// tells nothing.
		u, p := equal(user, a.user), equal(password, a.password)
		return ok && u && p
	}
	return true
}

// challenge is the WWW-Authenticate header of a refused request.
func (a Auth) challenge() string {
	if a.token != "" {
		return `Bearer realm="flowtop"`
	}
	return `Basic realm="flowtop", charset="UTF-8"`
}

// equal compares secrets in a time that depends on neither (digests of
// equal length).
func equal(got, want string) bool {
	g, w := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(g[:], w[:]) == 1
}

// Handler serves /metrics (and a short page on /) behind auth.
func (c *Collector) Handler(auth Auth) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !auth.allows(r) {
			w.Header().Set("WWW-Authenticate", auth.challenge())
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		route(w, r, c.serveMetrics)
	})
}

// route sends GET (or HEAD) /metrics to metrics and answers / with a
// short page: two fixed paths need no http.ServeMux, whose pattern
// routing is some 50 kB of a mips binary.
func route(w http.ResponseWriter, r *http.Request, metrics http.HandlerFunc) {
	switch r.URL.Path {
	case "/metrics", "/":
	default:
		http.Error(w, "404 page not found", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	if r.URL.Path == "/metrics" {
		metrics(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	fmt.Fprint(w, "flowtop: Prometheus metrics on /metrics\n")
}

// bufPool holds exposition buffers: 4096 hosts are some 1.5 MB of text.
var bufPool = sync.Pool{New: func() any { return new([]byte) }}

func (c *Collector) serveMetrics(w http.ResponseWriter, r *http.Request) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	b, err := c.Gather(r.Context(), (*bp)[:0])
	*bp = b
	if err != nil {
		c.scrapeErrs.Add(1)
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	c.scrapes.Add(1)
	w.Header().Set("Content-Type", ContentType)
	if !acceptsGzip(r) {
		w.Write(b)
		return
	}
	w.Header().Set("Content-Encoding", "gzip")
	zw := gzipPool.Get().(*gzip.Writer)
	defer gzipPool.Put(zw)
	zw.Reset(w)
	zw.Write(b)
	zw.Close()
}

var gzipPool = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return zw
}}

func acceptsGzip(r *http.Request) bool {
	for _, part := range strings.Split(r.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.TrimSpace(enc) == "gzip" && strings.ReplaceAll(q, " ", "") != "q=0" {
			return true
		}
	}
	return false
}

// Listen checks a listen address (host:port, the host may be empty for
// every address) and listens on it.
func Listen(addr string) (net.Listener, error) {
	if err := CheckAddr(addr); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// CheckAddr tells whether addr has the form host:port, like
// 127.0.0.1:9790, [::1]:9790 or :9790.
func CheckAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q: want host:port, like 127.0.0.1:9790", addr)
	}
	if _, err := net.LookupPort("tcp", port); err != nil || port == "" {
		return fmt.Errorf("%q: bad port %q", addr, port)
	}
	if strings.ContainsAny(host, " /") {
		return fmt.Errorf("%q: bad host %q", addr, host)
	}
	return nil
}

// Serve serves h on ln until ctx ends, then stops: scrapes under way get
// shutdownGrace to finish, and every connection is closed before Serve
// returns.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       readTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("metrics server: %w", err)
	case <-ctx.Done():
	}
	grace, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	if err := srv.Shutdown(grace); err != nil {
		srv.Close()
	}
	if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("metrics server: %w", err)
	}
	return nil
}
