package conntrack

import "sync"

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
// name any entry. Decoders number sets and readers resolve numbers under
// one mutex: only flows with labels ask, and a lock is a few nanoseconds
// next to decoding or writing such a flow.
type labelList struct {
	mu    sync.Mutex
	refs  map[Labels]LabelsRef
	list  []Labels // list[ref.n-1]
	limit int      // 0: maxLabelSets
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
	x.mu.Lock()
	defer x.mu.Unlock()
	if ref, ok := x.refs[l]; ok {
		return ref
	}
	limit := x.limit
	if limit == 0 {
		limit = maxLabelSets
	}
	if len(x.list) >= limit {
		return LabelsRef{}
	}
	if x.refs == nil {
		x.refs = make(map[Labels]LabelsRef)
	}
	x.list = append(x.list, l)
	ref := LabelsRef{uint16(len(x.list))}
	x.refs[l] = ref
	return ref
}

// labels returns the set ref numbers.
func (x *labelList) labels(ref LabelsRef) Labels {
	if ref.n == 0 {
		return Labels{}
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.list[ref.n-1]
}
