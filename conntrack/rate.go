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
	if first {
		r.step(bytes, packets, dt, alpha{}, true) // the factors go unused
		return
	}
	c := alphaCache{dt: -1}
	r.step(bytes, packets, dt, c.at(dt), first)
}

// step is advance with the smoothing factors for dt already worked out:
// a refresh steps every flow by the same dt, so the three exponentials are
// computed once per refresh instead of once per flow.
func (r *Rate) step(bytes, packets uint64, dt time.Duration, a alpha, first bool) {
	secs := dt.Seconds()
	rate := float64(bytes) / secs
	r.Bytes = float32(rate)
	r.Packets = float32(float64(packets) / secs)
	if first {
		r.Avg2, r.Avg10, r.Avg40 = r.Bytes, r.Bytes, r.Bytes
		return
	}
	r.Avg2 = settleRate(float64(r.Avg2) + a[0]*(rate-float64(r.Avg2)))
	r.Avg10 = settleRate(float64(r.Avg10) + a[1]*(rate-float64(r.Avg10)))
	r.Avg40 = settleRate(float64(r.Avg40) + a[2]*(rate-float64(r.Avg40)))
}

// settleRate ends an average's decay below half a byte per second: an idle
// flow's rates then stop changing, and so does its record.
func settleRate(avg float64) float32 {
	if avg < 0.5 {
		return 0
	}
	return float32(avg)
}

// alpha holds the smoothing factors of the 2, 10 and 40 s averages for
// one time step.
type alpha [3]float64

// alphaCache remembers the factors of the last time step.
type alphaCache struct {
	dt time.Duration
	a  alpha
}

func newAlphas() *alphaCache { return &alphaCache{dt: -1} }

func (c *alphaCache) at(dt time.Duration) alpha {
	if dt != c.dt {
		s := dt.Seconds()
		c.dt = dt
		c.a = alpha{1 - math.Exp(-s/tau2.Seconds()), 1 - math.Exp(-s/tau10.Seconds()), 1 - math.Exp(-s/tau40.Seconds())}
	}
	return c.a
}

// delta is the growth of a counter, 0 when it went backwards (the kernel
// reused the ID for a new flow, or the counters were zeroed).
func delta(now, before uint64) uint64 {
	if now < before {
		return 0
	}
	return now - before
}
