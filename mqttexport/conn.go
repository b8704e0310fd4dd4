package mqttexport

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"sync/atomic"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"golang.org/x/net/proxy"
)

// maxControlPacket bounds the remaining length of any packet from the
// broker other than PUBLISH. Those an MQTT 3.1.1 client receives (CONNACK,
// SUBACK for two topics, the PUBACK family, PINGRESP) are a few bytes: a
// bigger one is a broken or hostile broker, and its connection is dropped.
const maxControlPacket = 64 << 10

// inboundStats counts what the connection kept from the client library.
type inboundStats struct {
	cut       atomic.Uint64 // PUBLISH packets whose payload was cut short
	discarded atomic.Uint64 // payload bytes read from the socket and thrown away
}

// limitedConn sits between the broker connection and paho, which reads a
// whole packet into memory before anyone can look at it: a 250 MB PUBLISH
// on a request topic cost 500 MB (the packet, then a copy of its payload).
// limitedConn parses the fixed header of each packet the broker sends and
// passes on at most maxPayload+1 bytes of a PUBLISH payload, rewriting the
// remaining length to match; the rest is read and discarded in small
// pieces as it arrives. paho thus sees a complete, well-formed PUBLISH
// (same flags, topic and packet id, so it acknowledges it as usual) whose
// payload is one byte over the limit, which the request handler rejects as
// oversized. Writes go through unchanged.
//
// Any read error is final: paho drops the connection at the first one.
type limitedConn struct {
	net.Conn
	r          *bufio.Reader
	maxPayload int
	stats      *inboundStats
	onCut      func(payload int) // told the real size of each payload cut; may be nil

	head       [5]byte // fixed header of the current packet as passed on
	headLen    int     // bytes of head not yet returned
	headOff    int
	pass, skip int // bytes of the current packet still to pass on, then to discard
	err        error
}

func newLimitedConn(c net.Conn, maxPayload int, stats *inboundStats) *limitedConn {
	return &limitedConn{Conn: c, r: bufio.NewReader(c), maxPayload: maxPayload, stats: stats}
}

func (c *limitedConn) Read(p []byte) (int, error) {
	for {
		switch {
		case c.err != nil:
			return 0, c.err
		case len(p) == 0:
			return 0, nil
		case c.headOff < c.headLen:
			n := copy(p, c.head[c.headOff:c.headLen])
			c.headOff += n
			return n, nil
		case c.pass > 0:
			n, err := c.r.Read(p[:min(len(p), c.pass)])
			c.pass -= n
			c.err = err
			return n, err
		case c.skip > 0:
			n, err := c.r.Discard(c.skip)
			c.skip -= n
			c.stats.discarded.Add(uint64(n))
			if err != nil {
				c.err = err
				return 0, err
			}
		default:
			c.err = c.nextPacket()
		}
	}
}

// nextPacket reads a fixed header and decides what of the packet is
// passed on.
func (c *limitedConn) nextPacket() error {
	b0, err := c.r.ReadByte()
	if err != nil {
		return err
	}
	rem, err := readRemainingLength(c.r)
	if err != nil {
		return err
	}
	c.setHead(b0, rem)
	c.pass = rem
	kind := b0 >> 4
	if kind != publishPacket {
		if rem > maxControlPacket {
			return fmt.Errorf("mqtt: the broker sent a packet of type %d and %d bytes (at most %d expected): connection dropped",
				kind, rem, maxControlPacket)
		}
		return nil
	}
	if rem <= c.maxPayload {
		return nil // the payload is smaller still
	}
	// Variable header: topic (length-prefixed) and, at QoS 1 and 2, the
	// packet id.
	b, err := c.r.Peek(2)
	if err != nil {
		return err
	}
	vh := 2 + int(binary.BigEndian.Uint16(b))
	if qos := b0 >> 1 & 3; qos > 0 {
		vh += 2
	}
	if vh > rem {
		return fmt.Errorf("mqtt: malformed PUBLISH from the broker: %d bytes of header in a packet of %d", vh, rem)
	}
	payload := rem - vh
	if payload <= c.maxPayload {
		return nil
	}
	keep := c.maxPayload + 1
	c.setHead(b0, vh+keep)
	c.pass, c.skip = vh+keep, payload-keep
	c.stats.cut.Add(1)
	if c.onCut != nil {
		c.onCut(payload)
	}
	return nil
}

// setHead makes the fixed header passed on: the first byte and the
// remaining length.
func (c *limitedConn) setHead(b0 byte, rem int) {
	c.head[0] = b0
	n := 1
	for {
		d := byte(rem % 128)
		rem /= 128
		if rem > 0 {
			d |= 128
		}
		c.head[n] = d
		n++
		if rem == 0 {
			break
		}
	}
	c.headLen, c.headOff = n, 0
}

// publishPacket is the MQTT control packet type of PUBLISH.
const publishPacket = 3

var errMalformedLength = errors.New("mqtt: malformed remaining length from the broker")

// readRemainingLength reads MQTT's variable-length integer: at most four
// bytes, seven bits each, least significant first.
func readRemainingLength(r *bufio.Reader) (int, error) {
	n, shift := 0, 0
	for range 4 {
		b, err := r.ReadByte()
		if err != nil {
			return 0, err
		}
		n |= int(b&127) << shift
		if b&128 == 0 {
			return n, nil
		}
		shift += 7
	}
	return 0, errMalformedLength
}

// openConnection dials the broker as paho itself would (paho's own
// function is not exported: TCP through a proxy from the environment, TLS,
// websockets) and puts a limitedConn in front of it.
func (e *Exporter) openConnection(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
	c, err := dial(uri, o)
	if err != nil {
		return nil, err
	}
	return newLimitedConn(c, MaxRequest, &e.inbound), nil
}

func dial(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
	dialer := o.Dialer
	if dialer == nil {
		dialer = &net.Dialer{Timeout: o.ConnectTimeout}
	}
	switch uri.Scheme {
	case "ws", "wss":
		u := *uri
		u.User = nil
		var tlsc *tls.Config
		if uri.Scheme == "wss" {
			tlsc = o.TLSConfig
		}
		return mqtt.NewWebsocket(u.String(), tlsc, o.ConnectTimeout, o.HTTPHeaders, o.WebsocketOptions)
	case "tcp", "mqtt":
		return proxy.FromEnvironmentUsing(dialer).Dial("tcp", uri.Host)
	case "ssl", "tls", "mqtts":
		if os.Getenv("all_proxy") == "" {
			return tls.DialWithDialer(dialer, "tcp", uri.Host, o.TLSConfig)
		}
		raw, err := proxy.FromEnvironment().Dial("tcp", uri.Host)
		if err != nil {
			return nil, err
		}
		tc := tls.Client(raw, o.TLSConfig)
		if err := tc.Handshake(); err != nil {
			raw.Close()
			return nil, err
		}
		return tc, nil
	}
	return nil, fmt.Errorf("mqtt: scheme %q not supported", uri.Scheme)
}
