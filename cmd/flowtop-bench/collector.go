package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// ipfixCount is what a collector made of the IPFIX messages it received.
type ipfixCount struct {
	messages uint64
	// records counts data records by flowEndReason (RFC 5102: 1 idle
	// timeout, 2 active timeout, 3 end of flow, 4 forced end, 5 lack of
	// resources; 0: the template has no such field).
	records [6]uint64
	// unknown counts data sets whose template had not come.
	unknown uint64
	// sent is what the exporter's sequence numbers say it sent: the last
	// message's sequence number plus its records.
	sent      uint64
	seqOK     bool
	malformed uint64

	templates map[uint16]ipfixTemplate
}

// ipfixTemplate is what counting needs of a template: the length of its
// records and where their flowEndReason is (-1: nowhere).
type ipfixTemplate struct {
	size, reasonAt int
}

// total is the number of data records received.
func (c *ipfixCount) total() uint64 {
	var n uint64
	for _, r := range c.records {
		n += r
	}
	return n
}

// ended is the number of records of flows that ended (any reason but the
// active timeout).
func (c *ipfixCount) ended() uint64 { return c.total() - c.records[2] }

const (
	ipfixVersion       = 10
	ipfixTemplateSetID = 2
	ipfixOptionsSetID  = 3
	ieFlowEndReason    = 136
)

// message counts the data records of one IPFIX message (RFC 7011). Only
// fixed-length fields are supported: flowtop sends no others.
func (c *ipfixCount) message(b []byte) error {
	be := binary.BigEndian
	if len(b) < 16 || be.Uint16(b) != ipfixVersion || int(be.Uint16(b[2:])) != len(b) {
		c.malformed++
		return fmt.Errorf("not an IPFIX message (%d bytes)", len(b))
	}
	if c.templates == nil {
		c.templates = map[uint16]ipfixTemplate{}
	}
	c.messages++
	seq := be.Uint32(b[8:])
	var records uint64
	for sets := b[16:]; len(sets) > 0; {
		if len(sets) < 4 || int(be.Uint16(sets[2:])) < 4 || int(be.Uint16(sets[2:])) > len(sets) {
			c.malformed++
			return fmt.Errorf("bad set length")
		}
		id, body := be.Uint16(sets), sets[4:be.Uint16(sets[2:])]
		sets = sets[be.Uint16(sets[2:]):]
		switch {
		case id == ipfixTemplateSetID:
			if err := c.addTemplates(body); err != nil {
				c.malformed++
				return err
			}
		case id == ipfixOptionsSetID || id < 256:
		default:
			t, ok := c.templates[id]
			if !ok {
				c.unknown++
				continue
			}
			for ; len(body) >= t.size; body = body[t.size:] {
				reason := 0
				if t.reasonAt >= 0 && int(body[t.reasonAt]) < len(c.records) {
					reason = int(body[t.reasonAt])
				}
				c.records[reason]++
				records++
			}
		}
	}
	// The sequence number counts the data records sent before this
	// message, modulo 2^32; messages may come out of order, so the sent
	// total is the largest end seen.
	end := uint64(seq) + records
	if !c.seqOK || end > c.sent {
		c.sent, c.seqOK = end, true
	}
	return nil
}

// addTemplates reads a template set's records.
func (c *ipfixCount) addTemplates(b []byte) error {
	be := binary.BigEndian
	for len(b) >= 4 {
		id, fields := be.Uint16(b), int(be.Uint16(b[2:]))
		b = b[4:]
		t := ipfixTemplate{reasonAt: -1}
		for range fields {
			if len(b) < 4 {
				return fmt.Errorf("template %d: short field", id)
			}
			ie, size := be.Uint16(b), int(be.Uint16(b[2:]))
			b = b[4:]
			if ie&0x8000 != 0 { // enterprise-specific: a PEN follows
				if len(b) < 4 {
					return fmt.Errorf("template %d: short enterprise field", id)
				}
				b = b[4:]
			} else if ie == ieFlowEndReason && size == 1 {
				t.reasonAt = t.size
			}
			if size == 0xffff {
				return fmt.Errorf("template %d: variable-length fields are not supported", id)
			}
			t.size += size
		}
		if t.size == 0 {
			return fmt.Errorf("template %d: no fields", id)
		}
		c.templates[id] = t
	}
	return nil
}

// collector is a UDP IPFIX collector on loopback that counts records.
type collector struct {
	conn *net.UDPConn
	mu   sync.Mutex
	n    ipfixCount
	last time.Time // when the last message came
	wg   sync.WaitGroup
}

func newCollector() (*collector, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	// A big buffer, forced past net.core.rmem_max (root): loss at the
	// collector's socket is counted anyway (/proc/net/udp's drops).
	if rc, err := conn.SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20)
		})
	}
	c := &collector{conn: conn}
	c.wg.Go(func() {
		buf := make([]byte, 65536)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			c.mu.Lock()
			c.n.message(buf[:n])
			c.last = time.Now()
			c.mu.Unlock()
		}
	})
	return c, nil
}

func (c *collector) url() string { return "udp://" + c.conn.LocalAddr().String() }

// count returns a copy of the counts so far and when the last message came.
func (c *collector) count() (ipfixCount, time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.n
	n.templates = nil
	return n, c.last
}

// drops is the number of datagrams the kernel dropped at the collector's
// socket (a full receive buffer), from /proc/net/udp; -1 if unknown.
func (c *collector) drops() int {
	port := c.conn.LocalAddr().(*net.UDPAddr).Port
	f, err := os.Open("/proc/net/udp")
	if err != nil {
		return -1
	}
	defer f.Close()
	want := fmt.Sprintf("0100007F:%04X", port)
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 13 && fields[1] == want {
			d, err := strconv.Atoi(fields[len(fields)-1])
			if err != nil {
				return -1
			}
			return d
		}
	}
	return -1
}

func (c *collector) close() {
	c.conn.Close()
	c.wg.Wait()
}
