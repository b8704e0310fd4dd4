package conntrack

import (
	"math"
	"time"
)

// Time constants of the smoothed rates, after iftop's 2 s, 10 s and 40 s
// columns.
const (
	tau2  = 2 * time.Second
	tau10 = 10 * time.Second
	tau40 = 40 * time.Second
)

// advance folds a new observation of one direction's counter into its
// rate. delta is the growth of the counter over dt. The averages are
// exponentially weighted with time constants of 2, 10 and 40 s: unlike
// iftop's ring of per-second samples they cost three floats per direction
// whatever the refresh interval, which matters at a million flows.
//
// first is true when no earlier rate exists; the averages then start at
// the instant rate instead of creeping up from zero.
func (r *Rate) advance(bytes, packets uint64, dt time.Duration, first bool) {
	if dt <= 0 {
		return
	}
	secs := dt.Seconds()
	r.Bytes = float64(bytes) / secs
	r.Packets = float64(packets) / secs
	if first {
		r.Avg2, r.Avg10, r.Avg40 = r.Bytes, r.Bytes, r.Bytes
		return
	}
	r.Avg2 = ewma(r.Avg2, r.Bytes, dt, tau2)
	r.Avg10 = ewma(r.Avg10, r.Bytes, dt, tau10)
	r.Avg40 = ewma(r.Avg40, r.Bytes, dt, tau40)
}

func ewma(avg, sample float64, dt, tau time.Duration) float64 {
	alpha := 1 - math.Exp(-dt.Seconds()/tau.Seconds())
	return avg + alpha*(sample-avg)
}

// delta is the growth of a counter, 0 when it went backwards (the kernel
// reused the ID for a new flow, or the counters were zeroed).
func delta(now, before uint64) uint64 {
	if now < before {
		return 0
	}
	return now - before
}
