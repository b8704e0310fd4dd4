package remote

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"

	"github.com/flowtop/flowtop/report"
)

// fastFlow reads one flow object the way encoding/json would into w,
// without reflection: encoding/json spent some 30 µs of CPU on each flow
// of a document, three seconds for a 100k-flow table. It takes the
// common shapes only (no escapes in strings, the types of
// docs/snapshot.md); anything else returns errSlow, and the caller hands
// the element to encoding/json, which reads it or says what is wrong.
// elem is valid JSON: encoding/json checked the whole document first.
func fastFlow(elem []byte, w *wireFlow, names map[string]string) error {
	s := scanner{b: elem, names: names}
	return s.object(func(key []byte) error {
		if s.null() {
			return nil // null leaves a field as it is, as encoding/json does
		}
		switch string(key) {
		case "id":
			return s.uint32(&w.ID)
		case "family":
			return s.text(w.Family.UnmarshalText)
		case "proto":
			return s.text(w.Proto.UnmarshalText)
		case "proto_num":
			v, err := s.uint(8)
			w.ProtoNum = int(v)
			return err
		case "state":
			return s.text(w.State.UnmarshalText)
		case "src":
			return s.text(w.Src.UnmarshalText)
		case "dst":
			return s.text(w.Dst.UnmarshalText)
		case "reply_src":
			return s.text(w.ReplySrc.UnmarshalText)
		case "reply_dst":
			return s.text(w.ReplyDst.UnmarshalText)
		case "sport":
			return s.uint16(&w.Sport)
		case "dport":
			return s.uint16(&w.Dport)
		case "reply_sport":
			return s.uint16(&w.ReplySport)
		case "reply_dport":
			return s.uint16(&w.ReplyDport)
		case "icmp_type":
			return s.uint8(&w.ICMPType)
		case "icmp_code":
			return s.uint8(&w.ICMPCode)
		case "icmp_id":
			return s.uint16(&w.ICMPID)
		case "status":
			raw, err := s.value()
			if err != nil {
				return err
			}
			return w.Status.UnmarshalJSON(raw)
		case "counted":
			return s.bool(&w.Counted)
		case "orig":
			return s.dir(&w.Orig)
		case "reply":
			return s.dir(&w.Reply)
		case "start":
			raw, err := s.value()
			if err != nil || raw[0] != '"' {
				return errSlow
			}
			return w.Start.UnmarshalJSON(raw)
		case "timeout_s":
			return s.uint32(&w.TimeoutS)
		case "mark":
			return s.uint32(&w.Mark)
		case "zone":
			return s.uint16(&w.Zone)
		case "labels":
			return s.text(w.Labels.UnmarshalText)
		case "service":
			return s.name(&w.Service)
		case "sservice":
			return s.name(&w.SService)
		case "src_name":
			return s.string(&w.SrcName)
		case "dst_name":
			return s.string(&w.DstName)
		case "src_geo":
			w.SrcGeo = new(report.Geo)
			return s.geo(w.SrcGeo)
		case "dst_geo":
			w.DstGeo = new(report.Geo)
			return s.geo(w.DstGeo)
		case "process":
			w.Process = new(report.Process)
			return s.process(w.Process)
		}
		_, err := s.value() // a key of a newer version
		return err
	})
}

// errSlow says: read this flow with encoding/json.
var errSlow = errors.New("not the common shape")

// scanner reads valid JSON.
type scanner struct {
	b []byte
	i int
	// names, when set, hands out one copy of each short name (services,
	// countries, cities, AS and process names, users): a document repeats
	// a few of them on every flow.
	names map[string]string
}

// maxInterned bounds the names a document shares.
const maxInterned = 4096

// name reads a string, shared through s.names.
func (s *scanner) name(dst *string) error {
	v, err := s.str()
	if err != nil || s.names == nil || len(v) > 64 {
		if err != nil {
			return s.string(dst)
		}
		*dst = string(v)
		return nil
	}
	if n, ok := s.names[string(v)]; ok {
		*dst = n
		return nil
	}
	*dst = string(v)
	if len(s.names) < maxInterned {
		s.names[*dst] = *dst
	}
	return nil
}

func (s *scanner) ws() {
	for s.i < len(s.b) && isSpace(s.b[s.i]) {
		s.i++
	}
}

// object reads an object, calling field with each key, the scanner at
// the key's value.
func (s *scanner) object(field func(key []byte) error) error {
	s.ws()
	if s.i >= len(s.b) || s.b[s.i] != '{' {
		return errSlow
	}
	s.i++
	for {
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == '}' {
			s.i++
			return nil
		}
		key, err := s.str()
		if err != nil {
			return err
		}
		s.ws()
		if s.i >= len(s.b) || s.b[s.i] != ':' {
			return errSlow
		}
		s.i++
		s.ws()
		if err := field(key); err != nil {
			return err
		}
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == ',' {
			s.i++
		}
	}
}

// str reads a string without escapes and returns what is between the
// quotes.
func (s *scanner) str() ([]byte, error) {
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return nil, errSlow
	}
	end := bytes.IndexByte(s.b[s.i+1:], '"')
	if end < 0 {
		return nil, errSlow
	}
	v := s.b[s.i+1 : s.i+1+end]
	if bytes.IndexByte(v, '\\') >= 0 {
		return nil, errSlow
	}
	s.i += end + 2
	return v, nil
}

func (s *scanner) text(set func([]byte) error) error {
	v, err := s.str()
	if err != nil {
		return err
	}
	return set(v)
}

// string reads a string; one with escapes (an AS name with "&", a
// non-ASCII name escaped by another writer) through encoding/json.
func (s *scanner) string(dst *string) error {
	if v, err := s.str(); err == nil {
		*dst = string(v)
		return nil
	}
	raw, err := s.value()
	if err != nil || raw[0] != '"' {
		return errSlow
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return errSlow
	}
	return nil
}

func (s *scanner) null() bool {
	if bytes.HasPrefix(s.b[s.i:], []byte("null")) {
		s.i += 4
		return true
	}
	return false
}

func (s *scanner) bool(dst *bool) error {
	switch {
	case bytes.HasPrefix(s.b[s.i:], []byte("true")):
		*dst = true
		s.i += 4
	case bytes.HasPrefix(s.b[s.i:], []byte("false")):
		*dst = false
		s.i += 5
	default:
		return errSlow
	}
	return nil
}

// number returns the bytes of a number.
func (s *scanner) number() []byte {
	start := s.i
	for s.i < len(s.b) {
		c := s.b[s.i]
		if c >= '0' && c <= '9' || c == '-' || c == '+' || c == '.' || c == 'e' || c == 'E' {
			s.i++
			continue
		}
		break
	}
	return s.b[start:s.i]
}

// uint reads an unsigned integer of the given bits; a sign, a fraction or
// an exponent is encoding/json's to refuse.
func (s *scanner) uint(bits int) (uint64, error) {
	n := s.number()
	if len(n) == 0 || len(n) > 20 {
		return 0, errSlow
	}
	var v uint64
	for _, c := range n {
		if c < '0' || c > '9' {
			return 0, errSlow
		}
		d := uint64(c - '0')
		if v > (1<<64-1-d)/10 {
			return 0, errSlow
		}
		v = v*10 + d
	}
	if bits < 64 && v >= 1<<bits {
		return 0, errSlow
	}
	return v, nil
}

func (s *scanner) uint8(dst *uint8) error {
	v, err := s.uint(8)
	*dst = uint8(v)
	return err
}

func (s *scanner) uint16(dst *uint16) error {
	v, err := s.uint(16)
	*dst = uint16(v)
	return err
}

func (s *scanner) uint32(dst *uint32) error {
	v, err := s.uint(32)
	*dst = uint32(v)
	return err
}

func (s *scanner) float(dst *float64) error {
	n := s.number()
	if len(n) == 0 || len(n) > 64 {
		return errSlow
	}
	v, err := strconv.ParseFloat(string(n), 64)
	if err != nil {
		return errSlow
	}
	*dst = v
	return nil
}

// dir reads one direction's counters and rates.
func (s *scanner) dir(d *wireDir) error {
	return s.object(func(key []byte) error {
		if s.null() {
			return nil
		}
		switch string(key) {
		case "bytes":
			v, err := s.uint(64)
			d.Bytes = v
			return err
		case "packets":
			v, err := s.uint(64)
			d.Packets = v
			return err
		case "bytes_per_s":
			return s.float(&d.BytesPerS)
		case "packets_per_s":
			return s.float(&d.PacketsPerS)
		case "bytes_per_s_2s":
			return s.float(&d.Avg2)
		case "bytes_per_s_10s":
			return s.float(&d.Avg10)
		case "bytes_per_s_40s":
			return s.float(&d.Avg40)
		}
		_, err := s.value()
		return err
	})
}

func (s *scanner) geo(g *report.Geo) error {
	return s.object(func(key []byte) error {
		if s.null() {
			return nil
		}
		switch string(key) {
		case "country":
			return s.name(&g.Country)
		case "country_name":
			return s.name(&g.CountryName)
		case "city":
			return s.name(&g.City)
		case "asn":
			v, err := s.uint(32)
			g.ASN = uint(v)
			return err
		case "as_org":
			return s.name(&g.ASOrg)
		}
		_, err := s.value()
		return err
	})
}

func (s *scanner) process(p *report.Process) error {
	return s.object(func(key []byte) error {
		if s.null() {
			return nil
		}
		switch string(key) {
		case "pid":
			v, err := s.uint(31) // an int; a negative one is encoding/json's
			p.PID = int(v)
			return err
		case "name":
			return s.name(&p.Name)
		case "user":
			return s.name(&p.User)
		case "cmdline":
			return s.string(&p.Cmdline)
		}
		_, err := s.value()
		return err
	})
}

// value skips any value and returns its bytes.
func (s *scanner) value() ([]byte, error) {
	start := s.i
	elem, rest, ok := nextElement(s.b[s.i:])
	if !ok || len(elem) == 0 {
		return nil, errSlow
	}
	s.i = len(s.b) - len(rest)
	return bytes.TrimRight(s.b[start:start+len(elem)], " \t\r\n"), nil
}
