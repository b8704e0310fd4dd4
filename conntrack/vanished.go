package conntrack

import "time"

// A flow that a complete dump no longer finds has ended, and normally its
// DESTROY event says so. When that event was lost (an overrun) or never
// sent (events off), the flow would leave the table without an ended
// record: the table then makes one itself, marked EndVanished, from the
// last it knew of the flow.
//
// It does not do so at once. A flow destroyed while the dump ran, or just
// before, has its DESTROY event still on the way (in the event socket or
// the table's queue): the table holds what the sweep removed for a grace
// period, a DESTROY that comes meanwhile ends the flow as usual (with what
// the table knew: start, rates), and only the rest is reported vanished.

// vanishGrace is how long a flow the dump no longer found waits for its
// DESTROY event. Events take microseconds to arrive; a backlog of a full
// 64 MiB socket buffer is read in well under a second.
const vanishGrace = 2 * time.Second

// vanishing is a flow the last sweep removed, waiting for its DESTROY.
type vanishing struct {
	flow *Flow     // nil once a DESTROY took it
	stop time.Time // when the dump that missed it ended (table clock)
	due  time.Time // when it is reported vanished (wall clock)
	next int32     // next waiting flow with the same kernel ID, -1 none
}

// vanishList holds the flows waiting, oldest first, and finds them by
// kernel ID: after an overrun thousands may wait while DESTROY events of
// unknown flows come in.
type vanishList struct {
	list []vanishing
	byID map[uint32]int32 // the last waiting flow of each ID
}

// add makes f wait until due.
func (v *vanishList) add(f *Flow, stop, due time.Time) {
	if v.byID == nil {
		v.byID = make(map[uint32]int32)
	}
	next, ok := v.byID[f.ID]
	if !ok {
		next = -1
	}
	v.byID[f.ID] = int32(len(v.list))
	v.list = append(v.list, vanishing{flow: f, stop: stop, due: due, next: next})
}

// take returns the waiting flow that is the same kernel entry as f and
// stops it waiting; nil when none waits. start, when not zero, must match
// too (a dump that finds the flow again must not take a new connection
// with the same tuple for it).
func (v *vanishList) take(f *Flow, start Stamp) *Flow {
	i, ok := v.byID[f.ID]
	if !ok {
		return nil
	}
	for ; i >= 0; i = v.list[i].next {
		w := v.list[i].flow
		if w != nil && w.SameConnection(f) && (start.IsZero() || w.Start == start) {
			v.list[i].flow = nil
			return w
		}
	}
	return nil
}

// expire calls fn with each flow whose wait ended by now (every flow when
// all is set) and stops them waiting. It returns when the next one is due,
// zero when none waits.
func (v *vanishList) expire(now time.Time, all bool, fn func(w *vanishing)) (next time.Time) {
	n := 0
	for n < len(v.list) && (all || !v.list[n].due.After(now)) {
		if v.list[n].flow != nil {
			fn(&v.list[n])
		}
		n++
	}
	if n == 0 {
		return v.nextDue()
	}
	m := copy(v.list, v.list[n:])
	clear(v.list[m:]) // keep no record alive
	v.list = v.list[:m]
	if m == 0 {
		// After a big overrun both may be large: let them go.
		v.list, v.byID = nil, nil
		return time.Time{}
	}
	// Positions moved: index the rest again (usually nothing is left).
	clear(v.byID)
	for i := range v.list {
		v.list[i].next = -1
		if w := v.list[i].flow; w != nil {
			if prev, ok := v.byID[w.ID]; ok {
				v.list[i].next = prev
			}
			v.byID[w.ID] = int32(i)
		}
	}
	return v.nextDue()
}

func (v *vanishList) nextDue() time.Time {
	if len(v.list) == 0 {
		return time.Time{}
	}
	return v.list[0].due
}
