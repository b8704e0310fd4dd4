package mqttexport

import (
	"bytes"
	"compress/gzip"
	"encoding/json"

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
func (e encoder) document(d *report.Document) (bodies [][]byte, oversize bool, err error) {
	whole, err := e.body(d)
	if err != nil {
		return nil, false, err
	}
	if len(whole) <= e.max || len(d.Flows) <= 1 {
		return [][]byte{whole}, len(whole) > e.max, nil
	}

	// Pack flows greedily by their encoded size. The budget is in
	// uncompressed bytes; with gzip it is scaled by the compression ratio
	// of the whole document, and halved until every part fits.
	sizes := make([]int, len(d.Flows))
	total := 0
	for i := range d.Flows {
		b, err := json.Marshal(&d.Flows[i])
		if err != nil {
			return nil, false, err
		}
		sizes[i] = len(b) + 1
		total += sizes[i]
	}
	head := *d
	head.Flows = nil
	head.Part, head.Parts = 1<<30, 1<<30 // room for the widest numbers
	hb, err := json.Marshal(&head)
	if err != nil {
		return nil, false, err
	}
	ratio := 1.0
	if e.gz {
		ratio = float64(len(whole)) / float64(total+len(hb))
	}
	budget := int(float64(e.max)/ratio*0.9) - len(hb)
	for range 8 {
		budget = max(budget, 1)
		groups := pack(sizes, budget)
		bodies = bodies[:0]
		fits := true
		for i, g := range groups {
			part := *d
			part.Flows = d.Flows[g[0]:g[1]]
			part.Part, part.Parts = i+1, len(groups)
			b, err := e.body(&part)
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
