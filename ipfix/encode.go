package ipfix

import (
	"encoding/binary"
	"fmt"
	"strings"
	"time"

	"github.com/flowtop/flowtop/conntrack"
)

// Format is the wire format, named as --ipfix-format names it: IPFIX
// (version 10) or NetFlow v9.
type Format string

// Formats.
const (
	FormatIPFIX Format = "ipfix"
	FormatNF9   Format = "nf9"
)

// ParseFormat reads --ipfix-format: "ipfix" or "nf9".
func ParseFormat(s string) (Format, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "ipfix":
		return FormatIPFIX, nil
	case "nf9":
		return FormatNF9, nil
	}
	return "", fmt.Errorf("format %q: want ipfix or nf9", s)
}

// Message and set header lengths, and the set IDs of template sets.
const (
	ipfixHeaderLen = 16
	nf9HeaderLen   = 20
	setHeaderLen   = 4
	ipfixTemplSet  = 2
	nf9TemplSet    = 0
)

// encoder builds export messages of at most max bytes: a header, then
// template and data sets. One sender owns it (its sequence number counts
// what that collector was sent).
type encoder struct {
	format Format
	tmpl   templateSet
	max    int
	domain uint32
	// boot is when the system started, in Unix milliseconds: NetFlow v9
	// gives times as milliseconds of uptime.
	boot int64

	// seq is the header's sequence number: IPFIX counts data records
	// sent, NetFlow v9 counts messages.
	seq uint32

	buf   []byte
	set   int // offset of the open set's header, -1 when none is open
	setID uint16
	// data counts the data records of the message, all the records
	// (templates and data) for v9's header count.
	data, all int
}

func newEncoder(format Format, max int, domain uint32, boot int64) *encoder {
	e := &encoder{format: format, max: max, domain: domain, boot: boot, buf: make([]byte, 0, max)}
	if format == FormatNF9 {
		e.tmpl = nf9Templates()
	} else {
		e.tmpl = ipfixTemplates()
	}
	e.reset()
	return e
}

func (e *encoder) headerLen() int {
	if e.format == FormatNF9 {
		return nf9HeaderLen
	}
	return ipfixHeaderLen
}

// reset starts a new message.
func (e *encoder) reset() {
	e.buf = e.buf[:e.headerLen()]
	clear(e.buf)
	e.set, e.data, e.all = -1, 0, 0
}

// empty reports a message without any set.
func (e *encoder) empty() bool { return len(e.buf) == e.headerLen() }

// records is the number of data records in the message.
func (e *encoder) records() int { return e.data }

// room reports whether n more bytes fit, with the set header when the set
// id changes and, for v9, up to 3 bytes of padding to close the set.
func (e *encoder) room(setID uint16, n int) bool {
	if e.set < 0 || e.setID != setID {
		n += setHeaderLen
	}
	if e.format == FormatNF9 {
		n += 3
	}
	// Closing the open set may pad it.
	if e.set >= 0 && e.setID != setID && e.format == FormatNF9 {
		n += 3
	}
	return len(e.buf)+n <= e.max
}

// openSet makes setID the open set, closing another one.
func (e *encoder) openSet(setID uint16) {
	if e.set >= 0 && e.setID == setID {
		return
	}
	e.closeSet()
	e.set, e.setID = len(e.buf), setID
	e.buf = append(e.buf, 0, 0, 0, 0)
	binary.BigEndian.PutUint16(e.buf[e.set:], setID)
}

// closeSet writes the open set's length, padding a v9 flowset to four
// bytes as RFC 3954 asks (IPFIX needs no padding).
func (e *encoder) closeSet() {
	if e.set < 0 {
		return
	}
	if e.format == FormatNF9 {
		for (len(e.buf)-e.set)%4 != 0 {
			e.buf = append(e.buf, 0)
		}
	}
	binary.BigEndian.PutUint16(e.buf[e.set+2:], uint16(len(e.buf)-e.set))
	e.set = -1
}

func (e *encoder) templateSetID() uint16 {
	if e.format == FormatNF9 {
		return nf9TemplSet
	}
	return ipfixTemplSet
}

// templateLen is the length of t's template record.
func templateLen(t *template) int {
	n := 4
	for _, f := range t.fields {
		n += 4
		if f.pen != 0 {
			n += 4
		}
	}
	return n
}

// addTemplate adds the template record of kind k; false when it does not
// fit in the message.
func (e *encoder) addTemplate(k recordKind) bool {
	t := e.tmpl[k]
	if t == nil {
		return true // no such record in this format
	}
	sid := e.templateSetID()
	if !e.room(sid, templateLen(t)) {
		return false
	}
	e.openSet(sid)
	b := e.buf
	b = binary.BigEndian.AppendUint16(b, t.id)
	b = binary.BigEndian.AppendUint16(b, uint16(len(t.fields)))
	for _, f := range t.fields {
		if f.pen != 0 {
			b = binary.BigEndian.AppendUint16(b, f.id|0x8000)
			b = binary.BigEndian.AppendUint16(b, f.size)
			b = binary.BigEndian.AppendUint32(b, f.pen)
			continue
		}
		b = binary.BigEndian.AppendUint16(b, f.id)
		b = binary.BigEndian.AppendUint16(b, f.size)
	}
	e.buf = b
	e.all++
	return true
}

// add encodes r; false when it does not fit in the message.
func (e *encoder) add(r *record) bool {
	t := e.tmpl[r.kind]
	if t == nil {
		return true // no such record in this format (Config.validate prevents it)
	}
	if !e.room(t.id, t.size) {
		return false
	}
	e.openSet(t.id)
	off := len(e.buf)
	e.buf = e.buf[:off+t.size]
	b := e.buf[off:]
	for _, f := range t.fields {
		e.put(b[:f.size], f.v, r)
		b = b[f.size:]
	}
	e.data++
	e.all++
	return true
}

// put writes the value v of r into b, which is the field's length.
func (e *encoder) put(b []byte, v value, r *record) {
	be := binary.BigEndian
	switch v {
	case vFlowID:
		be.PutUint64(b, uint64(r.id))
	case vStartMs, vObsTimeMs:
		be.PutUint64(b, uint64(r.start))
	case vEndMs:
		be.PutUint64(b, uint64(r.end))
	case vFirstSwitched:
		be.PutUint32(b, uint32(r.start-e.boot))
	case vLastSwitched:
		be.PutUint32(b, uint32(r.end-e.boot))
	case vSrc4:
		put4(b, r.src)
	case vDst4:
		put4(b, r.dst)
	case vSrc6:
		put16(b, r.src)
	case vDst6:
		put16(b, r.dst)
	case vPostSrc4:
		put4(b, r.postSrc)
	case vPostDst4:
		put4(b, r.postDst)
	case vPostSrc6:
		put16(b, r.postSrc)
	case vPostDst6:
		put16(b, r.postDst)
	case vSrcPort:
		be.PutUint16(b, r.srcPort)
	case vDstPort:
		be.PutUint16(b, r.dstPort)
	case vPostSrcPort:
		be.PutUint16(b, r.postSrcPort)
	case vPostDstPort:
		be.PutUint16(b, r.postDstPort)
	case vICMPTypeCode:
		be.PutUint16(b, r.icmp)
	case vProto:
		b[0] = byte(r.proto)
	case vOrigOctets:
		be.PutUint64(b, r.orig.Bytes)
	case vOrigPackets:
		be.PutUint64(b, r.orig.Packets)
	case vReplyOctets:
		be.PutUint64(b, r.reply.Bytes)
	case vReplyPackets:
		be.PutUint64(b, r.reply.Packets)
	case vEndReason:
		b[0] = r.reason
	case vFlowDirection:
		b[0] = flowIngress
	case vBiflowDirection:
		b[0] = biflowInitiator
	case vNATEvent:
		b[0] = r.event
	}
}

func put4(b []byte, a conntrack.Addr) {
	if !a.Is4() {
		clear(b)
		return
	}
	ip := a.IP().As4()
	copy(b, ip[:])
}

func put16(b []byte, a conntrack.Addr) {
	if !a.IsValid() {
		clear(b)
		return
	}
	ip := a.IP().As16()
	copy(b, ip[:])
}

// finish closes the message, fills in its header for the export time now
// and returns it; the bytes are valid until the next reset.
func (e *encoder) finish(now time.Time) []byte {
	e.closeSet()
	b, be := e.buf, binary.BigEndian
	if e.format == FormatNF9 {
		be.PutUint16(b[0:], 9)
		be.PutUint16(b[2:], uint16(e.all))
		// The collector finds the boot time as unix_secs*1000 - sysUptime:
		// an uptime counted from the whole second keeps the flows'
		// milliseconds exact.
		be.PutUint32(b[4:], uint32(now.Unix()*1000-e.boot))
		be.PutUint32(b[8:], uint32(now.Unix()))
		be.PutUint32(b[12:], e.seq)
		be.PutUint32(b[16:], e.domain)
		e.seq++
		return b
	}
	be.PutUint16(b[0:], 10)
	be.PutUint16(b[2:], uint16(len(b)))
	be.PutUint32(b[4:], uint32(now.Unix()))
	be.PutUint32(b[8:], e.seq)
	be.PutUint32(b[12:], e.domain)
	e.seq += uint32(e.data)
	return b
}

// minMessage is the smallest message length that holds any one template
// or record with its headers: a lower bound for --ipfix-mtu.
func minMessage(format Format) int {
	var ts templateSet
	hdr := ipfixHeaderLen
	if format == FormatNF9 {
		ts, hdr = nf9Templates(), nf9HeaderLen
	} else {
		ts = ipfixTemplates()
	}
	n := 0
	for _, t := range ts {
		if t != nil {
			n = max(n, templateLen(t), t.size)
		}
	}
	return hdr + setHeaderLen + n + 3
}
