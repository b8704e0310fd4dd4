package conntrack

import "time"

// Health tells how well the kernel side keeps up. Counters are cumulative
// since start.
type Health struct {
	// Events is the number of conntrack events applied to the table.
	Events uint64
	// Overruns counts netlink receive-buffer overruns (ENOBUFS): events the
	// kernel dropped before flowtop could read them.
	Overruns uint64
	// Resyncs counts full dumps made to repair the table after an overrun.
	Resyncs uint64
	// Vanished counts flows that a complete dump no longer found and whose
	// DESTROY event never came (lost in an overrun, or events off): each
	// was handed to the ended-flow subscribers as EndVanished.
	Vanished uint64
	// Refresh is how long the last counter refresh (a full dump) took.
	Refresh time.Duration
	// RefreshEvery is the effective refresh interval: the interval asked
	// for, or longer when a full refresh costs more than a quarter of it.
	RefreshEvery time.Duration
	// Refreshes counts the full refreshes (dumps) made so far.
	Refreshes uint64
	// HotFlows is how many flows were read one by one at the last tick
	// between two full refreshes (the busiest and the watched ones), 0
	// while every flow is refreshed every interval; HotRefresh is how long
	// that took.
	HotFlows   int
	HotRefresh time.Duration
	// KernelFlows is nf_conntrack_count in the target namespace, -1 when
	// unknown.
	KernelFlows int
	// Accounting and Timestamps tell whether nf_conntrack_acct and
	// nf_conntrack_timestamp are on.
	Accounting, Timestamps bool
	// LastError is the last error from the kernel side, "" when none.
	LastError string
}

// Snapshot is an immutable view of the flow table at one moment. Consumers
// must not modify it: the same value is shared by every reader.
type Snapshot struct {
	Time     time.Time
	Interval time.Duration
	// Flows holds the flows that pass the table filter, in no particular
	// order (consumers sort; the flow ID is the stable tie-breaker). The
	// records are shared with the table and other snapshots: never modify
	// one.
	Flows []*Flow
	// TableFlows is the number of flows in the table before filtering.
	TableFlows int
	// Filter is the filter the flows passed.
	Filter Filter
	Health Health
}

// Ended is the final record of a flow that ended: from its DESTROY event,
// with the event's counters and stop time, or, when that event never came,
// from the last the table knew of it (Reason says which).
type Ended struct {
	Flow
	// Stop is when the kernel ended the flow (its timestamp when
	// nf_conntrack_timestamp is on, else when flowtop saw the event). For
	// a vanished flow it is when the dump that no longer found it ended:
	// the flow ended at some point between its last sighting (Seen) and
	// then.
	Stop   time.Time
	Reason EndReason
}

// EndReason tells how flowtop learned that a flow ended.
type EndReason uint8

const (
	// EndDestroyed: the kernel's DESTROY event said so, with the final
	// counters.
	EndDestroyed EndReason = iota
	// EndVanished: a complete dump no longer had the flow and no DESTROY
	// event came. The counters are the last ones read, so the flow's last
	// moments may be missing from them.
	EndVanished
)

// String returns "destroyed" or "vanished", the names of the JSON exports.
func (r EndReason) String() string {
	switch r {
	case EndDestroyed:
		return "destroyed"
	case EndVanished:
		return "vanished"
	}
	return "unknown"
}

// Pointers returns pointers to the elements of flows, for building a
// Snapshot by hand (tests, tools).
func Pointers(flows []Flow) []*Flow {
	ps := make([]*Flow, len(flows))
	for i := range flows {
		ps[i] = &flows[i]
	}
	return ps
}
