package mqttexport

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"

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
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	if _, err := zw.Write(raw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// document encodes d as one body, or, when that is larger than max, as
// numbered parts that each carry a share of the flows and the full totals
// and health (Part and Parts set). oversize is true when even a part of a
// single flow is too big; the parts are returned anyway so nothing is
// dropped silently.
//
// The flows are encoded with report.Prepared's appenders (the bytes
// encoding/json would make) straight into the bodies: a first pass only
// measures them, so what is held is the bodies themselves, not the
// whole document as well (60 MB for 100k flows).
func (e encoder) document(d *report.Prepared) (bodies [][]byte, oversize bool, err error) {
	var one []byte // a flow's JSON
	head := func(part, parts int) ([]byte, error) {
		h := *d
		h.Part, h.Parts = part, parts
		return h.AppendHead(nil)
	}
	// write writes the flows [from, to) as part of parts (0 and 0: the
	// whole document) to w.
	write := func(w io.Writer, from, to, part, parts int) error {
		hb, err := head(part, parts)
		if err != nil {
			return err
		}
		w.Write(hb)
		for i := from; i < to; i++ {
			if one, err = d.AppendFlow(one[:0], i); err != nil {
				return err
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
	// body encodes a part, compressed when asked; raw is its size
	// uncompressed, for the buffer.
	body := func(from, to, part, parts, raw int) ([]byte, error) {
		var buf bytes.Buffer
		if !e.gz {
			buf.Grow(raw)
			err := write(&buf, from, to, part, parts)
			return buf.Bytes(), err
		}
		zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
		if err != nil {
			return nil, err
		}
		if err := write(zw, from, to, part, parts); err != nil {
			return nil, err
		}
		err = zw.Close()
		return buf.Bytes(), err
	}

	// One pass measures every flow and, with gzip, the compressed size
	// of the whole document (counted, not kept): names are looked up once
	// here and once more when the bodies are written.
	n := d.Len()
	sizes := make([]int, n) // of each flow, with its comma
	hb, err := head(0, 0)
	if err != nil {
		return nil, false, err
	}
	var (
		counted countingWriter
		zw      *gzip.Writer
	)
	if e.gz {
		if zw, err = gzip.NewWriterLevel(&counted, gzip.BestSpeed); err != nil {
			return nil, false, err
		}
		zw.Write(hb)
	}
	flowBytes := 0
	for i := range n {
		if one, err = d.AppendFlow(one[:0], i); err != nil {
			return nil, false, err
		}
		sizes[i] = len(one) + 1
		flowBytes += sizes[i]
		if zw != nil {
			if i > 0 {
				zw.Write(comma)
			}
			zw.Write(one)
		}
	}
	rawWhole := len(hb) + max(flowBytes-1, 0) + len(report.Tail)
	gzWhole := rawWhole
	if zw != nil {
		io.WriteString(zw, report.Tail)
		if err := zw.Close(); err != nil {
			return nil, false, err
		}
		gzWhole = counted.n
	}
	if gzWhole <= e.max || n <= 1 {
		whole, err := body(0, n, 0, 0, rawWhole)
		return [][]byte{whole}, len(whole) > e.max, err
	}

	// Pack flows greedily by their encoded size. The budget is in
	// uncompressed bytes; with gzip it is scaled by the compression ratio
	// of the whole document, and halved until every part fits.
	hb, err = head(1<<30, 1<<30) // room for the widest numbers
	if err != nil {
		return nil, false, err
	}
	hlen := len(hb) + len(report.Tail)
	ratio := float64(gzWhole) / float64(rawWhole)
	budget := int(float64(e.max)/ratio*0.9) - hlen
	for range 8 {
		budget = max(budget, 1)
		groups := pack(sizes, budget)
		bodies = bodies[:0]
		fits := true
		for i, g := range groups {
			raw := hlen
			for _, s := range sizes[g[0]:g[1]] {
				raw += s
			}
			b, err := body(g[0], g[1], i+1, len(groups), raw)
			if err != nil {
				return nil, false, err
			}
			if len(b) > e.max {
				fits = false
				if g[1]-g[0] == 1 {
					oversize = true
				}
			}
			bodies = append(bodies, b)
		}
		if fits || oversize {
			return bodies, oversize, nil
		}
		budget /= 2
	}
	return bodies, true, nil
}

var comma = []byte{','}

// countingWriter counts what is written to it and keeps nothing.
type countingWriter struct{ n int }

func (c *countingWriter) Write(p []byte) (int, error) {
	c.n += len(p)
	return len(p), nil
}

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
// splitting the batch in halves as needed.
func (e encoder) records(recs []report.Ended) (bodies [][]byte, oversize bool, err error) {
	b, err := e.body(recs)
	if err != nil {
		return nil, false, err
	}
	if len(b) <= e.max || len(recs) <= 1 {
		return [][]byte{b}, len(b) > e.max, nil
	}
	mid := len(recs) / 2
	left, o1, err := e.records(recs[:mid])
	if err != nil {
		return nil, false, err
	}
	right, o2, err := e.records(recs[mid:])
	if err != nil {
		return nil, false, err
	}
	return append(left, right...), o1 || o2, nil
}
