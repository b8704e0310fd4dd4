package ipfix

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack"
)

// testCollector receives export messages on loopback (UDP datagrams, or
// TCP messages framed by their length) and decodes them.
type testCollector struct {
	mu       sync.Mutex
	state    *collectorState
	msgs     []*message
	maxSize  int
	errs     []error
	conns    int // TCP connections accepted
	tcpConn  net.Conn
	addr     string
	received chan struct{} // signalled on each message
}

func (tc *testCollector) add(b []byte) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	tc.maxSize = max(tc.maxSize, len(b))
	m, err := tc.state.decode(b)
	if err != nil {
		tc.errs = append(tc.errs, err)
		return
	}
	tc.msgs = append(tc.msgs, m)
	select {
	case tc.received <- struct{}{}:
	default:
	}
}

// forget drops the templates learnt, as a collector that restarted.
func (tc *testCollector) forget() {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	tc.state = newCollectorState()
	tc.msgs = nil
}

// records returns the data records decoded so far, by flow ID, and the
// number of data sets whose template was unknown.
func (tc *testCollector) records() (map[uint32][]dataRecord, int, int) {
	tc.mu.Lock()
	defer tc.mu.Unlock()
	byID := map[uint32][]dataRecord{}
	unknown, templates := 0, 0
	for _, m := range tc.msgs {
		for _, r := range m.records {
			id := uint32(r.u(ieFlowID))
			byID[id] = append(byID[id], r)
		}
		unknown += m.unknownSets
		if len(m.templates) > 0 {
			templates++
		}
	}
	return byID, unknown, templates
}

func (tc *testCollector) check(t *testing.T) {
	t.Helper()
	tc.mu.Lock()
	defer tc.mu.Unlock()
	for i, err := range tc.errs {
		if i == 3 {
			t.Errorf("... %d decoding errors in all", len(tc.errs))
			break
		}
		t.Errorf("collector: %v", err)
	}
}

func udpCollector(t *testing.T) *testCollector {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	pc.(*net.UDPConn).SetReadBuffer(4 << 20)
	tc := &testCollector{state: newCollectorState(), addr: pc.LocalAddr().String(), received: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	t.Cleanup(func() { pc.Close(); wg.Wait() })
	wg.Go(func() {
		buf := make([]byte, 65536)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			tc.add(append([]byte(nil), buf[:n]...))
		}
	})
	return tc
}

func tcpCollector(t *testing.T) *testCollector {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tc := &testCollector{state: newCollectorState(), addr: ln.Addr().String(), received: make(chan struct{}, 1)}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		tc.mu.Lock()
		if tc.tcpConn != nil {
			tc.tcpConn.Close()
		}
		tc.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			tc.mu.Lock()
			tc.conns++
			tc.tcpConn = conn
			tc.state = newCollectorState() // templates are per TCP session
			tc.mu.Unlock()
			wg.Go(func() {
				defer conn.Close()
				hdr := make([]byte, 4)
				for {
					if _, err := io.ReadFull(conn, hdr); err != nil {
						return
					}
					n := int(binary.BigEndian.Uint16(hdr[2:]))
					if n < 4 {
						tc.mu.Lock()
						tc.errs = append(tc.errs, errors.New("IPFIX message length below 4"))
						tc.mu.Unlock()
						return
					}
					msg := make([]byte, n)
					copy(msg, hdr)
					if _, err := io.ReadFull(conn, msg[4:]); err != nil {
						return
					}
					tc.add(msg)
				}
			})
		}
	})
	return tc
}

// runExporter runs e until the test ends (or stop is called).
func runExporter(t *testing.T, e *Exporter) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run still running 10 s after its context ended")
		}
	})
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// endedFlows makes n ended flows with IDs from first.
func endedFlows(first, n int) []conntrack.Ended {
	var out []conntrack.Ended
	for i := range n {
		f := counted(tcp4, t0, uint64(1000+i), uint64(2000+i))
		f.ID = uint32(first + i)
		f.Orig.SrcPort, f.Reply.DstPort = uint16(first+i), uint16(first+i)
		out = append(out, conntrack.Ended{Flow: f, Stop: t0.Add(time.Minute)})
	}
	return out
}

// TestUDPExport runs the exporter against a UDP collector on loopback:
// templates come first, every ended flow arrives once with its counters,
// no datagram is larger than the MTU allows, and the flows that end just
// before shutdown are still sent.
func TestUDPExport(t *testing.T) {
	for _, format := range []Format{FormatIPFIX, FormatNF9} {
		t.Run(string(format), func(t *testing.T) {
			col := udpCollector(t)
			ft := newFakeTable()
			ft.publish(t0, allFilter())
			e, err := New(Config{URLs: []string{"udp://" + col.addr}, Format: format, MTU: 600}, ft.env())
			if err != nil {
				t.Fatal(err)
			}
			stop := runExporter(t, e)
			const n = 300
			flows := endedFlows(1000, n)
			for _, f := range flows[:n-10] {
				ft.ended <- f
			}
			waitFor(t, 20*time.Second, "the first records", func() bool {
				got, _, _ := col.records()
				return len(got) > 0
			})
			// The last ten end at the moment flowtop stops.
			for _, f := range flows[n-10:] {
				ft.ended <- f
			}
			stop()
			waitFor(t, 20*time.Second, "all records", func() bool {
				s := e.Stats()
				return s.Published+s.Dropped == n
			})
			col.check(t)
			if s := e.Stats(); s.Published != n || s.Dropped != 0 || s.Errors != 0 {
				t.Errorf("stats %+v, want %d published", s, n)
			}
			got, unknown, _ := col.records()
			waitFor(t, 10*time.Second, "the collector to read every datagram", func() bool {
				got, unknown, _ = col.records()
				if format == FormatNF9 {
					return countAll(got) == n
				}
				return len(got) == n
			})
			if unknown != 0 {
				t.Errorf("%d data sets before their template", unknown)
			}
			if col.maxSize > 600-ipv4UDPHeaders {
				t.Errorf("a datagram of %d bytes, MTU 600 allows %d", col.maxSize, 600-ipv4UDPHeaders)
			}
			if format == FormatIPFIX {
				for _, f := range flows {
					rs := got[f.ID]
					if len(rs) != 1 || rs[0].u(ieOctetDeltaCount) != f.OrigCount.Bytes || rs[0].rev(ieOctetDeltaCount) != f.ReplyCount.Bytes {
						t.Fatalf("flow %d: %d records, first %v; want one with %d and %d bytes", f.ID, len(rs), rs, f.OrigCount.Bytes, f.ReplyCount.Bytes)
					}
				}
			}
		})
	}
}

// countAll counts records; v9 records carry no flow ID (all under 0).
func countAll(byID map[uint32][]dataRecord) int {
	n := 0
	for _, rs := range byID {
		n += len(rs)
	}
	return n
}

// TestUDPTemplateRefresh: a collector that restarts knows no template and
// cannot read data records until the exporter sends the templates again,
// which it does every refresh interval.
func TestUDPTemplateRefresh(t *testing.T) {
	col := udpCollector(t)
	ft := newFakeTable()
	ft.publish(t0, allFilter())
	e, err := New(Config{URLs: []string{"udp://" + col.addr}}, ft.env())
	if err != nil {
		t.Fatal(err)
	}
	e.templateRefresh = 300 * time.Millisecond
	runExporter(t, e)
	next := 1
	sendOne := func() {
		ft.ended <- endedFlows(next, 1)[0]
		next++
	}
	sendOne()
	waitFor(t, 20*time.Second, "a first record", func() bool {
		got, _, _ := col.records()
		return len(got) == 1
	})
	col.forget()
	restarted := time.Now()
	waitFor(t, 20*time.Second, "records readable after the collector restarted", func() bool {
		sendOne()
		got, _, _ := col.records()
		return len(got) > 0
	})
	_, unknown, templates := col.records()
	t.Logf("readable %v after the restart; %d data sets lost before the templates came", time.Since(restarted).Round(time.Millisecond), unknown)
	if templates == 0 {
		t.Error("no template message after the restart")
	}
	col.check(t)
}

// TestTCPExport runs the exporter against a TCP collector: templates once
// per connection, records framed by their length; when the collector
// drops the connection the exporter connects again, sends the templates
// again, and goes on.
func TestTCPExport(t *testing.T) {
	col := tcpCollector(t)
	ft := newFakeTable()
	ft.publish(t0, allFilter())
	e, err := New(Config{URLs: []string{"tcp://" + col.addr}}, ft.env())
	if err != nil {
		t.Fatal(err)
	}
	e.minBackoff = 50 * time.Millisecond
	runExporter(t, e)
	for _, f := range endedFlows(1, 100) {
		ft.ended <- f
	}
	waitFor(t, 20*time.Second, "100 records over TCP", func() bool {
		got, _, _ := col.records()
		return len(got) == 100
	})
	got, unknown, templates := col.records()
	if unknown != 0 || templates != 1 {
		t.Errorf("%d data sets without template, %d template messages; want 0 and 1", unknown, templates)
	}
	for id, rs := range got {
		if len(rs) != 1 {
			t.Errorf("flow %d: %d records", id, len(rs))
		}
	}
	// The collector closes the connection: records go to a new one.
	col.mu.Lock()
	col.tcpConn.Close()
	col.mu.Unlock()
	col.forget()
	next := 1000
	waitFor(t, 30*time.Second, "records on a new connection", func() bool {
		ft.ended <- endedFlows(next, 1)[0]
		next++
		col.mu.Lock()
		conns := col.conns
		col.mu.Unlock()
		got, _, _ := col.records()
		return conns == 2 && len(got) > 0
	})
	if _, unknown, templates := col.records(); unknown != 0 || templates != 1 {
		t.Errorf("new connection: %d data sets without template, %d template messages; want 0 and 1", unknown, templates)
	}
	if s := e.Stats(); s.Errors == 0 {
		t.Errorf("stats %+v: the broken connection is not counted as an error", s)
	}
	col.check(t)
}
