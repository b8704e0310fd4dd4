package remote

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
	"github.com/flowtop/flowtop/geo"
	"github.com/flowtop/flowtop/report"
)

// maxParts bounds the parts of one document: a node splits into parts of
// 256 KiB, so 4096 parts are a 1 GiB document, far past anything a table
// holds.
const maxParts = 4096

// maxBadFlows is how many unreadable flows a document may have before it
// is refused whole: a few are skipped (and said), a flood of them is a
// broken or hostile sender.
const maxBadFlows = 1000

// header is a document without its flows.
type header struct {
	Version   int
	Host      string
	Time      time.Time
	IntervalS float64
	Netns     string
	Filter    string
	RequestID string
	// PublishIntervalS is the router's --mqtt-interval, 0 when not sent.
	PublishIntervalS float64
	Part             int
	Parts            int
	Totals           report.Totals
	Health           report.Health
}

// part is one decoded message: a whole document (Parts 0) or one numbered
// part of one.
type part struct {
	header
	flows []conntrack.Flow
	// names is parallel to flows: what the router knew of each (services,
	// reverse DNS, GeoIP, process). nil when no flow carried a name.
	names []enrich.Names
	// skipped counts flows left out for unreadable keys; skipNote says
	// why the first was.
	skipped  int
	skipNote string
}

// errBudget is returned when a document has more flows than may be held.
var errBudget = errors.New("more flows than the viewer holds")

// decodeDocument reads one snapshot message (JSON, already inflated). At
// most budget flows are kept: beyond that the document is refused with
// errBudget, so that no sender can make the viewer hold more than it
// chose to. Errors are one line.
func decodeDocument(body []byte, budget int) (*part, error) {
	d, err := readDocument(body, budget)
	if errors.Is(err, errBudget) {
		return nil, fmt.Errorf("%w: room for %d more", errBudget, budget)
	}
	if err != nil {
		return nil, err
	}
	if d.Version == nil {
		return nil, errors.New("not a flowtop snapshot document (no version key)")
	}
	if *d.Version != report.Version {
		return nil, fmt.Errorf("document version %d, this flowtop reads version %d (update one side)", *d.Version, report.Version)
	}
	if d.Time.IsZero() {
		return nil, errors.New("document without a time")
	}
	if d.Part != 0 || d.Parts != 0 {
		if d.Parts < 1 || d.Parts > maxParts || d.Part < 1 || d.Part > d.Parts {
			return nil, fmt.Errorf("part %d of %d: want 1 <= part <= parts <= %d", d.Part, d.Parts, maxParts)
		}
	}
	if d.Flows.bad > maxBadFlows {
		return nil, fmt.Errorf("%d unreadable flows (first: %s)", d.Flows.bad, d.Flows.note)
	}
	p := &part{
		header: header{
			Version: *d.Version, Host: d.Host, Time: d.Time, IntervalS: d.IntervalS,
			Netns: d.Netns, Filter: d.Filter, RequestID: d.RequestID, PublishIntervalS: d.PublishIntervalS,
			Part: d.Part, Parts: d.Parts, Totals: d.Totals, Health: d.Health,
		},
		flows:    d.Flows.flows,
		names:    d.Flows.names,
		skipped:  d.Flows.bad,
		skipNote: d.Flows.note,
	}
	// The time left of each flow counts from the document's time, which
	// may come after the flows in the object.
	seen := conntrack.StampOf(d.Time)
	for i := range p.flows {
		p.flows[i].Seen = seen
	}
	return p, nil
}

// readDocument reads a document in two steps: the flows array, found by a
// walk of the top-level object and read element by element, then the
// rest (the header) by encoding/json, with the flows cut out. encoding/json
// alone would check and then skip the whole flows array before handing it
// over: two more passes over 60 MB for a 100k-flow table. Whatever the
// walk cannot follow is left to encoding/json whole, for its error.
func readDocument(body []byte, budget int) (*wireDoc, error) {
	d := &wireDoc{}
	d.Flows.budget = budget
	s := scanner{b: body}
	from, to := -1, -1
	err := s.object(func(key []byte) error {
		if string(key) == "flows" && from < 0 {
			from = s.i
			if err := d.Flows.read(&s); err != nil {
				return err
			}
			to = s.i
			return nil
		}
		_, err := s.value()
		return err
	})
	if errors.Is(err, errBudget) {
		return nil, err
	}
	if err == nil && from >= 0 {
		head := make([]byte, 0, len(body)-(to-from)+4)
		head = append(append(append(head, body[:from]...), "null"...), body[to:]...)
		flows := d.Flows
		if err := json.Unmarshal(head, d); err == nil {
			d.Flows = flows
			return d, nil
		}
	}
	// The slow way, for the error it gives or a document without flows.
	d = &wireDoc{}
	d.Flows.budget = budget
	if err := json.Unmarshal(body, d); err != nil {
		if errors.Is(err, errBudget) {
			return nil, err
		}
		return nil, jsonError(err)
	}
	return d, nil
}

// jsonError makes a one-line error of encoding/json's.
func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("invalid JSON at byte %d: %s", syn.Offset, syn.Error())
	case errors.As(err, &typ):
		return fmt.Errorf("key %q holds a JSON %s, want %s", typ.Field, typ.Value, typeName(typ))
	}
	return errors.New(oneLine(err.Error(), 200))
}

// jsonKind names the kind of a JSON value, for errors.
func jsonKind(raw []byte) string {
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '{':
		return "object"
	case '[':
		return "array"
	case '"':
		return "string"
	case 't', 'f':
		return "bool"
	case 'n':
		return "null"
	}
	return "number"
}

func typeName(e *json.UnmarshalTypeError) string {
	if e.Type == nil {
		return "an array"
	}
	return "a " + e.Type.String()
}

// oneLine cuts s to max bytes on one line, for error messages made of
// what a remote sender wrote.
func oneLine(s string, max int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > max {
		s = strings.ToValidUTF8(s[:max], "") + "..."
	}
	return s
}

// gunzip inflates body, refusing to make more than max bytes: a gzip body
// of a few KiB can inflate to gigabytes.
func gunzip(body []byte, max int) ([]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	out, err := io.ReadAll(io.LimitReader(zr, int64(max)+1))
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	if len(out) > max {
		return nil, fmt.Errorf("gzip body inflates past the %s limit", sizeString(max))
	}
	return out, nil
}

func sizeString(n int) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// wireDoc is the document as read: the header keys, and the flows
// decoded one by one into flow records as the array is read.
type wireDoc struct {
	Version          *int          `json:"version"`
	Host             string        `json:"host"`
	Time             time.Time     `json:"time"`
	IntervalS        float64       `json:"interval_s"`
	Netns            string        `json:"netns"`
	Filter           string        `json:"filter"`
	RequestID        string        `json:"request_id"`
	PublishIntervalS float64       `json:"publish_interval_s"`
	Part             int           `json:"part"`
	Parts            int           `json:"parts"`
	Totals           report.Totals `json:"totals"`
	Health           report.Health `json:"health"`
	Flows            wireFlows     `json:"flows"`
}

// wireFlows decodes the flows array one element at a time into a reused
// wireFlow: a document of 100k flows never exists as 100k decoded
// objects, and a body of tiny elements ({},{},...) cannot make the viewer
// hold more than budget records.
type wireFlows struct {
	budget   int
	interned map[string]string // see scanner.names
	scratch  wireFlow
	flows    []conntrack.Flow
	names    []enrich.Names
	bad      int
	note     string
}

func (w *wireFlows) UnmarshalJSON(raw []byte) error {
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" {
		return nil
	}
	if len(raw) < 2 || raw[0] != '[' {
		return &json.UnmarshalTypeError{Value: jsonKind(raw)}
	}
	s := scanner{b: raw}
	return w.read(&s)
}

// read reads the array at s, one element at a time.
func (w *wireFlows) read(s *scanner) error {
	if s.i >= len(s.b) || s.b[s.i] != '[' {
		return errSlow
	}
	s.i++
	// Room for the flows of a typical document of this size (some 500
	// bytes each); append finds more if needed.
	w.flows = make([]conntrack.Flow, 0, min(w.budget, (len(s.b)-s.i)/512+1))
	for i := 0; ; i++ {
		s.ws()
		if s.i >= len(s.b) {
			return errSlow // truncated
		}
		if s.b[s.i] == ']' {
			s.i++
			return nil
		}
		elem, err := s.value()
		if err != nil {
			return err
		}
		if err := w.add(elem, i); err != nil {
			return err
		}
		if w.bad > maxBadFlows {
			return nil // refused by the caller, without reading the rest
		}
		s.ws()
		if s.i < len(s.b) && s.b[s.i] == ',' {
			s.i++
		}
	}
}

// add decodes one element of the array, the i-th.
func (w *wireFlows) add(elem []byte, i int) error {
	// One record for every element: handed to encoding/json, a local one
	// would be allocated each time.
	f := &w.scratch
	*f = wireFlow{ProtoNum: noProtoNum}
	if w.interned == nil {
		w.interned = map[string]string{}
	}
	err := fastFlow(elem, f, w.interned)
	if errors.Is(err, errSlow) {
		*f = wireFlow{ProtoNum: noProtoNum}
		err = json.Unmarshal(elem, f)
	}
	if err != nil {
		w.skip(i, jsonError(err).Error())
		return nil
	}
	fl, names, err := f.flow()
	if err != nil {
		w.skip(i, err.Error())
		return nil
	}
	if len(w.flows) >= w.budget {
		return errBudget
	}
	w.flows = append(w.flows, fl)
	if names != (enrich.Names{}) && w.names == nil {
		w.names = make([]enrich.Names, len(w.flows)-1, cap(w.flows))
	}
	if w.names != nil {
		w.names = append(w.names, names)
	}
	return nil
}

func (w *wireFlows) skip(i int, why string) {
	if w.bad == 0 {
		w.note = fmt.Sprintf("flow %d: %s", i, why)
	}
	w.bad++
}

// nextElement splits the next element off the inside of a JSON array that
// encoding/json has already checked to be valid: b starts after "[" or
// after the previous element. ok is false at the closing "]".
func nextElement(b []byte) (elem, rest []byte, ok bool) {
	i := 0
	for i < len(b) && (isSpace(b[i]) || b[i] == ',') {
		i++
	}
	if i >= len(b) || b[i] == ']' {
		return nil, nil, false
	}
	start, depth, inString := i, 0, false
	for ; i < len(b); i++ {
		c := b[i]
		if inString {
			switch c {
			case '\\':
				i++
			case '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
		case '{', '[':
			depth++
		case '}', ']':
			if depth == 0 {
				return b[start:i], b[i:], true // a scalar before the closing ]
			}
			depth--
			if depth == 0 {
				return b[start : i+1], b[i+1:], true
			}
		case ',':
			if depth == 0 {
				return b[start:i], b[i:], true
			}
		}
	}
	return b[start:], nil, true
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// wireFlow is one element of flows as sent (docs/snapshot.md). Keys the
// viewer derives itself (nat, age_s) are not read; unknown keys are
// ignored, as the format asks of readers.
type wireFlow struct {
	ID         uint32     `json:"id"`
	Family     wireFamily `json:"family"`
	Proto      wireProto  `json:"proto"`
	ProtoNum   int        `json:"proto_num"` // noProtoNum when absent
	State      wireState  `json:"state"`
	Src        wireAddr   `json:"src"`
	Sport      uint16     `json:"sport"`
	Dst        wireAddr   `json:"dst"`
	Dport      uint16     `json:"dport"`
	ReplySrc   wireAddr   `json:"reply_src"`
	ReplySport uint16     `json:"reply_sport"`
	ReplyDst   wireAddr   `json:"reply_dst"`
	ReplyDport uint16     `json:"reply_dport"`
	ICMPType   uint8      `json:"icmp_type"`
	ICMPCode   uint8      `json:"icmp_code"`
	ICMPID     uint16     `json:"icmp_id"`
	Status     wireStatus `json:"status"`
	Counted    bool       `json:"counted"`
	Orig       wireDir    `json:"orig"`
	Reply      wireDir    `json:"reply"`
	// Start stays zero for null (timestamps were off).
	Start    time.Time  `json:"start"`
	TimeoutS uint32     `json:"timeout_s"`
	Mark     uint32     `json:"mark"`
	Zone     uint16     `json:"zone"`
	Labels   wireLabels `json:"labels"`

	Service  string          `json:"service"`
	SService string          `json:"sservice"`
	SrcName  string          `json:"src_name"`
	DstName  string          `json:"dst_name"`
	SrcGeo   *report.Geo     `json:"src_geo"`
	DstGeo   *report.Geo     `json:"dst_geo"`
	Process  *report.Process `json:"process"`
}

// noProtoNum marks a flow without proto_num.
const noProtoNum = -1

// wireDir is one direction; bytes and packets stay 0 for null, and
// Flow.HasCounters (from counted) says they are unknown.
type wireDir struct {
	Bytes       uint64  `json:"bytes"`
	Packets     uint64  `json:"packets"`
	BytesPerS   float64 `json:"bytes_per_s"`
	PacketsPerS float64 `json:"packets_per_s"`
	Avg2        float64 `json:"bytes_per_s_2s"`
	Avg10       float64 `json:"bytes_per_s_10s"`
	Avg40       float64 `json:"bytes_per_s_40s"`
}

func (d *wireDir) counter() conntrack.Counter {
	return conntrack.Counter{Bytes: d.Bytes, Packets: d.Packets}
}

func (d *wireDir) rate() conntrack.Rate {
	return conntrack.Rate{Bytes: float32(d.BytesPerS), Packets: float32(d.PacketsPerS),
		Avg2: float32(d.Avg2), Avg10: float32(d.Avg10), Avg40: float32(d.Avg40)}
}

// flow makes the flow record and the names the router sent.
func (w *wireFlow) flow() (conntrack.Flow, enrich.Names, error) {
	f := conntrack.Flow{
		ID:          w.ID,
		Family:      w.Family.fam,
		Proto:       conntrack.Proto(w.Proto.num),
		HasCounters: w.Counted,
		Zone:        w.Zone,
		Labels:      w.Labels.ref,
		Orig:        conntrack.Tuple{Src: w.Src.a, Dst: w.Dst.a, SrcPort: w.Sport, DstPort: w.Dport},
		Reply:       conntrack.Tuple{Src: w.ReplySrc.a, Dst: w.ReplyDst.a, SrcPort: w.ReplySport, DstPort: w.ReplyDport},
		Status:      w.Status.bits,
		Mark:        w.Mark,
		Timeout:     w.TimeoutS,
		Start:       conntrack.StampOf(w.Start),
	}
	switch {
	case w.ProtoNum >= 0 && w.ProtoNum <= 255:
		f.Proto = conntrack.Proto(w.ProtoNum) // exact; the name may be one this side lacks
	case w.ProtoNum != noProtoNum:
		return f, enrich.Names{}, fmt.Errorf("proto_num %d out of range", w.ProtoNum)
	case !w.Proto.ok:
		return f, enrich.Names{}, errors.New("no protocol")
	}
	switch {
	case f.Family != conntrack.IPv4 && f.Family != conntrack.IPv6:
		return f, enrich.Names{}, fmt.Errorf("family %q unknown", oneLine(w.Family.raw, 20))
	case w.Src.bad || w.Dst.bad || w.ReplySrc.bad || w.ReplyDst.bad:
		return f, enrich.Names{}, errors.New("an address that does not parse")
	case !w.Src.a.IsValid() || !w.Dst.a.IsValid():
		return f, enrich.Names{}, errors.New("no src or dst address")
	case w.Src.a.Is4() != (f.Family == conntrack.IPv4) || w.Dst.a.Is4() != (f.Family == conntrack.IPv4):
		return f, enrich.Names{}, fmt.Errorf("address of another family than %s", f.Family)
	case w.Labels.bad:
		return f, enrich.Names{}, errors.New("labels are not 32 hex digits")
	}
	if !f.Reply.Src.IsValid() && !f.Reply.Dst.IsValid() {
		// A sender that left the reply tuple out: the unNATed mirror, so
		// that NAT() does not call the flow translated.
		f.Reply = conntrack.Tuple{Src: f.Orig.Dst, Dst: f.Orig.Src, SrcPort: f.Orig.DstPort, DstPort: f.Orig.SrcPort}
	}
	f.State = stateNumber(f.Proto, string(w.State))
	if f.Proto == conntrack.ProtoICMP || f.Proto == conntrack.ProtoICMPv6 {
		f.ICMP = conntrack.ICMP{ID: w.ICMPID, Type: w.ICMPType, Code: w.ICMPCode}
	}
	if f.HasCounters {
		f.OrigCount, f.ReplyCount = w.Orig.counter(), w.Reply.counter()
	}
	f.OrigRate, f.ReplyRate = w.Orig.rate(), w.Reply.rate()

	n := enrich.Names{Service: w.Service, SrcService: w.SService, SrcName: w.SrcName, DstName: w.DstName}
	if w.SrcGeo != nil {
		n.SrcGeo = geo.Info(*w.SrcGeo)
	}
	if w.DstGeo != nil {
		n.DstGeo = geo.Info(*w.DstGeo)
	}
	if w.Process != nil {
		n.Process = enrich.Process(*w.Process)
	}
	return f, n, nil
}

// wireFamily reads "ipv4" and "ipv6" without keeping a string.
type wireFamily struct {
	fam conntrack.Family
	raw string // what an unknown family said, for the note
}

func (f *wireFamily) UnmarshalText(b []byte) error {
	switch string(b) {
	case "ipv4":
		f.fam = conntrack.IPv4
	case "ipv6":
		f.fam = conntrack.IPv6
	default:
		f.fam, f.raw = 0, string(b)
	}
	return nil
}

// wireProto reads a protocol name: what conntrack.Proto.String prints.
type wireProto struct {
	num uint8
	ok  bool
}

func (p *wireProto) UnmarshalText(b []byte) error {
	n, ok := protoNumbers[string(b)]
	p.num, p.ok = n, ok
	return nil
}

// wireState keeps a state name; the common ones without an allocation.
type wireState string

func (s *wireState) UnmarshalText(b []byte) error {
	if name, ok := stateNames[string(b)]; ok {
		*s = wireState(name)
	} else {
		*s = wireState(b)
	}
	return nil
}

// wireAddr parses an address ("" is none); bad says it did not parse.
type wireAddr struct {
	a   conntrack.Addr
	bad bool
}

func (w *wireAddr) UnmarshalText(b []byte) error {
	*w = wireAddr{}
	if len(b) == 0 {
		return nil
	}
	ip, err := parseAddr(b)
	if err != nil {
		w.bad = true
		return nil
	}
	w.a = conntrack.AddrFrom(ip)
	return nil
}

// parseAddr parses the dotted IPv4 addresses of most flows without
// making a string; anything else goes to netip.
func parseAddr(b []byte) (netip.Addr, error) {
	var v4 [4]byte
	n, octet, digits := 0, 0, 0
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			if digits > 0 && octet == 0 { // a leading zero: let netip say no
				return netip.ParseAddr(string(b))
			}
			octet = octet*10 + int(c-'0')
			digits++
			if octet > 255 || digits > 3 {
				return netip.ParseAddr(string(b))
			}
		case c == '.' && digits > 0 && n < 3:
			v4[n] = byte(octet)
			n, octet, digits = n+1, 0, 0
		default:
			return netip.ParseAddr(string(b))
		}
	}
	if n != 3 || digits == 0 {
		return netip.ParseAddr(string(b))
	}
	v4[3] = byte(octet)
	return netip.AddrFrom4(v4), nil
}

// wireStatus reads the status bit names; names this side does not know
// (bits of a newer kernel) are left out.
type wireStatus struct{ bits conntrack.Status }

func (s *wireStatus) UnmarshalJSON(raw []byte) error {
	s.bits = 0
	raw = bytes.TrimSpace(raw)
	if string(raw) == "null" {
		return nil
	}
	if len(raw) < 2 || raw[0] != '[' {
		return &json.UnmarshalTypeError{Value: jsonKind(raw)}
	}
	if bytes.IndexByte(raw, '\\') >= 0 {
		// Escapes in a name: the slow way.
		var names []string
		if err := json.Unmarshal(raw, &names); err != nil {
			return err
		}
		for _, n := range names {
			s.bits |= statusBits[n]
		}
		return nil
	}
	for rest := raw[1:]; ; {
		i := bytes.IndexByte(rest, '"')
		if i < 0 {
			return nil
		}
		j := bytes.IndexByte(rest[i+1:], '"')
		if j < 0 {
			return nil
		}
		s.bits |= statusBits[string(rest[i+1:i+1+j])]
		rest = rest[i+j+2:]
	}
}

// wireLabels reads the connlabels' hex digits.
type wireLabels struct {
	ref conntrack.LabelsRef
	bad bool
}

func (l *wireLabels) UnmarshalText(b []byte) error {
	var v conntrack.Labels
	*l = wireLabels{}
	if len(b) == 0 {
		return nil
	}
	if hex.DecodedLen(len(b)) != len(v) {
		l.bad = true
		return nil
	}
	if _, err := hex.Decode(v[:], b); err != nil {
		l.bad = true
		return nil
	}
	l.ref = conntrack.RefLabels(v)
	return nil
}

// Reverse tables of the names conntrack prints.
var (
	protoNumbers = map[string]uint8{}
	stateNames   = map[string]string{}                    // interned names
	stateNums    = map[conntrack.Proto]map[string]uint8{} // by protocol
	statusBits   = map[string]conntrack.Status{}
)

func init() {
	for p := range 256 {
		protoNumbers[conntrack.Proto(p).String()] = uint8(p)
	}
	for _, p := range []conntrack.Proto{conntrack.ProtoTCP, conntrack.ProtoSCTP, conntrack.ProtoDCCP} {
		m := map[string]uint8{}
		for s := range 256 {
			name := (&conntrack.Flow{Proto: p, State: uint8(s)}).StateName()
			m[name] = uint8(s)
			if s < 16 {
				stateNames[name] = name
			}
		}
		stateNums[p] = m
	}
	for i := range 32 {
		for _, n := range conntrack.Status(1 << i).Names() {
			statusBits[n] = 1 << i
		}
	}
}

// stateNumber is the state a name stands for under p: 0 (none) for
// stateless protocols and for names this side does not know.
func stateNumber(p conntrack.Proto, name string) uint8 {
	return stateNums[p][name]
}
