package report

import (
	"time"

	"github.com/flowtop/flowtop/conntrack"
)

// Build makes the whole document of a snapshot, flows included. It does not
// modify s. flowtop itself writes documents a flow at a time (Prepare,
// Encode); the tests compare whole documents.
func Build(s *conntrack.Snapshot, opt Options) *Document {
	return Prepare(s, opt).Full()
}

// Sorted returns pointers to all the flows in the order of key (Top
// without a limit).
func Sorted(flows []*conntrack.Flow, key SortKey, now time.Time) []*conntrack.Flow {
	return Top(flows, key, now, 0)
}
