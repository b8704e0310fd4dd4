package conntrack

import "time"

// EventType says what happened to a flow.
type EventType uint8

// Event types. Overrun is not a kernel event: it reports that the kernel
// dropped events because flowtop's socket buffer was full.
const (
	EventNew EventType = iota + 1
	EventUpdate
	EventDestroy
	EventOverrun
)

func (t EventType) String() string {
	switch t {
	case EventNew:
		return "NEW"
	case EventUpdate:
		return "UPDATE"
	case EventDestroy:
		return "DESTROY"
	case EventOverrun:
		return "OVERRUN"
	}
	return "UNKNOWN"
}

// Event is one conntrack event. NEW and UPDATE carry no counters; DESTROY
// carries the final counters and, with timestamps on, Stop.
type Event struct {
	Type EventType
	Flow Flow
	Stop time.Time
	Err  error // set for EventOverrun

	// NoState and NoLabels mark an UPDATE without CTA_PROTOINFO or
	// CTA_LABELS: the kernel sends them only when they changed (a connmark
	// change carries neither), so the table keeps what it knew.
	NoState, NoLabels bool
}
