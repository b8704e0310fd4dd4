package conntrack

import "cmp"

// Ranked is a flow with the metric it is ranked by (a rate, a byte count),
// computed once.
type Ranked struct {
	M float64
	F *Flow
}

// RankOrder orders flows by metric, highest first, then by kernel ID, so
// that an order is stable from one refresh to the next.
func RankOrder(a, b Ranked) int {
	if c := cmp.Compare(b.M, a.M); c != 0 {
		return c
	}
	return cmp.Compare(a.F.ID, b.F.ID)
}

// AppendFlows appends the flows of ranked, in its order, to dst.
func AppendFlows(dst []*Flow, ranked []Ranked) []*Flow {
	for _, r := range ranked {
		dst = append(dst, r.F)
	}
	return dst
}

// TopK keeps the K first flows offered to it in RankOrder, in no order:
// memory for K flows, not for every flow (picking the top 10 of a million
// flows is a heap walk, not a sort). The root, Items[0], is the kept flow
// all the others come before.
type TopK struct {
	Items []Ranked
	K     int
}

// NewTopK makes an empty TopK for k flows.
func NewTopK(k int) TopK { return TopK{Items: make([]Ranked, 0, k), K: k} }

// Reset empties h and sets it to keep k flows.
func (h *TopK) Reset(k int) {
	clear(h.Items) // let the flows go
	h.Items, h.K = h.Items[:0], k
}

// Full reports whether h holds K flows.
func (h *TopK) Full() bool { return len(h.Items) >= h.K }

// Offer keeps r if it is among the first K so far.
func (h *TopK) Offer(r Ranked) {
	switch {
	case !h.Full():
		h.Items = append(h.Items, r)
		h.up(len(h.Items) - 1)
	case h.BeatsRoot(r):
		h.ReplaceRoot(r)
	}
}

// BeatsRoot reports whether r comes before the last of the kept flows (h
// must be full).
func (h *TopK) BeatsRoot(r Ranked) bool { return RankOrder(r, h.Items[0]) < 0 }

// ReplaceRoot puts r in the place of the last of the kept flows (h must be
// full).
func (h *TopK) ReplaceRoot(r Ranked) {
	h.Items[0] = r
	h.down(0)
}

func (h *TopK) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if RankOrder(h.Items[i], h.Items[p]) <= 0 {
			return
		}
		h.Items[i], h.Items[p] = h.Items[p], h.Items[i]
		i = p
	}
}

func (h *TopK) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h.Items) {
			return
		}
		w := l
		if r := l + 1; r < len(h.Items) && RankOrder(h.Items[r], h.Items[l]) > 0 {
			w = r
		}
		if RankOrder(h.Items[w], h.Items[i]) <= 0 {
			return
		}
		h.Items[i], h.Items[w] = h.Items[w], h.Items[i]
		i = w
	}
}
