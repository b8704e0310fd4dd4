package metrics

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net"
	"net/textproto"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server limits: a scrape is one small request, so anything slow or big is
// a broken or hostile client.
const (
	readHeaderTimeout = 5 * time.Second
	writeTimeout      = 30 * time.Second
	idleTimeout       = 60 * time.Second
	maxHeaderBytes    = 16 << 10
	// maxConns bounds the open connections: Prometheus needs one, a few
	// scrapers and curls a few more; beyond, a client on the LAN could
	// hold the router's memory and file descriptors.
	maxConns = 32
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

// allows reports whether a request with these headers carries the
// credential.
func (a Auth) allows(h textproto.MIMEHeader) bool {
	switch {
	case a.token != "":
		got, ok := cutScheme(h.Get("Authorization"), "Bearer ")
		return ok && equal(got, a.token)
	case a.user != "":
		user, password, ok := basicAuth(h.Get("Authorization"))
		// Both compared, whatever the first gives, so that the time taken
		// tells nothing.
		u, p := equal(user, a.user), equal(password, a.password)
		return ok && u && p
	}
	return true
}

// basicAuth reads the user and password of an Authorization header of
// the Basic scheme (RFC 7617), as http.Request.BasicAuth does.
func basicAuth(header string) (user, password string, ok bool) {
	credentials, ok := cutScheme(header, "Basic ")
	if !ok {
		return "", "", false
	}
	decoded, err := base64.StdEncoding.DecodeString(credentials)
	if err != nil {
		return "", "", false
	}
	return strings.Cut(string(decoded), ":")
}

// cutScheme returns the credentials of an Authorization header of scheme
// (its name and a space), which is matched whatever its case (RFC 9110,
// 11.1).
func cutScheme(header, scheme string) (credentials string, ok bool) {
	if len(header) < len(scheme) || !strings.EqualFold(header[:len(scheme)], scheme) {
		return "", false
	}
	return header[len(scheme):], true
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

// handler answers /metrics (and a short page on /) behind auth.
func (c *Collector) handler(auth Auth) func(*response, *request) {
	return func(w *response, r *request) {
		if !auth.allows(r.header) {
			w.set("WWW-Authenticate", auth.challenge())
			w.error(401, "unauthorized")
			return
		}
		switch r.path {
		case "/metrics", "/":
		default:
			w.error(404, "404 page not found")
			return
		}
		if r.method != "GET" && r.method != "HEAD" {
			w.set("Allow", "GET, HEAD")
			w.error(405, "method not allowed")
			return
		}
		if r.path == "/metrics" {
			c.serveMetrics(w, r)
			return
		}
		w.set("Content-Type", "text/plain; charset=utf-8")
		w.send(200, []byte("flowtop: Prometheus metrics on /metrics\n"))
	}
}

// bufPool holds exposition buffers: 4096 hosts are some 1.5 MB of text.
// zipPool holds their gzipped copies.
var (
	bufPool = sync.Pool{New: func() any { return new([]byte) }}
	zipPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}
)

func (c *Collector) serveMetrics(w *response, r *request) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	b, err := c.Gather(r.ctx, (*bp)[:0])
	*bp = b
	if err != nil {
		c.scrapeErrs.Add(1)
		w.error(503, err.Error())
		return
	}
	c.scrapes.Add(1)
	w.set("Content-Type", ContentType)
	if acceptsGzip(r.header) {
		// Compressed whole, so that the answer has a Content-Length.
		zb := zipPool.Get().(*bytes.Buffer)
		defer zipPool.Put(zb)
		zb.Reset()
		zw := gzipPool.Get().(*gzip.Writer)
		zw.Reset(zb)
		zw.Write(b)
		zw.Close()
		gzipPool.Put(zw)
		w.set("Content-Encoding", "gzip")
		b = zb.Bytes()
	}
	w.send(200, b)
}

var gzipPool = sync.Pool{New: func() any {
	zw, _ := gzip.NewWriterLevel(nil, gzip.BestSpeed)
	return zw
}}

// acceptsGzip tells whether Accept-Encoding lists gzip with a weight
// above zero (RFC 9110, 12.5.3: q=0, as q=0.000, refuses it). A weight
// that does not parse refuses it too: an uncompressed answer is always
// understood.
func acceptsGzip(h textproto.MIMEHeader) bool {
	for part := range strings.SplitSeq(h.Get("Accept-Encoding"), ",") {
		coding, params, _ := strings.Cut(part, ";")
		if !strings.EqualFold(strings.TrimSpace(coding), "gzip") {
			continue
		}
		q := 1.0
		for param := range strings.SplitSeq(params, ";") {
			name, value, _ := strings.Cut(param, "=")
			if strings.EqualFold(strings.TrimSpace(name), "q") {
				var err error
				if q, err = strconv.ParseFloat(strings.TrimSpace(value), 64); err != nil {
					q = 0
				}
			}
		}
		if q > 0 {
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

// Serve serves c's metrics on ln behind auth until ctx ends, then stops:
// scrapes under way get shutdownGrace to finish, and every connection is
// closed before Serve returns. ln is closed. Connections and requests go
// to log at debug level.
func Serve(ctx context.Context, ln net.Listener, c *Collector, auth Auth, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &server{handle: c.handler(auth), limits: defaultLimits, log: log}
	return s.serve(ctx, ln)
}
