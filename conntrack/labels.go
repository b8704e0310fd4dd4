package conntrack

import (
	"sync"
	"sync/atomic"
)

// Labels are a flow's connlabels: 128 bits that nft or iptables rules set
// (ct label set ...), all zero on almost every flow.
type Labels [16]byte

// LabelsRef stands for a Labels value in two bytes: it numbers the value in
// the process's list of those seen (its zero value is no labels). A flow
// record holds this instead of the 16 bytes: the sets in use are few, and
// 14 bytes a record are 1.4 MB of a 100k-flow table.
type LabelsRef struct{ n uint16 }

// RefLabels returns the LabelsRef of l.
func RefLabels(l Labels) LabelsRef { return labelSets.ref(l) }

// Get returns the labels r stands for.
func (r LabelsRef) Get() Labels { return labelSets.labels(r) }

// IsZero reports whether r stands for no labels.
func (r LabelsRef) IsZero() bool { return r.n == 0 }

// Equal reports whether r and o stand for the same labels (for go-cmp,
// which cannot look into r).
func (r LabelsRef) Equal(o LabelsRef) bool { return r == o }

// labelList numbers Labels values. It only grows: a published record may
// name any entry. Readers of a number load the list without a lock; the
// decoders find a set's number under a read lock and take the write lock
// only to add a set seen for the first time.
type labelList struct {
	mu    sync.RWMutex
	refs  map[Labels]LabelsRef
	list  atomic.Pointer[[]Labels] // list[ref.n-1]
	limit int                      // 0: maxLabelSets
}

// maxLabelSets is how many distinct sets the list numbers; a flow with a
// set beyond them reads as having none. Rules that set labels name a few
// bits each: 65,535 combinations would take rules that label flows one by
// one.
const maxLabelSets = 1<<16 - 1

var labelSets labelList

// ref returns the number of l, adding l to the list when new.
func (x *labelList) ref(l Labels) LabelsRef {
	if l == (Labels{}) {
		return LabelsRef{}
	}
	x.mu.RLock()
	ref, ok := x.refs[l]
	x.mu.RUnlock()
	if ok {
		return ref
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if ref, ok := x.refs[l]; ok {
		return ref // added since the read lock
	}
	var list []Labels
	if p := x.list.Load(); p != nil {
		list = *p
	}
	limit := x.limit
	if limit == 0 {
		limit = maxLabelSets
	}
	if len(list) >= limit {
		return LabelsRef{}
	}
	// append may write past the length readers know, never within it.
	list = append(list, l)
	x.list.Store(&list)
	if x.refs == nil {
		x.refs = make(map[Labels]LabelsRef)
	}
	ref = LabelsRef{uint16(len(list))}
	x.refs[l] = ref
	return ref
}

// labels returns the set ref numbers.
func (x *labelList) labels(ref LabelsRef) Labels {
	if ref.n == 0 {
		return Labels{}
	}
	return (*x.list.Load())[ref.n-1]
}
