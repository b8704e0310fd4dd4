package metrics

// The HTTP/1.1 server of /metrics, instead of net/http's: net/http is
// some 700 kB of a mips router binary (its server alone 130 kB), for two
// fixed paths whose answer is a byte slice in memory. This one reads a
// request line and its headers, never a body, and writes each answer
// whole with its Content-Length. It keeps net/http's limits and adds a
// cap on connections, since it faces the LAN of a small router.

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"sync"
	"time"
)

// limits bound what a client may cost the server; tests shorten them.
type limits struct {
	// readHeader is how long a request line and its headers may take,
	// from the connection's accept or the request's first byte.
	readHeader time.Duration
	// idle is how long a kept-alive connection may wait for its next
	// request.
	idle time.Duration
	// write is how long writing one answer may take.
	write time.Duration
	// grace is how long answers under way may take once Serve stops.
	grace time.Duration
	// maxHeaderBytes bounds a request line and its headers.
	maxHeaderBytes int
	// maxConns bounds the open connections: one more closes the
	// connection idle the longest, or itself when none is idle.
	maxConns int
}

var defaultLimits = limits{
	readHeader:     readHeaderTimeout,
	idle:           idleTimeout,
	write:          writeTimeout,
	grace:          shutdownGrace,
	maxHeaderBytes: maxHeaderBytes,
	maxConns:       maxConns,
}

// After an answer that leaves part of the request unread (a body, or
// headers refused), the connection lingers: closing a socket with unread
// input resets it, which can destroy the answer before the client reads
// it. So the server shuts its side, then reads and drops at most
// lingerBytes for at most lingerTime (net/http: 256 kB, 500 ms).
const (
	lingerBytes = 256 << 10
	lingerTime  = 500 * time.Millisecond
)

// server answers requests on the connections of one listener with handle.
type server struct {
	handle func(*response, *request)
	limits limits
	log    *slog.Logger

	mu       sync.Mutex
	conns    map[*conn]struct{}
	stopping bool // no read may start: the server is stopping
}

// request is what the handler is told of a request.
type request struct {
	// ctx ends when the server stops for good (the shutdown grace is
	// over).
	ctx    context.Context
	method string
	// path is the request target's path: no query, no scheme and host
	// (absolute form), not unescaped.
	path   string
	header textproto.MIMEHeader
	minor  int // HTTP/1.minor
	// keepAlive: the connection serves another request after this one.
	keepAlive bool
	// unread: part of the request (its body) was not read.
	unread bool
}

// conn is one client connection: one goroutine reads its requests and
// writes the answers in turn.
type conn struct {
	srv *server
	nc  net.Conn
	// lr bounds what one request line and its headers may read (see
	// headerBudget); br reads through it.
	lr   io.LimitedReader
	br   *bufio.Reader
	head []byte // the answer's status line and headers, reused

	// Guarded by srv.mu. idleSince is when the connection began to wait
	// for its next request (zero while it reads or answers one); evicted
	// tells it was closed to make room for a new one.
	idleSince time.Time
	evicted   bool
}

// serve accepts connections on ln until ctx ends or ln fails, then stops:
// no more accepts, idle connections closed, answers under way given
// limits.grace to finish before their connections are closed too. It
// returns once every connection's goroutine has ended; ln is closed.
func (s *server) serve(ctx context.Context, ln net.Listener) error {
	s.conns = map[*conn]struct{}{}
	// Handlers' context: a scrape under way when ctx ends may finish
	// within the grace; it ends with the grace.
	hard, hardStop := context.WithCancel(context.WithoutCancel(ctx))
	defer hardStop()
	unblock := context.AfterFunc(ctx, func() { ln.Close() })
	defer unblock()
	var conns sync.WaitGroup
	err := s.accept(ctx, hard, ln, &conns)
	ln.Close()
	s.stop(&conns, hardStop)
	return err
}

// accept runs each connection accepted on ln in its own goroutine, in
// conns, until ctx ends (nil) or ln fails.
func (s *server) accept(ctx, hard context.Context, ln net.Listener, conns *sync.WaitGroup) error {
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if ctx.Err() != nil {
			if err == nil {
				nc.Close()
			}
			return nil
		}
		if errors.Is(err, net.ErrClosed) {
			return fmt.Errorf("metrics server: %w", err)
		}
		if err != nil {
			// Out of file descriptors, an aborted handshake: wait a
			// little and go on, as net/http does, rather than stop
			// serving.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Debug("metrics: accept", "err", err, "retry_in", delay)
			select {
			case <-time.After(delay):
			case <-ctx.Done():
			}
			continue
		}
		delay = 0
		c := s.admit(nc)
		if c == nil {
			s.log.Debug("metrics: too many connections busy, closing the new one", "remote", nc.RemoteAddr().String(), "max", s.limits.maxConns)
			nc.Close()
			continue
		}
		conns.Go(func() {
			defer s.forget(c)
			c.serve(hard)
		})
	}
}

// admit registers a new connection within limits.maxConns. At the cap,
// the connection idle the longest is closed to make room: otherwise a few
// clients that send a request now and then could hold every slot for
// good, and lock Prometheus out. Closing an idle kept-alive connection is
// what a client must expect anyway (RFC 9112, 9.6).
// With none idle, admit returns nil: the new connection is to be closed.
func (s *server) admit(nc net.Conn) *conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.conns) >= s.limits.maxConns {
		var oldest *conn
		for c := range s.conns {
			if !c.idleSince.IsZero() && (oldest == nil || c.idleSince.Before(oldest.idleSince)) {
				oldest = c
			}
		}
		if oldest == nil {
			return nil
		}
		s.log.Debug("metrics: too many connections, closing the one idle the longest", "remote", oldest.nc.RemoteAddr().String(), "max", s.limits.maxConns)
		// Out of the count now: its goroutine ends as soon as it sees
		// the close.
		oldest.evicted = true
		oldest.nc.Close()
		delete(s.conns, oldest)
	}
	c := &conn{srv: s, nc: nc}
	c.lr.R = nc
	c.br = bufio.NewReader(&c.lr)
	s.conns[c] = struct{}{}
	return c
}

// stop wakes every connection waiting for a request (it then closes),
// waits limits.grace for the answers under way, then ends the handlers'
// context, closes whatever is left and waits one more limits.grace for
// the connections' goroutines.
//
// Past that, a goroutine still running is stuck in its handler on
// something neither the context nor the socket's close reaches (a read
// of the kernel's statistics behind a lock, say). stop leaves it to end
// on its own: its socket is closed, so it can only fail its write and
// end. Waiting for it instead could keep flowtop from ever exiting, and
// from restoring the sysctls it changed.
func (s *server) stop(conns *sync.WaitGroup, hardStop func()) {
	s.mu.Lock()
	s.stopping = true
	for c := range s.conns {
		c.nc.SetReadDeadline(time.Unix(1, 0))
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { conns.Wait(); close(done) }()
	grace := time.NewTimer(s.limits.grace)
	defer grace.Stop()
	select {
	case <-done:
		return
	case <-grace.C:
	}
	hardStop()
	s.mu.Lock()
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	grace.Reset(s.limits.grace)
	select {
	case <-done:
	case <-grace.C:
		s.log.Warn("metrics: a scrape still running after the server stopped is left behind", "waited", 2*s.limits.grace)
	}
}

func (s *server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
}

func (s *server) isStopping() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.stopping
}

// readBy sets the deadline of the connection's next read, unless the
// server is stopping (false): stop's wake-up deadline must not be undone.
func (c *conn) readBy(t time.Time) bool {
	c.srv.mu.Lock()
	defer c.srv.mu.Unlock()
	if c.srv.stopping {
		return false
	}
	c.nc.SetReadDeadline(t)
	return true
}

// serve answers the connection's requests until one asks to close, the
// client goes or is too slow, or the server stops.
func (c *conn) serve(ctx context.Context) {
	defer c.nc.Close()
	// The first request's headers are due limits.readHeader after the
	// accept; a later one's after its first byte.
	headerBy := time.Now().Add(c.srv.limits.readHeader)
	for {
		if !c.readBy(headerBy) {
			return
		}
		r, status, err := c.readRequest(ctx)
		if err != nil {
			c.srv.log.Debug("metrics: no request read", "remote", c.nc.RemoteAddr().String(), "status", status, "err", err)
			if status != 0 {
				c.refuse(status, err)
			}
			return
		}
		w := &response{c: c, req: r}
		c.srv.handle(w, r)
		if !w.sent {
			w.error(500, "no answer")
		}
		if w.err != nil {
			c.srv.log.Debug("metrics: write", "remote", c.nc.RemoteAddr().String(), "err", w.err)
			return
		}
		if !r.keepAlive {
			if r.unread {
				c.linger()
			}
			return
		}
		if !c.awaitRequest() {
			return
		}
		headerBy = time.Now().Add(c.srv.limits.readHeader)
	}
}

// awaitRequest waits at most limits.idle for the first byte of the next
// request on a kept-alive connection, and tells whether it came. The
// connection is idle meanwhile: the first to go when a new one finds
// every slot taken (see admit).
func (c *conn) awaitRequest() bool {
	s := c.srv
	s.mu.Lock()
	if s.stopping {
		s.mu.Unlock()
		return false
	}
	c.nc.SetReadDeadline(time.Now().Add(s.limits.idle))
	c.idleSince = time.Now()
	s.mu.Unlock()
	// The last request may have used up lr: a fresh budget, or the
	// Peek reads EOF and drops a good connection.
	c.lr.N = c.headerBudget()
	_, err := c.br.Peek(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	c.idleSince = time.Time{}
	// Evicted after the byte came: the close won, the request is lost
	// with the connection (the client sees an idle connection closed).
	return err == nil && !c.evicted
}

// errHeaderTooBig is a request line and headers over limits.maxHeaderBytes.
var errHeaderTooBig = errors.New("request headers too big")

// headerBudget is what lr lets one request read: limits.maxHeaderBytes,
// plus what br may read ahead of the next request, pipelined, which
// must not count against this one (net/http allows as much).
func (c *conn) headerBudget() int64 {
	return int64(c.srv.limits.maxHeaderBytes) + int64(c.br.Size())
}

// readRequest reads a request line and its headers. On error, status is
// the answer to send before closing: 0 for none (the client went or was
// too slow).
func (c *conn) readRequest(ctx context.Context) (r *request, status int, err error) {
	c.lr.N = c.headerBudget()
	line, err := c.readLine()
	if err != nil {
		return nil, c.readStatus(), fmt.Errorf("read request line: %w", err)
	}
	r = &request{ctx: ctx}
	if status, err = r.parseLine(line); err != nil {
		return nil, status, err
	}
	r.header = textproto.MIMEHeader{}
	for {
		line, err := c.readLine()
		if err != nil {
			return nil, c.readStatus(), fmt.Errorf("read headers: %w", err)
		}
		if line == "" {
			break
		}
		if err := r.addHeader(line); err != nil {
			return nil, 400, err
		}
	}
	if err := r.checkHeader(); err != nil {
		return nil, 400, err
	}
	return r, 0, nil
}

// readLine reads a line ending in LF (or CRLF), and returns it without
// its end. A line cut short by the client, a deadline or the size limit
// is an error: bufio's and textproto's ReadLine would return it as a
// whole line.
func (c *conn) readLine() (string, error) {
	line, err := c.br.ReadString('\n')
	if err != nil {
		if c.lr.N <= 0 {
			return "", errHeaderTooBig
		}
		return "", err
	}
	return strings.TrimSuffix(line[:len(line)-1], "\r"), nil
}

// readStatus is the answer to a failed read: 431 past the size limit,
// none to a client gone or too slow.
func (c *conn) readStatus() int {
	if c.lr.N <= 0 {
		return 431
	}
	return 0
}

// addHeader adds a "Name: value" line to the request's headers.
// Continuation lines (obsolete line folding) are refused, as RFC 9112,
// 5.2 allows.
func (r *request) addHeader(line string) error {
	name, value, ok := strings.Cut(line, ":")
	value = strings.Trim(value, " \t")
	if !ok || !isToken(name) || strings.ContainsFunc(value, isControl) {
		return fmt.Errorf("malformed header line %.100q", line)
	}
	key := textproto.CanonicalMIMEHeaderKey(name)
	r.header[key] = append(r.header[key], value)
	return nil
}

// isControl tells the characters a header value may not hold (RFC 9110,
// 5.5): controls but the tab.
func isControl(c rune) bool { return c < ' ' && c != '\t' || c == 0x7f }

// parseLine reads "METHOD TARGET HTTP/1.x".
func (r *request) parseLine(line string) (status int, err error) {
	method, rest, ok1 := strings.Cut(line, " ")
	target, proto, ok2 := strings.Cut(rest, " ")
	if !ok1 || !ok2 || !isToken(method) || target == "" {
		return 400, fmt.Errorf("malformed request line %.100q", line)
	}
	// RFC 9112, 2.3: HTTP-version = "HTTP/" DIGIT "." DIGIT. Anything
	// else is a malformed request; a well-formed version other than 1.x
	// is one this server does not speak.
	version, ok := strings.CutPrefix(proto, "HTTP/")
	if !ok || len(version) != 3 || !isDigit(version[0]) || version[1] != '.' || !isDigit(version[2]) {
		return 400, fmt.Errorf("malformed request line %.100q", line)
	}
	if version[0] != '1' || version[2] > '1' {
		return 505, fmt.Errorf("unsupported version %.20q", proto)
	}
	r.minor = int(version[2] - '0')
	r.method, r.path = method, targetPath(target)
	return 0, nil
}

func isDigit(b byte) bool { return '0' <= b && b <= '9' }

// targetPath is the path of a request target: origin form (/metrics?x)
// or absolute form (http://host:port/metrics?x). Other forms (*,
// host:port) are returned as they are, and match no path.
func targetPath(target string) string {
	for _, scheme := range []string{"http://", "https://"} {
		if len(target) >= len(scheme) && strings.EqualFold(target[:len(scheme)], scheme) {
			rest := target[len(scheme):]
			target = "/"
			if i := strings.IndexAny(rest, "/?"); i >= 0 && rest[i] == '/' {
				target = rest[i:]
			}
			break
		}
	}
	path, _, _ := strings.Cut(target, "?")
	return path
}

// checkHeader checks the headers that matter to the connection: Host,
// the body's framing, Connection.
func (r *request) checkHeader() error {
	h := r.header
	if r.minor == 1 && len(h["Host"]) != 1 {
		// RFC 9112, 3.2: a server must refuse an HTTP/1.1 request without
		// exactly one Host.
		return errors.New("want one Host header")
	}
	if cl := h["Content-Length"]; len(cl) > 0 {
		n, err := strconv.ParseUint(cl[0], 10, 63)
		if err != nil || len(cl) > 1 {
			return fmt.Errorf("bad Content-Length %.40q", cl)
		}
		r.unread = n > 0
	}
	if len(h["Transfer-Encoding"]) > 0 {
		r.unread = true
	}
	if r.minor == 1 {
		r.keepAlive = !hasToken(h, "Connection", "close")
	} else {
		r.keepAlive = hasToken(h, "Connection", "keep-alive")
	}
	// A body is never read, so the connection cannot tell where the next
	// request starts.
	r.keepAlive = r.keepAlive && !r.unread
	return nil
}

// hasToken tells whether a comma-separated header lists token.
func hasToken(h textproto.MIMEHeader, name, token string) bool {
	for _, v := range h[name] {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}

// isToken tells whether s is an HTTP token (RFC 9110, 5.6.2), as a
// method is.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		ok := 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", b) >= 0
		if !ok {
			return false
		}
	}
	return true
}

// refuse answers a request that could not be read, and closes.
func (c *conn) refuse(status int, err error) {
	msg := "bad request"
	if errors.Is(err, errHeaderTooBig) {
		msg = "request header fields too large"
	}
	w := &response{c: c, req: &request{minor: 1}}
	w.error(status, msg)
	if w.err == nil {
		c.linger()
	}
}

// linger shuts the server's side of the connection, then drops what the
// client still sends, within bounds, until it closes (see lingerBytes).
func (c *conn) linger() {
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	if c.readBy(time.Now().Add(lingerTime)) {
		io.Copy(io.Discard, io.LimitReader(c.nc, lingerBytes))
	}
}

// response is the handler's answer to a request: headers it sets, then
// one send.
type response struct {
	c      *conn
	req    *request
	header []string // name, value, name, value...
	sent   bool
	err    error // of the write
}

// set adds a header to the answer.
func (w *response) set(name, value string) {
	w.header = append(w.header, name, value)
}

// error sends a plain text answer, as http.Error does.
func (w *response) error(status int, msg string) {
	w.set("Content-Type", "text/plain; charset=utf-8")
	w.set("X-Content-Type-Options", "nosniff")
	w.send(status, []byte(msg+"\n"))
}

// send writes the answer: the status line, the headers with the body's
// Content-Length, and the body unless the request is a HEAD. body may be
// reused once send returns.
func (w *response) send(status int, body []byte) {
	if w.sent {
		return // a handler's bug: the first answer stands
	}
	w.sent = true
	c, r := w.c, w.req
	if r.keepAlive && c.srv.isStopping() {
		r.keepAlive = false // tell the client not to send another
	}
	b := append(c.head[:0], "HTTP/1."...)
	b = strconv.AppendInt(b, int64(r.minor), 10)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	b = append(b, statusText(status)...)
	b = append(b, "\r\nDate: "...)
	b = time.Now().UTC().AppendFormat(b, "Mon, 02 Jan 2006 15:04:05 GMT")
	for i := 0; i+1 < len(w.header); i += 2 {
		b = append(b, "\r\n"...)
		b = append(b, w.header[i]...)
		b = append(b, ": "...)
		b = append(b, w.header[i+1]...)
	}
	b = append(b, "\r\nContent-Length: "...)
	b = strconv.AppendInt(b, int64(len(body)), 10)
	switch {
	case !r.keepAlive:
		b = append(b, "\r\nConnection: close"...)
	case r.minor == 0:
		b = append(b, "\r\nConnection: keep-alive"...)
	}
	b = append(b, "\r\n\r\n"...)
	c.head = b
	out := net.Buffers{b}
	if r.method != "HEAD" && len(body) > 0 {
		out = append(out, body)
	}
	c.nc.SetWriteDeadline(time.Now().Add(c.srv.limits.write))
	if _, err := out.WriteTo(c.nc); err != nil {
		w.err = fmt.Errorf("write answer: %w", err)
	}
}

// statusText is the reason phrase of the statuses sent here.
func statusText(status int) string {
	switch status {
	case 200:
		return "OK"
	case 400:
		return "Bad Request"
	case 401:
		return "Unauthorized"
	case 404:
		return "Not Found"
	case 405:
		return "Method Not Allowed"
	case 431:
		return "Request Header Fields Too Large"
	case 500:
		return "Internal Server Error"
	case 503:
		return "Service Unavailable"
	case 505:
		return "HTTP Version Not Supported"
	}
	return "Status " + strconv.Itoa(status)
}
