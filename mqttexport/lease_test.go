package mqttexport

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/flowtop/flowtop/report"
)

var leaseT0 = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

func leaseAt(d time.Duration) time.Time { return leaseT0.Add(d) }

func watchOf(viewer string, lease, interval time.Duration, limit int, sort report.SortKey) watchRequest {
	return watchRequest{viewer: viewer, lease: lease, interval: interval, limit: limit, sort: sort}
}

// leaseRun drives the leases as the exporter's schedule would from `from` to
// `to`: it wakes at each next (or at the end), publishes when due, and
// returns the times it published. step is called before each wake with
// the time, to renew or add leases.
func leaseRun(t *testing.T, l *leases, from, to time.Time, step func(now time.Time)) (published []time.Time) {
	t.Helper()
	now := from
	for now.Before(to) {
		if step != nil {
			step(now)
		}
		_, publish, next := l.due(now)
		if publish {
			l.sent(now)
			published = append(published, now)
		}
		if !next.IsZero() && !next.After(now) {
			t.Fatalf("at %v: next %v is not later", now.Sub(leaseT0), next.Sub(leaseT0))
		}
		if next.IsZero() || next.After(to) {
			// No lease: a renewal (step) may come; look again soon.
			next = now.Add(100 * time.Millisecond)
		}
		now = next
	}
	return published
}

// TestLeasesOneViewer: one viewer at 1 s is served at once, then every
// second, with its limit and sort.
func TestLeasesOneViewer(t *testing.T) {
	l := newLeases(0)
	if _, publish, next := l.due(leaseAt(0)); publish || !next.IsZero() {
		t.Fatalf("no lease: publish %v, next %v; want the periodic schedule alone", publish, next)
	}
	if err := l.apply(leaseAt(0), watchOf("v1", 10*time.Second, time.Second, 50, report.SortBytes)); err != nil {
		t.Fatal(err)
	}
	p, publish, next := l.due(leaseAt(0))
	if !publish || next != leaseAt(time.Second) || p != (livePlan{interval: time.Second, limit: 50, sort: report.SortBytes, viewers: 1}) {
		t.Fatalf("first: plan %+v, publish %v, next %v", p, publish, next)
	}
	l.sent(leaseAt(0))
	if _, publish, next := l.due(leaseAt(400 * time.Millisecond)); publish || next != leaseAt(time.Second) {
		t.Errorf("between: publish %v, next %v", publish, next)
	}
	got := leaseRun(t, l, leaseAt(0), leaseAt(5*time.Second), nil)
	if len(got) != 4 || got[0] != leaseAt(time.Second) || got[3] != leaseAt(4*time.Second) {
		t.Errorf("published at %v; want every second from 1s", leaseOffsets(got))
	}
}

// TestLeasesViewersShareOneStream: three viewers asking 1 s, 2 s and
// 0.2 s (below the floor) get one stream at 0.5 s with the largest limit,
// not three.
func TestLeasesViewersShareOneStream(t *testing.T) {
	l := newLeases(0)
	for i, w := range []watchRequest{
		watchOf("a", 10*time.Second, time.Second, 200, report.SortRate),
		watchOf("b", 10*time.Second, 2*time.Second, 500, report.SortRate),
		watchOf("c", 10*time.Second, 200*time.Millisecond, 100, report.SortBytes),
	} {
		if err := l.apply(leaseAt(0), w); err != nil {
			t.Fatalf("viewer %d: %v", i, err)
		}
	}
	p, _, _ := l.due(leaseAt(0))
	if p != (livePlan{interval: minLiveInterval, limit: 500, sort: report.SortRate, viewers: 3}) {
		t.Errorf("plan %+v; want 0.5 s, limit 500, the majority's sort, 3 viewers", p)
	}
	got := leaseRun(t, l, leaseAt(0), leaseAt(5*time.Second), nil)
	if len(got) != 10 {
		t.Errorf("%d documents in 5 s (%v); want 10: one stream at 0.5 s", len(got), leaseOffsets(got))
	}
	for i := 1; i < len(got); i++ {
		if d := got[i].Sub(got[i-1]); d < minLiveInterval {
			t.Fatalf("two documents %v apart", d)
		}
	}
	// The table's refresh interval is a floor too.
	slow := newLeases(2 * time.Second)
	slow.apply(leaseAt(0), watchOf("a", 10*time.Second, time.Second, 200, report.SortRate))
	if p, _, _ := slow.due(leaseAt(0)); p.interval != 2*time.Second {
		t.Errorf("with -t 2s: interval %v", p.interval)
	}
}

// TestLeasesExpire: a lease that is not renewed ends, and the node goes
// back to its periodic schedule alone; renewals keep it; the plan drops
// to the remaining viewers' when the fastest one leaves; "watch": 0 ends
// a lease at once.
func TestLeasesExpire(t *testing.T) {
	l := newLeases(0)
	l.apply(leaseAt(0), watchOf("a", 3*time.Second, time.Second, 200, report.SortRate))
	got := leaseRun(t, l, leaseAt(0), leaseAt(10*time.Second), nil)
	if len(got) != 3 || got[2] != leaseAt(2*time.Second) {
		t.Errorf("published at %v; want 0s 1s 2s, then nothing", leaseOffsets(got))
	}
	if _, publish, next := l.due(leaseAt(10 * time.Second)); publish || !next.IsZero() {
		t.Errorf("after expiry: publish %v, next %v", publish, next)
	}

	// Renewed every second (lease/3): it holds.
	l = newLeases(0)
	renew := func(now time.Time) {
		if now.Sub(leaseT0)%time.Second == 0 && now.Before(leaseAt(6*time.Second)) {
			l.apply(now, watchOf("a", 3*time.Second, time.Second, 200, report.SortRate))
		}
	}
	got = leaseRun(t, l, leaseAt(0), leaseAt(12*time.Second), renew)
	if n := len(got); n != 8 || got[n-1] != leaseAt(7*time.Second) {
		t.Errorf("renewed until 5s (lease 3s): published at %v; want 0s..7s", leaseOffsets(got))
	}

	// The fast viewer leaves: the slow one's interval.
	l = newLeases(0)
	l.apply(leaseAt(0), watchOf("fast", 2*time.Second, 500*time.Millisecond, 200, report.SortRate))
	l.apply(leaseAt(0), watchOf("slow", 10*time.Second, 2*time.Second, 200, report.SortRate))
	if _, _, next := l.due(leaseAt(1500 * time.Millisecond)); next.After(leaseAt(2 * time.Second)) {
		t.Errorf("next %v is after the fast lease ends (2s)", next.Sub(leaseT0))
	}
	if p, _, _ := l.due(leaseAt(2 * time.Second)); p.interval != 2*time.Second || p.viewers != 1 {
		t.Errorf("after the fast one: %+v", p)
	}
	l.apply(leaseAt(3*time.Second), watchOf("slow", 0, 0, 0, ""))
	if _, publish, next := l.due(leaseAt(3 * time.Second)); publish || !next.IsZero() {
		t.Errorf("after watch 0: publish %v, next %v", publish, next)
	}
}

// TestLeasesViewerBound: a viewer beyond the bound is refused and
// counted; those holding a lease renew it; a freed place is taken.
func TestLeasesViewerBound(t *testing.T) {
	l := newLeases(0)
	for i := range maxViewers {
		if err := l.apply(leaseAt(0), watchOf(fmt.Sprint("v", i), 5*time.Second, time.Second, 1, report.SortRate)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.apply(leaseAt(0), watchOf("late", 5*time.Second, time.Second, 1, report.SortRate)); !errors.Is(err, errTooManyViewers) || l.refused != 1 {
		t.Errorf("viewer %d: %v, refused %d", maxViewers+1, err, l.refused)
	}
	if err := l.apply(leaseAt(time.Second), watchOf("v0", 10*time.Second, time.Second, 1, report.SortRate)); err != nil {
		t.Errorf("renewal refused: %v", err)
	}
	// Every lease but v0's ends at 5 s: room again.
	if err := l.apply(leaseAt(6*time.Second), watchOf("late", 5*time.Second, time.Second, 1, report.SortRate)); err != nil {
		t.Errorf("after the others expired: %v", err)
	}
}

// TestParseWatch: the watch keys, their bounds and defaults; bodies
// without "watch" are polls.
func TestParseWatch(t *testing.T) {
	for _, tc := range []struct {
		body string
		ok   bool
		want watchRequest
		err  string
	}{
		{body: `{"id":"v","watch":10,"interval":1,"limit":200,"sort":"rate"}`, ok: true,
			want: watchOf("v", 10*time.Second, time.Second, 200, report.SortRate)},
		{body: `{"id":42,"watch":2.5}`, ok: true, want: watchOf("42", 2500*time.Millisecond, time.Second, defaultLiveLimit, report.SortRate)},
		{body: `{"id":"v","watch":0}`, ok: true, want: watchOf("v", 0, time.Second, defaultLiveLimit, report.SortRate)},
		{body: `{"id":"v","watch":1e9,"interval":0.01,"limit":1000000,"sort":"bytes"}`, ok: true,
			want: watchOf("v", maxLease, minLiveInterval, maxLiveLimit, report.SortBytes)},
		{body: `{"id":"v","watch":10,"interval":3600}`, ok: true, want: watchOf("v", 10*time.Second, maxLiveInterval, defaultLiveLimit, report.SortRate)},
		{body: `{"id":"q-1","limit":10}`},
		{body: `RETV`},
		{body: ``},
		{body: `{"watch":`},
		{body: `{"watch":10}`, ok: true, err: "id missing"},
		{body: `{"id":"` + strings.Repeat("x", 129) + `","watch":10}`, ok: true, err: "id missing or longer than 128"},
		{body: `{"id":"v","watch":-1}`, ok: true, err: "negative watch"},
		{body: `{"id":"v","watch":10,"interval":0}`, ok: true, err: "interval must be positive"},
		{body: `{"id":"v","watch":10,"limit":-3}`, ok: true, err: "negative limit"},
		{body: `{"id":"v","watch":10,"sort":"name"}`, ok: true, err: "unknown sort key"},
		{body: `{"id":"v","watch":"ten"}`, ok: true, err: "watch request"},
		{body: `{"id":"v","watch":10,"limit":"all"}`, ok: true, err: "watch request"},
		{body: `{"id":"v","limit":"all"}`},
	} {
		w, ok, err := parseWatch([]byte(tc.body))
		if ok != tc.ok || (err == nil) != (tc.err == "") || err != nil && !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%.60s: ok %v, err %v; want ok %v, err %q", tc.body, ok, err, tc.ok, tc.err)
			continue
		}
		if err == nil && w != tc.want {
			t.Errorf("%.60s: %+v, want %+v", tc.body, w, tc.want)
		}
		if err != nil && !errors.Is(err, errMalformed) {
			t.Errorf("%.60s: %v is not errMalformed", tc.body, err)
		}
	}
	if got := liveTopic("flowtop", "r1", true); got != "flowtop/r1/live/gz" {
		t.Errorf("live topic %q", got)
	}
}

func leaseOffsets(ts []time.Time) []time.Duration {
	out := make([]time.Duration, len(ts))
	for i, t := range ts {
		out[i] = t.Sub(leaseT0)
	}
	return out
}
