package mqttexport

import (
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/export"
)

// readerConn is a net.Conn whose reads come from r.
type readerConn struct {
	net.Conn
	r io.Reader
}

func (c readerConn) Read(p []byte) (int, error) { return c.r.Read(p) }

func publishBytes(t *testing.T, qos byte, id uint16, topic string, payload []byte) []byte {
	t.Helper()
	p := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
	p.Qos, p.MessageID, p.TopicName, p.Payload = qos, id, topic, payload
	var b bytes.Buffer
	if err := p.Write(&b); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestLimitedConn: what paho reads through limitedConn is a well-formed
// packet stream in which no PUBLISH payload is longer than the limit plus
// one byte; small packets pass unchanged, the stream stays in step after a
// cut packet, and a huge packet of another type ends the connection.
func TestLimitedConn(t *testing.T) {
	const limit = 100
	big := bytes.Repeat([]byte("x"), 1<<20)
	suback := packets.NewControlPacket(packets.Suback).(*packets.SubackPacket)
	suback.MessageID, suback.ReturnCodes = 7, []byte{1, 1}
	var stream bytes.Buffer
	stream.Write(publishBytes(t, 1, 1, "a/request", []byte("small")))
	stream.Write(publishBytes(t, 1, 2, "a/request", big))
	stream.Write(publishBytes(t, 0, 0, "b/request", big[:limit+500]))
	stream.Write(publishBytes(t, 2, 3, "c/request", big[:limit]))
	if err := suback.Write(&stream); err != nil {
		t.Fatal(err)
	}
	stream.Write([]byte{0x90, 0x80, 0x80, 0x40}) // a SUBACK of 1 MB: refused
	stream.Write(make([]byte, 64))

	var st inboundStats
	// One byte at a time: the rewriting must not depend on how reads
	// are cut.
	c := newLimitedConn(readerConn{r: iotest.OneByteReader(&stream)}, limit, &st)
	want := []struct {
		topic   string
		id      uint16
		qos     byte
		payload []byte
	}{
		{"a/request", 1, 1, []byte("small")},
		{"a/request", 2, 1, big[:limit+1]},
		{"b/request", 0, 0, big[:limit+1]},
		{"c/request", 3, 2, big[:limit]},
	}
	for i, w := range want {
		cp, err := packets.ReadPacket(c)
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		p, ok := cp.(*packets.PublishPacket)
		if !ok {
			t.Fatalf("packet %d: %T, want PUBLISH", i, cp)
		}
		if p.TopicName != w.topic || p.MessageID != w.id || p.Qos != w.qos || !bytes.Equal(p.Payload, w.payload) {
			t.Errorf("packet %d: %s id %d qos %d, %d payload bytes; want %s id %d qos %d, %d bytes",
				i, p.TopicName, p.MessageID, p.Qos, len(p.Payload), w.topic, w.id, w.qos, len(w.payload))
		}
	}
	if cp, err := packets.ReadPacket(c); err != nil || cp.(*packets.SubackPacket).MessageID != 7 {
		t.Fatalf("SUBACK after the cut packets: %v %v", cp, err)
	}
	if cp, err := packets.ReadPacket(c); err == nil || !strings.Contains(err.Error(), "connection dropped") {
		t.Fatalf("a 1 MB SUBACK: %v, %v; want an error", cp, err)
	}
	if _, err := c.Read(make([]byte, 10)); err == nil {
		t.Error("a read after the error succeeded: errors must be final")
	}
	wantDiscarded := uint64(len(big) - (limit + 1) + 500 - 1)
	if st.cut.Load() != 2 || st.discarded.Load() != wantDiscarded {
		t.Errorf("cut %d packets, discarded %d bytes; want 2, %d", st.cut.Load(), st.discarded.Load(), wantDiscarded)
	}

	// A remaining length of more than four bytes is malformed.
	bad := newLimitedConn(readerConn{r: bytes.NewReader([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x01})}, limit, &st)
	if _, err := packets.ReadPacket(bad); err == nil {
		t.Error("a five-byte remaining length was accepted")
	}
}

// TestOversizedRequestNotHeld: a request far over MaxRequest, sent through
// a real broker, is rejected without flowtop ever holding it: the bytes
// allocated while it passes are a small fraction of its size (paho alone
// used to allocate it twice), and flowtop answers a normal request after.
//
// Not parallel: it counts the allocations of the whole process.
func TestOversizedRequestNotHeld(t *testing.T) {
	const size = 32 << 20
	pub := needTool(t, "mosquitto_pub")
	b := startBroker(t, brokerOptions{})
	h := newHarness(t, b, nil)
	s := subscribe(t, b, nil, h.t.snapshot)
	h.run(t)
	s.next(t, patience, onTopic(h.t.snapshot))

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	// From another process, so that only flowtop's side is counted here.
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	cmd := exec.CommandContext(ctx, pub, "-h", "127.0.0.1", "-p", strconv.Itoa(b.port), "-q", "1", "-t", h.t.request, "-s")
	cmd.Stdin = io.LimitReader(repeatByte('x'), size)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mosquitto_pub: %v: %.300s", err, out)
	}
	waitFor(t, patience, "the big request rejected", func() bool { return h.e.rejected.Load() == 1 })
	// A normal request is answered; it came after the big one, all of
	// which has been read by then.
	h.poll(t, s, `{"id":"after"}`, "after")
	runtime.ReadMemStats(&after)

	allocated := after.TotalAlloc - before.TotalAlloc
	t.Logf("a %d MB request: %.1f MB allocated while it passed, %d bytes discarded unread",
		size>>20, float64(allocated)/(1<<20), h.e.inbound.discarded.Load())
	if allocated > 16<<20 {
		t.Errorf("%.1f MB allocated while a %d MB request passed: the request was buffered", float64(allocated)/(1<<20), size>>20)
	}
	rest := uint64(size - (MaxRequest + 1))
	if got := h.e.inbound.discarded.Load(); got != rest || h.e.inbound.cut.Load() != 1 {
		t.Errorf("discarded %d bytes of %d in %d packets, want all but the first %d in 1", got, size, h.e.inbound.cut.Load(), MaxRequest+1)
	}
	if !*h.e.Health().Connected {
		t.Error("the connection did not survive the big request")
	}
}

// repeatByte is an endless reader of one byte.
type repeatByte byte

func (r repeatByte) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// TestDialWebsocket: ws:// goes through paho's websocket transport, with
// the URL's path, and limitedConn on top.
func TestDialWebsocket(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/mqtt" {
			http.NotFound(w, r)
			return
		}
		sum := sha1.Sum([]byte(r.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		defer conn.Close()
		fmt.Fprintf(rw, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Protocol: mqtt\r\nSec-WebSocket-Accept: %s\r\n\r\n", base64.StdEncoding.EncodeToString(sum[:]))
		rw.Write([]byte{0x82, 4, 0x20, 2, 0, 0}) // one binary frame: CONNACK, accepted
		rw.Flush()
		io.Copy(io.Discard, conn) // until the client closes
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })

	e, err := New(Config{URL: "ws://" + l.Addr().String() + "/mqtt"}, export.Env{Latest: func() *conntrack.Snapshot { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse(e.s.broker)
	c, err := e.openConnection(u, *e.clientOptions())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, ok := c.(*limitedConn); !ok {
		t.Errorf("connection %T, want a limitedConn", c)
	}
	c.SetReadDeadline(time.Now().Add(patience))
	cp, err := packets.ReadPacket(c)
	if ack, ok := cp.(*packets.ConnackPacket); err != nil || !ok || ack.ReturnCode != 0 {
		t.Errorf("read %v, %v; want an accepting CONNACK", cp, err)
	}
}
