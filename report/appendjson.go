package report

import (
	"encoding/hex"
	"encoding/json"
	"math"
	"net/netip"
	"strconv"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
)

// appendFlow appends the document of flow f (flowDoc, and namesDoc of n
// when not nil) as encoding/json would encode it: HTML-safe, the same
// bytes (a test compares the two on many flows), but straight from the
// flow, without the document's strings and pointers, reflection or
// allocation for the usual flow. The document of every flow of a 100k
// table took a second and 190 MB with encoding/json. ok is false for what
// encoding/json would refuse (a NaN or infinite rate); the caller then
// asks encoding/json for its error.
func appendFlow(b []byte, f *conntrack.Flow, now time.Time, n *enrich.Names) (_ []byte, ok bool) {
	b = appendKeyUint(b, `{"id":`, uint64(f.ID))
	b = appendKeyString(b, `,"family":`, f.Family.String())
	b = appendKeyString(b, `,"proto":`, f.Proto.String())
	b = appendKeyUint(b, `,"proto_num":`, uint64(f.Proto))
	b = appendKeyString(b, `,"state":`, f.StateName())
	b = appendAddr(append(b, `,"src":`...), f.Orig.Src.IP())
	b = appendKeyUint(b, `,"sport":`, uint64(f.Orig.SrcPort))
	b = appendAddr(append(b, `,"dst":`...), f.Orig.Dst.IP())
	b = appendKeyUint(b, `,"dport":`, uint64(f.Orig.DstPort))
	b = appendAddr(append(b, `,"reply_src":`...), f.Reply.Src.IP())
	b = appendKeyUint(b, `,"reply_sport":`, uint64(f.Reply.SrcPort))
	b = appendAddr(append(b, `,"reply_dst":`...), f.Reply.Dst.IP())
	b = appendKeyUint(b, `,"reply_dport":`, uint64(f.Reply.DstPort))
	if f.Proto == conntrack.ProtoICMP || f.Proto == conntrack.ProtoICMPv6 {
		b = appendKeyUint(b, `,"icmp_type":`, uint64(f.ICMP.Type))
		b = appendKeyUint(b, `,"icmp_code":`, uint64(f.ICMP.Code))
		b = appendKeyUint(b, `,"icmp_id":`, uint64(f.ICMP.ID))
	}
	b = appendKeyString(b, `,"nat":`, f.NAT().String())
	b = append(b, `,"status":[`...)
	var status [16]string // room for the names, on the stack
	for i, s := range f.Status.AppendNames(status[:0]) {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	b = append(b, ']')

	b = append(b, `,"counted":`...)
	b = strconv.AppendBool(b, f.HasCounters)
	b = append(b, `,"orig":`...)
	if b, ok = appendDirection(b, f.HasCounters, f.OrigCount, f.OrigRate); !ok {
		return b, false
	}
	b = append(b, `,"reply":`...)
	if b, ok = appendDirection(b, f.HasCounters, f.ReplyCount, f.ReplyRate); !ok {
		return b, false
	}
	if age, known := f.Age(now); known {
		start := f.Start.Time().UTC()
		if y := start.Year(); y < 0 || y > 9999 {
			return b, false // encoding/json refuses it
		}
		b = append(b, `,"start":"`...)
		b = start.AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","age_s":`...)
		if b, ok = appendFloat(b, age.Seconds()); !ok {
			return b, false
		}
	} else {
		b = append(b, `,"start":null,"age_s":null`...)
	}
	b = appendKeyUint(b, `,"timeout_s":`, uint64(uint32(f.TimeLeft(now).Seconds())))
	b = appendKeyUint(b, `,"mark":`, uint64(f.Mark))
	b = appendKeyUint(b, `,"zone":`, uint64(f.Zone))
	if !f.Labels.IsZero() {
		l := f.Labels.Get()
		b = append(b, `,"labels":"`...)
		b = hex.AppendEncode(b, l[:])
		b = append(b, '"')
	}
	if n != nil {
		b = appendNames(b, n)
	}
	return append(b, '}'), true
}

// appendNames appends the keys of namesDoc(*n), each only when known.
func appendNames(b []byte, n *enrich.Names) []byte {
	if n.Service != "" {
		b = appendKeyString(b, `,"service":`, n.Service)
	}
	if n.SrcService != "" {
		b = appendKeyString(b, `,"sservice":`, n.SrcService)
	}
	if n.SrcName != "" {
		b = appendKeyString(b, `,"src_name":`, n.SrcName)
	}
	if n.DstName != "" {
		b = appendKeyString(b, `,"dst_name":`, n.DstName)
	}
	if n.SrcGeo.Known() {
		g := Geo(n.SrcGeo)
		b = appendGeo(append(b, `,"src_geo":`...), &g)
	}
	if n.DstGeo.Known() {
		g := Geo(n.DstGeo)
		b = appendGeo(append(b, `,"dst_geo":`...), &g)
	}
	if p := &n.Process; p.Known() {
		b = append(b, `,"process":{"pid":`...)
		b = strconv.AppendInt(b, int64(p.PID), 10)
		b = appendKeyString(b, `,"name":`, p.Name)
		if p.User != "" {
			b = appendKeyString(b, `,"user":`, p.User)
		}
		if p.Cmdline != "" {
			b = appendKeyString(b, `,"cmdline":`, p.Cmdline)
		}
		b = append(b, '}')
	}
	return b
}

// appendAddr appends addrString(a) as a JSON string (an address needs no
// escaping).
func appendAddr(b []byte, a netip.Addr) []byte {
	b = append(b, '"')
	if a.IsValid() {
		b = a.Unmap().AppendTo(b)
	}
	return append(b, '"')
}

// appendDirection appends direction(counted, c, r).
func appendDirection(b []byte, counted bool, c conntrack.Counter, r conntrack.Rate) (_ []byte, ok bool) {
	if counted {
		b = appendKeyUint(b, `{"bytes":`, c.Bytes)
		b = appendKeyUint(b, `,"packets":`, c.Packets)
	} else {
		b = append(b, `{"bytes":null,"packets":null`...)
	}
	for _, kv := range [...]struct {
		key string
		v   float64
	}{
		{`,"bytes_per_s":`, float64(r.Bytes)},
		{`,"packets_per_s":`, float64(r.Packets)},
		{`,"bytes_per_s_2s":`, float64(r.Avg2)},
		{`,"bytes_per_s_10s":`, float64(r.Avg10)},
		{`,"bytes_per_s_40s":`, float64(r.Avg40)},
	} {
		b = append(b, kv.key...)
		if b, ok = appendFloat(b, kv.v); !ok {
			return b, false
		}
	}
	return append(b, '}'), true
}

func appendGeo(b []byte, g *Geo) []byte {
	b = append(b, '{')
	first := true
	field := func(key string) {
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, key...)
	}
	if g.Country != "" {
		field(`"country":`)
		b = appendString(b, g.Country)
	}
	if g.CountryName != "" {
		field(`"country_name":`)
		b = appendString(b, g.CountryName)
	}
	if g.City != "" {
		field(`"city":`)
		b = appendString(b, g.City)
	}
	if g.ASN != 0 {
		field(`"asn":`)
		b = strconv.AppendUint(b, uint64(g.ASN), 10)
	}
	if g.ASOrg != "" {
		field(`"as_org":`)
		b = appendString(b, g.ASOrg)
	}
	return append(b, '}')
}

// appendFloat is encoding/json's float64 format: the shortest decimal
// that reads back the same, exponent form below 1e-6 and from 1e21.
func appendFloat(b []byte, f float64) (_ []byte, ok bool) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return b, false
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 to e-9, as encoding/json does
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, true
}

func appendKeyUint(b []byte, key string, v uint64) []byte {
	return strconv.AppendUint(append(b, key...), v, 10)
}

func appendKeyString(b []byte, key, s string) []byte {
	return appendString(append(b, key...), s)
}

// appendString appends s as a JSON string. Printable ASCII without the
// characters encoding/json escapes (" \ < > &) is copied; anything else,
// rare in a flow, is left to encoding/json.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s) // a string always encodes
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
