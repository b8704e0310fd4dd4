package mqttexport

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"sync"

	"github.com/flowtop/flowtop/report"
)

// encoder turns documents into message bodies no larger than max bytes,
// gzip-compressed when gz is set.
type encoder struct {
	max int
	gz  bool
}

// body encodes v and compresses it when asked.
func (e encoder) body(v any) ([]byte, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if !e.gz {
		return raw, nil
	}
	return gzipBytes(raw)
}

func gzipBytes(raw []byte) ([]byte, error) {
	var buf bytes.Buffer
	zw := newGzip(&buf)
	defer gzips.Put(zw)
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// plan is how a document is published: the flows [from, to) of each
// body, numbered parts of the document unless whole.
type plan struct {
	groups   [][2]int
	raw      []int // uncompressed size of each body, for its buffer
	whole    bool  // one body without part numbers
	oversize bool  // a part of a single flow is larger than max
	// sizes are the flows' encoded sizes, comma included, when planned:
	// a part made later writes a flow whose names grew since (a reverse
	// DNS answer came) without its names, so that the part stays within
	// the size it was planned at.
	sizes []int
	// bodies are the compressed parts, made by plan to learn their size
	// and kept: a fifth to a tenth of the JSON (6 MB for 100k flows), not
	// worth a second compression.
	bodies [][]byte
}

// part makes body i of the plan p of d. The flows are encoded with
// report.Prepared's appenders (the bytes encoding/json would make)
// straight into the body: a snapshot of 100k flows without a limit is
// ~260 bodies of 256 KiB, made one at a time as they are published
// instead of 60 MB at once.
func (e encoder) part(d *report.Prepared, p *plan, i int) ([]byte, error) {
	if p.bodies != nil {
		return p.bodies[i], nil
	}
	return e.encode(d, p, i)
}

// encode makes body i of the plan p of d.
func (e encoder) encode(d *report.Prepared, p *plan, i int) ([]byte, error) {
	g := p.groups[i]
	part, parts := i+1, len(p.groups)
	if p.whole {
		part, parts = 0, 0
	}
	var buf bytes.Buffer
	if !e.gz {
		buf.Grow(p.raw[i])
		err := writePart(&buf, d, g[0], g[1], part, parts, p.sizes)
		return buf.Bytes(), err
	}
	zw := newGzip(&buf)
	defer gzips.Put(zw)
	if err := writePart(zw, d, g[0], g[1], part, parts, p.sizes); err != nil {
		return nil, err
	}
	err := zw.Close()
	return buf.Bytes(), err
}

// gzips keeps gzip writers for reuse: a new one allocates about a
// megabyte of compressor state, once per part.
var gzips sync.Pool

// newGzip returns a writer at gzip.BestSpeed that compresses to w; put it
// back in gzips when done.
func newGzip(w io.Writer) *gzip.Writer {
	if zw, ok := gzips.Get().(*gzip.Writer); ok {
		zw.Reset(w)
		return zw
	}
	zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed) // the level is valid
	return zw
}

// writePart writes the flows [from, to) of d as part of parts (0 and 0:
// the whole document) to w; a flow longer than its size in sizes (when not
// nil) is written without its names.
func writePart(w io.Writer, d *report.Prepared, from, to, part, parts int, sizes []int) error {
	h := *d
	h.Part, h.Parts = part, parts
	hb, err := h.AppendHead(nil)
	if err != nil {
		return err
	}
	w.Write(hb)
	var one []byte // a flow's JSON
	for i := from; i < to; i++ {
		if one, err = d.AppendFlow(one[:0], i); err != nil {
			return err
		}
		if sizes != nil && len(one)+1 > sizes[i] {
			if one, err = d.AppendFlowUnnamed(one[:0], i); err != nil {
				return err
			}
		}
		if i > from {
			w.Write(comma)
		}
		if _, err := w.Write(one); err != nil {
			return err
		}
	}
	_, err = io.WriteString(w, report.Tail)
	return err
}

// plan measures d and splits it into bodies no larger than max. One pass
// measures every flow and, with gzip, the compressed size of the whole
// document; when the whole is too big, the flows are packed greedily by
// their encoded size into parts. The budget is in uncompressed bytes;
// with gzip it is scaled by the compression ratio of the whole document,
// the parts are compressed (and kept), and the budget halved until every
// part fits. Names are looked up in each pass (the namer caches).
func (e encoder) plan(d *report.Prepared) (plan, error) {
	m, err := e.measure(d)
	if err != nil {
		return plan{}, err
	}
	n := len(m.sizes)
	if m.gzWhole <= e.max || n <= 1 {
		p := plan{groups: [][2]int{{0, n}}, raw: []int{m.rawWhole}, whole: true, oversize: m.gzWhole > e.max, sizes: m.sizes}
		if m.kept {
			p.bodies = [][]byte{m.body} // what was just measured
		}
		return p, nil
	}
	return e.split(d, m)
}

// measurement is what one pass over a document learns.
type measurement struct {
	sizes    []int // of each flow, with its comma
	rawWhole int   // the whole document's size
	gzWhole  int   // its compressed size with gzip, else rawWhole
	// body is the whole document compressed, when kept: with gzip, and
	// no larger than max.
	body []byte
	kept bool
}

// measure encodes every flow of d once to learn its size and, with gzip,
// compresses the whole document to learn its size.
func (e encoder) measure(d *report.Prepared) (measurement, error) {
	n := d.Len()
	m := measurement{sizes: make([]int, n)}
	h := *d
	hb, err := h.AppendHead(nil)
	if err != nil {
		return measurement{}, err
	}
	var (
		counted = cappedBuffer{max: e.max}
		zw      *gzip.Writer
		one     []byte
	)
	if e.gz {
		zw = newGzip(&counted)
		defer gzips.Put(zw)
		zw.Write(hb)
	}
	flowBytes := 0
	for i := range n {
		if one, err = d.AppendFlow(one[:0], i); err != nil {
			return measurement{}, err
		}
		m.sizes[i] = len(one) + 1
		flowBytes += m.sizes[i]
		if zw != nil {
			if i > 0 {
				zw.Write(comma)
			}
			zw.Write(one)
		}
	}
	m.rawWhole = len(hb) + max(flowBytes-1, 0) + len(report.Tail)
	m.gzWhole = m.rawWhole
	if zw != nil {
		io.WriteString(zw, report.Tail)
		if err := zw.Close(); err != nil {
			return measurement{}, err
		}
		m.gzWhole = counted.n
		m.body, m.kept = counted.buf, counted.kept()
	}
	return m, nil
}

// split packs the flows of d measured in m into parts, halving the
// budget until every part fits (eight tries at most); a part of a single
// flow that is still too big ends the search, oversize.
func (e encoder) split(d *report.Prepared, m measurement) (plan, error) {
	h := *d
	h.Part, h.Parts = 1<<30, 1<<30 // room for the widest numbers
	hb, err := h.AppendHead(nil)
	if err != nil {
		return plan{}, err
	}
	hlen := len(hb) + len(report.Tail)
	ratio := float64(m.gzWhole) / float64(m.rawWhole)
	budget := int(float64(e.max)/ratio*0.9) - hlen
	var p plan
	for range 8 {
		budget = max(budget, 1)
		var fits bool
		if p, fits, err = e.fill(d, m.sizes, hlen, budget); err != nil {
			return plan{}, err
		}
		if fits || p.oversize {
			return p, nil
		}
		budget /= 2
	}
	p.oversize = true
	return p, nil
}

// fill plans parts of at most budget bytes of flows (and hlen of head and
// tail each) and, with gzip, compresses them; fits tells that every part
// is no larger than max.
func (e encoder) fill(d *report.Prepared, sizes []int, hlen, budget int) (p plan, fits bool, err error) {
	p = plan{groups: pack(sizes, budget), sizes: sizes}
	fits = true
	for i, g := range p.groups {
		raw := hlen
		for _, s := range sizes[g[0]:g[1]] {
			raw += s
		}
		p.raw = append(p.raw, raw)
		size := raw
		if e.gz {
			b, err := e.encode(d, &p, i)
			if err != nil {
				return plan{}, false, err
			}
			p.bodies, size = append(p.bodies, b), len(b)
		}
		if size > e.max {
			fits = false
			if g[1]-g[0] == 1 {
				p.oversize = true
			}
		}
	}
	return p, fits, nil
}

var comma = []byte{','}

// cappedBuffer counts what is written to it and keeps it while it is no
// more than max bytes.
type cappedBuffer struct {
	buf []byte
	n   int
	max int
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	c.n += len(p)
	if c.n <= c.max {
		c.buf = append(c.buf, p...)
	} else {
		c.buf = nil
	}
	return len(p), nil
}

// kept reports whether buf holds everything written.
func (c *cappedBuffer) kept() bool { return c.n <= c.max }

// pack splits items of the given sizes, in order, into ranges [from, to)
// whose sizes sum to at most budget; an item bigger than budget gets a
// range of its own.
func pack(sizes []int, budget int) [][2]int {
	var groups [][2]int
	from, sum := 0, 0
	for i, s := range sizes {
		if i > from && sum+s > budget {
			groups = append(groups, [2]int{from, i})
			from, sum = i, 0
		}
		sum += s
	}
	return append(groups, [2]int{from, len(sizes)})
}

// records encodes ended-flow records as JSON arrays no larger than max,
// splitting the batch in halves as needed. ranges are the records [from,
// to) of recs in each body.
func (e encoder) records(recs []report.Ended) (bodies [][]byte, ranges [][2]int, oversize bool, err error) {
	err = e.appendRecords(recs, 0, &bodies, &ranges, &oversize)
	return bodies, ranges, oversize, err
}

func (e encoder) appendRecords(recs []report.Ended, from int, bodies *[][]byte, ranges *[][2]int, oversize *bool) error {
	b, err := e.body(recs)
	if err != nil {
		return err
	}
	if len(b) <= e.max || len(recs) <= 1 {
		*bodies = append(*bodies, b)
		*ranges = append(*ranges, [2]int{from, from + len(recs)})
		*oversize = *oversize || len(b) > e.max
		return nil
	}
	mid := len(recs) / 2
	if err := e.appendRecords(recs[:mid], from, bodies, ranges, oversize); err != nil {
		return err
	}
	return e.appendRecords(recs[mid:], from+mid, bodies, ranges, oversize)
}
