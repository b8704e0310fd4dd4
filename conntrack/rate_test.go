package conntrack

import (
	"math"
	"testing"
	"time"
)

func TestRateInstant(t *testing.T) {
	var r Rate
	r.advance(3000, 30, 2*time.Second, true)
	if r.Bytes != 1500 || r.Packets != 15 {
		t.Errorf("instant rate = %v B/s %v p/s, want 1500 and 15", r.Bytes, r.Packets)
	}
	// The first sample seeds every average instead of starting at 0.
	if r.Avg2 != 1500 || r.Avg10 != 1500 || r.Avg40 != 1500 {
		t.Errorf("first averages = %v %v %v, want 1500 each", r.Avg2, r.Avg10, r.Avg40)
	}
	// A later sample moves the instant rate at once, the averages partly.
	r.advance(500, 5, 500*time.Millisecond, false)
	if r.Bytes != 1000 || r.Packets != 10 {
		t.Errorf("instant rate = %v B/s %v p/s, want 1000 and 10", r.Bytes, r.Packets)
	}
	if !(r.Avg2 < 1500 && r.Avg2 > 1000) || !(r.Avg2 < r.Avg10 && r.Avg10 < r.Avg40 && r.Avg40 < 1500) {
		t.Errorf("averages after a drop: 2s %v, 10s %v, 40s %v: want 1000 < 2s < 10s < 40s < 1500",
			r.Avg2, r.Avg10, r.Avg40)
	}
	// The EWMA with time constant tau after dt: avg += (1-e^(-dt/tau))*(x-avg).
	want := 1500 + (1-math.Exp(-0.25))*(1000-1500)
	if math.Abs(float64(r.Avg2)-want) > 1e-3 {
		t.Errorf("2s average = %v, want %v", r.Avg2, want)
	}
}

func TestRateIgnoresEmptyInterval(t *testing.T) {
	r := Rate{Bytes: 7, Avg2: 7, Avg10: 7, Avg40: 7}
	before := r
	r.advance(100, 1, 0, false)
	r.advance(100, 1, -time.Second, false)
	if r != before {
		t.Errorf("advance over dt <= 0 changed the rate: %+v", r)
	}
}

// TestRateConverges feeds a constant rate after a step from 0: the 2 s
// average follows within seconds, the 40 s one lags.
func TestRateConverges(t *testing.T) {
	const rate = 10000.0 // bytes/s
	var r Rate
	r.advance(0, 0, time.Second, true)
	step := 500 * time.Millisecond
	for i := 0; i < 20; i++ { // 10 s at a constant rate
		r.advance(uint64(rate*step.Seconds()), 1, step, false)
	}
	if r.Bytes != rate {
		t.Errorf("instant = %v, want %v", r.Bytes, rate)
	}
	// After 5 time constants an EWMA is within e^-5 (0.7 %) of a step.
	if math.Abs(float64(r.Avg2)-rate)/rate > 0.01 {
		t.Errorf("2 s average after 10 s = %v, want within 1%% of %v", r.Avg2, rate)
	}
	// After one time constant the 10 s average is at 1-1/e (63 %).
	if got := float64(r.Avg10) / rate; math.Abs(got-(1-math.Exp(-1))) > 0.01 {
		t.Errorf("10 s average after 10 s = %.3f of the rate, want %.3f", got, 1-math.Exp(-1))
	}
	if got := float64(r.Avg40) / rate; math.Abs(got-(1-math.Exp(-0.25))) > 0.01 {
		t.Errorf("40 s average after 10 s = %.3f of the rate, want %.3f", got, 1-math.Exp(-0.25))
	}
	if !(r.Avg40 < r.Avg10 && r.Avg10 < r.Avg2) {
		t.Errorf("longer windows must lag more: 2s %v 10s %v 40s %v", r.Avg2, r.Avg10, r.Avg40)
	}
	// The averages do not depend on how often the counters are read: the
	// same 10 s in 1 s steps gives the same 10 s average.
	var r1 Rate
	r1.advance(0, 0, time.Second, true)
	for i := 0; i < 10; i++ {
		r1.advance(uint64(rate), 1, time.Second, false)
	}
	if math.Abs(float64(r1.Avg10)-float64(r.Avg10)) > 1e-5*rate {
		t.Errorf("10 s average depends on the refresh interval: %v (1 s steps) vs %v (0.5 s steps)", r1.Avg10, r.Avg10)
	}
}

func TestDelta(t *testing.T) {
	cases := []struct{ now, before, want uint64 }{
		{100, 40, 60},
		{40, 40, 0},
		{10, 40, 0}, // counter went backwards: reused ID or zeroed counters
		{math.MaxUint64, 0, math.MaxUint64},
	}
	for _, c := range cases {
		if got := delta(c.now, c.before); got != c.want {
			t.Errorf("delta(%d, %d) = %d, want %d", c.now, c.before, got, c.want)
		}
	}
}
