package ipfix

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"sync"
	"time"
)

// sender owns the connection to one collector, its encoder (and so its
// sequence numbers) and its queue of records.
type sender struct {
	col  collector
	e    *Exporter
	q    chan record
	enc  *encoder
	conn net.Conn
	// failing is set after a failed write and cleared by a good one, so
	// that a collector that is down is logged once, not per message.
	failing bool
	// closed receives a TCP connection the collector closed: a collector
	// never writes, so a read that returns tells at once, where a write
	// would succeed once more into the void.
	closed  chan net.Conn
	done    chan struct{} // closed when run ends, to stop the readers
	readers sync.WaitGroup
}

// prepare makes the queue and the encoder; Run calls it before run.
func (s *sender) prepare() {
	e := s.e
	s.q = make(chan record, e.queueLen)
	s.closed = make(chan net.Conn)
	s.done = make(chan struct{})
	size := e.cfg.MTU - ipv6UDPHeaders
	if host, _, err := net.SplitHostPort(s.col.addr); err == nil {
		if ip := net.ParseIP(host); ip != nil && ip.To4() != nil {
			size = e.cfg.MTU - ipv4UDPHeaders
		}
	}
	s.enc = newEncoder(e.cfg.Format, size, e.cfg.DomainID, bootTime(e.now()))
}

// run sends the queued records until the queue is closed and empty, or
// ctx ends (then what is left is dropped).
func (s *sender) run(ctx context.Context) {
	defer func() {
		if s.conn != nil {
			s.conn.Close()
		}
		close(s.done)
		s.readers.Wait()
		s.e.dropped.Add(uint64(len(s.q)))
	}()
	var refresh <-chan time.Time
	if s.col.network == "udp" {
		// A collector that restarted knows no template: over UDP nothing
		// tells the exporter, so templates are sent again now and then.
		t := time.NewTicker(s.e.templateRefresh)
		defer t.Stop()
		refresh = t.C
	}
	for {
		if s.conn == nil && !s.connect(ctx) {
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-refresh:
			s.sendTemplates()
		case c := <-s.closed:
			if c == s.conn {
				s.e.errs.Add(1)
				s.e.log.Warn("the collector closed the connection, reconnecting", "collector", s.col.url)
				s.failing = true
				s.conn.Close()
				s.conn = nil
			}
		case r, ok := <-s.q:
			if !ok {
				return
			}
			s.sendRecords(r)
		}
	}
}

// connect dials the collector, with backoff, and sends the templates;
// false when ctx ended first.
func (s *sender) connect(ctx context.Context) bool {
	backoff := s.e.minBackoff
	for {
		d := net.Dialer{Timeout: s.e.dialTimeout}
		c, err := d.DialContext(ctx, s.col.network, s.col.addr)
		if err == nil {
			s.conn = c
			if s.col.network == "tcp" {
				s.readers.Go(func() { s.watchClose(c) })
			}
			if s.failing {
				s.e.log.Info("collector reachable again", "collector", s.col.url)
			}
			s.failing = false
			s.sendTemplates()
			return true
		}
		if ctx.Err() != nil {
			return false
		}
		s.e.errs.Add(1)
		if !s.failing {
			s.e.log.Warn("cannot reach the collector, retrying", "collector", s.col.url, "err", err)
			s.failing = true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(backoff + rand.N(backoff/4+1)):
		}
		backoff = min(2*backoff, s.e.maxBackoff)
	}
}

// sendTemplates sends every template, in as many messages as they need.
func (s *sender) sendTemplates() {
	for k := range kinds {
		if !s.enc.addTemplate(k) {
			if !s.flush() {
				return
			}
			s.enc.addTemplate(k)
		}
	}
	s.flush()
}

// sendRecords sends r and whatever else is queued now, packed into as few
// messages as fit.
func (s *sender) sendRecords(r record) {
	for {
		if !s.enc.add(&r) {
			if !s.flush() {
				// A TCP connection broke: run reconnects first.
				s.e.dropped.Add(1)
				return
			}
			s.enc.add(&r)
		}
		select {
		case next, ok := <-s.q:
			if !ok {
				s.flush()
				return
			}
			r = next
		default:
			s.flush()
			return
		}
	}
}

// flush writes the message built so far, if any; false when that failed
// and broke the connection.
func (s *sender) flush() bool {
	if s.enc.empty() {
		return true
	}
	n := uint64(s.enc.records())
	msg := s.enc.finish(s.e.now())
	err := s.write(msg)
	s.enc.reset()
	if err != nil {
		s.e.errs.Add(1)
		s.e.dropped.Add(n)
		if !s.failing {
			s.e.log.Warn("cannot send to the collector", "collector", s.col.url, "err", err)
			s.failing = true
		}
		if s.col.network == "tcp" && s.conn != nil {
			// The stream may be broken mid-message: start a new one.
			s.conn.Close()
			s.conn = nil
		}
		return s.conn != nil
	}
	if s.failing {
		s.e.log.Info("collector reachable again", "collector", s.col.url)
		s.failing = false
	}
	s.e.published.Add(n)
	return true
}

// watchClose reads from a TCP connection until it fails (the collector
// closed it, or run did), and reports it on closed.
func (s *sender) watchClose(c net.Conn) {
	var b [1]byte
	for {
		if _, err := c.Read(b[:]); err != nil {
			select {
			case s.closed <- c:
			case <-s.done:
			}
			return
		}
	}
}

func (s *sender) write(msg []byte) error {
	if s.conn == nil {
		return fmt.Errorf("not connected to %s", s.col.addr)
	}
	s.conn.SetWriteDeadline(time.Now().Add(s.e.writeTimeout))
	if _, err := s.conn.Write(msg); err != nil {
		return fmt.Errorf("send to %s: %w", s.col.addr, err)
	}
	return nil
}
