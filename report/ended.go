package report

import (
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
)

// Ended is the accounting record of a flow that ended: both tuples, the
// final counters each way, when it started and stopped, and how flowtop
// learned of its end. Exporters publish these in batches (a JSON array of
// Ended).
type Ended struct {
	Endpoints
	// Counted is false when the flow began while accounting was off: its
	// counters are then null, not zero.
	Counted bool   `json:"counted"`
	Orig    Counts `json:"orig"`
	Reply   Counts `json:"reply"`
	// Start is null when the flow began while timestamps were off; so is
	// DurationS then.
	Start     *time.Time `json:"start"`
	Stop      time.Time  `json:"stop"`
	DurationS *float64   `json:"duration_s"`
	// Reason is "destroyed" when the kernel's DESTROY event ended the
	// flow, "vanished" when a full dump no longer found it and no DESTROY
	// came (lost events): its counters are then the last ones read and
	// stop is when the dump noticed.
	Reason string `json:"reason"`
	Mark   uint32 `json:"mark"`
	Zone   uint16 `json:"zone"`
	Labels string `json:"labels,omitempty"`
	Names
}

// Counts holds the final counters of one direction; both are null when
// the flow was not counted.
type Counts struct {
	Bytes   *uint64 `json:"bytes"`
	Packets *uint64 `json:"packets"`
}

// BuildEnded makes the records of ended flows, in the order given. names
// may be nil.
func BuildEnded(ended []conntrack.Ended, names enrich.Namer) []Ended {
	out := make([]Ended, len(ended))
	for i := range ended {
		out[i] = endedDoc(&ended[i], names)
	}
	return out
}

func endedDoc(e *conntrack.Ended, names enrich.Namer) Ended {
	f := &e.Flow
	d := Ended{
		Endpoints: endpoints(f),
		Counted:   f.HasCounters,
		Orig:      counts(f.HasCounters, f.OrigCount),
		Reply:     counts(f.HasCounters, f.ReplyCount),
		Stop:      e.Stop.UTC(),
		Reason:    e.Reason.String(),
		Mark:      f.Mark,
		Zone:      f.Zone,
		Labels:    labels(f),
	}
	if names != nil {
		d.Names = namesDoc(names.Names(f))
	}
	if !e.Start.IsZero() {
		start := e.Start.Time().UTC()
		d.Start = &start
		secs := 0.0
		if dur := e.Stop.Sub(e.Start.Time()); dur > 0 {
			secs = dur.Seconds()
		}
		d.DurationS = &secs
	}
	return d
}

func counts(counted bool, c conntrack.Counter) Counts {
	if !counted {
		return Counts{}
	}
	b, p := c.Bytes, c.Packets
	return Counts{Bytes: &b, Packets: &p}
}
