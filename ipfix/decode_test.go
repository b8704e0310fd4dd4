package ipfix

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// A small IPFIX and NetFlow v9 collector for the tests, written from RFC
// 7011 and RFC 3954 rather than from the encoder, so that a round trip
// checks the encoder against the protocols.

// fkey names an element: its number and enterprise (0 for IANA's).
type fkey struct {
	pen uint32
	id  uint16
}

func (k fkey) String() string {
	if k.pen != 0 {
		return fmt.Sprintf("%d/%d", k.pen, k.id)
	}
	return fmt.Sprint(k.id)
}

type fspec struct {
	key  fkey
	size int
}

// dataRecord is one decoded data record: its template and its fields.
type dataRecord struct {
	template uint16
	fields   map[fkey][]byte
}

// u is the unsigned integer value of element id (0 when absent).
func (r dataRecord) u(id uint16) uint64 { return r.uk(fkey{0, id}) }

// rev is the reverse (RFC 5103) element id's value.
func (r dataRecord) rev(id uint16) uint64 { return r.uk(fkey{reversePEN, id}) }

func (r dataRecord) uk(k fkey) uint64 {
	var v uint64
	for _, b := range r.fields[k] {
		v = v<<8 | uint64(b)
	}
	return v
}

// has reports whether element id is present.
func (r dataRecord) has(id uint16) bool { _, ok := r.fields[fkey{0, id}]; return ok }

// addr is element id as an address ("" when absent).
func (r dataRecord) addr(id uint16) string {
	b, ok := r.fields[fkey{0, id}]
	if !ok {
		return ""
	}
	a, ok := netip.AddrFromSlice(b)
	if !ok {
		return "bad"
	}
	return a.String()
}

// message is one decoded export message.
type message struct {
	version      uint16
	length       int // IPFIX: the header's length; v9: the datagram's
	count        int // v9 header count
	exportSecs   uint32
	sysUptime    uint32 // v9
	seq, domain  uint32
	templates    []uint16
	records      []dataRecord
	unknownSets  int // data sets whose template was not known
	paddingBytes int
}

// collectorState keeps the templates learnt, as a collector does per
// exporter and domain.
type collectorState struct {
	templates map[uint16][]fspec
}

func newCollectorState() *collectorState {
	return &collectorState{templates: map[uint16][]fspec{}}
}

// decode reads one message (one UDP datagram, or one framed TCP message).
func (c *collectorState) decode(b []byte) (*message, error) {
	be := binary.BigEndian
	if len(b) < 4 {
		return nil, fmt.Errorf("message of %d bytes", len(b))
	}
	m := &message{version: be.Uint16(b)}
	var sets []byte
	switch m.version {
	case 10:
		if len(b) < 16 {
			return nil, fmt.Errorf("short IPFIX header")
		}
		m.length = int(be.Uint16(b[2:]))
		if m.length != len(b) {
			return nil, fmt.Errorf("IPFIX length %d, message %d bytes", m.length, len(b))
		}
		m.exportSecs, m.seq, m.domain = be.Uint32(b[4:]), be.Uint32(b[8:]), be.Uint32(b[12:])
		sets = b[16:]
	case 9:
		if len(b) < 20 {
			return nil, fmt.Errorf("short v9 header")
		}
		m.length = len(b)
		m.count = int(be.Uint16(b[2:]))
		m.sysUptime, m.exportSecs, m.seq, m.domain = be.Uint32(b[4:]), be.Uint32(b[8:]), be.Uint32(b[12:]), be.Uint32(b[16:])
		sets = b[20:]
	default:
		return nil, fmt.Errorf("version %d", m.version)
	}
	for len(sets) > 0 {
		if len(sets) < 4 {
			return nil, fmt.Errorf("%d stray bytes after the last set", len(sets))
		}
		id, n := be.Uint16(sets), int(be.Uint16(sets[2:]))
		if n < 4 || n > len(sets) {
			return nil, fmt.Errorf("set %d: length %d of %d left", id, n, len(sets))
		}
		body := sets[4:n]
		sets = sets[n:]
		switch {
		case (m.version == 10 && id == 2) || (m.version == 9 && id == 0):
			if err := c.templateSet(m, body); err != nil {
				return nil, err
			}
		case id >= 256:
			if err := c.dataSet(m, id, body); err != nil {
				return nil, err
			}
		default:
			return nil, fmt.Errorf("unexpected set id %d", id)
		}
	}
	return m, nil
}

func (c *collectorState) templateSet(m *message, b []byte) error {
	be := binary.BigEndian
	for len(b) >= 4 {
		id, count := be.Uint16(b), int(be.Uint16(b[2:]))
		if id == 0 && count == 0 && m.version == 9 {
			break // padding
		}
		b = b[4:]
		var specs []fspec
		for range count {
			if len(b) < 4 {
				return fmt.Errorf("template %d cut short", id)
			}
			k := fkey{id: be.Uint16(b)}
			size := int(be.Uint16(b[2:]))
			b = b[4:]
			if k.id&0x8000 != 0 {
				if m.version != 10 || len(b) < 4 {
					return fmt.Errorf("template %d: enterprise element in v%d", id, m.version)
				}
				k.id &^= 0x8000
				k.pen = be.Uint32(b)
				b = b[4:]
			}
			specs = append(specs, fspec{k, size})
		}
		c.templates[id] = specs
		m.templates = append(m.templates, id)
		m.count--
	}
	m.paddingBytes += len(b)
	return nil
}

func (c *collectorState) dataSet(m *message, id uint16, b []byte) error {
	specs, ok := c.templates[id]
	if !ok {
		m.unknownSets++
		return nil
	}
	size := 0
	for _, s := range specs {
		size += s.size
	}
	for len(b) >= size {
		r := dataRecord{template: id, fields: map[fkey][]byte{}}
		for _, s := range specs {
			if _, dup := r.fields[s.key]; dup {
				return fmt.Errorf("template %d: element %v twice", id, s.key)
			}
			r.fields[s.key] = b[:s.size:s.size]
			b = b[s.size:]
		}
		m.records = append(m.records, r)
		m.count--
	}
	m.paddingBytes += len(b)
	return nil
}
