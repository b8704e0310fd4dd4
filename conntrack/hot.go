package conntrack

// topHeap keeps the k flows with the highest metric offered to it: a
// min-heap whose root is the lowest kept.
type topHeap struct {
	items []rankedFlow
	k     int
}

type rankedFlow struct {
	m float64
	f *Flow
}

func (h *topHeap) reset(k int) {
	h.items, h.k = h.items[:0], k
}

func (h *topHeap) offer(m float64, f *Flow) {
	if len(h.items) < h.k {
		h.items = append(h.items, rankedFlow{m, f})
		h.up(len(h.items) - 1)
		return
	}
	if m <= h.items[0].m {
		return
	}
	h.items[0] = rankedFlow{m, f}
	h.down(0)
}

// appendFlows appends the kept flows, in no order, to dst.
func (h *topHeap) appendFlows(dst []*Flow) []*Flow {
	for _, it := range h.items {
		dst = append(dst, it.f)
	}
	return dst
}

func (h *topHeap) up(i int) {
	for i > 0 {
		p := (i - 1) / 2
		if h.items[p].m <= h.items[i].m {
			return
		}
		h.items[p], h.items[i] = h.items[i], h.items[p]
		i = p
	}
}

func (h *topHeap) down(i int) {
	for {
		l := 2*i + 1
		if l >= len(h.items) {
			return
		}
		m := l
		if r := l + 1; r < len(h.items) && h.items[r].m < h.items[l].m {
			m = r
		}
		if h.items[i].m <= h.items[m].m {
			return
		}
		h.items[i], h.items[m] = h.items[m], h.items[i]
		i = m
	}
}
