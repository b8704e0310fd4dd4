package mqttexport

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/flowtop/flowtop/report"
)

// Watch leases (docs/mqtt.md, "Watching a node live"). A viewer that
// shows this node asks, on the request topic, for a live stream:
//
//	{"id": "flowtop-view-laptop-1a2b3c", "watch": 10, "interval": 1, "limit": 200, "sort": "rate"}
//
// = for the next 10 s, publish the top 200 flows by rate (and the
// totals) every second on <prefix>/<node>/live. The viewer renews it
// every few seconds and ends it with "watch": 0. However many viewers
// watch, the node publishes one stream: at the fastest interval asked,
// with the largest limit asked. The periodic snapshots on .../snapshot
// keep their schedule, unchanged.
//
// leases holds the live leases and says when to publish; it does no I/O
// and reads no clock, so the exporter's schedule drives it.

// Bounds of watch leases, so that remote viewers can neither make a
// router publish without end nor flood its broker link.
const (
	// minLiveInterval is the fastest a live stream is published.
	minLiveInterval = 500 * time.Millisecond
	// maxLiveInterval is the slowest interval a lease may ask.
	maxLiveInterval = time.Minute
	// maxLease is the longest one request holds a lease.
	maxLease = time.Minute
	// maxViewers is how many viewers may hold a lease at once.
	maxViewers = 32
	// defaultLiveLimit is the flows listed when a lease asks no limit;
	// maxLiveLimit the most a lease may ask.
	defaultLiveLimit = 200
	maxLiveLimit     = 2000
)

// watchRequest is a parsed watch request.
type watchRequest struct {
	viewer   string        // the request's id
	lease    time.Duration // 0 ends the viewer's lease
	interval time.Duration
	limit    int
	sort     report.SortKey
}

var errTooManyViewers = errors.New("too many viewers hold a watch lease")

// parseWatch reads the watch keys of a request body. ok is false when the
// body is no watch request (no "watch" key): a poll, for parseRequest. A
// watch request must carry an id (it names the lease); values out of
// bounds are brought within them, values of the wrong type are refused.
func parseWatch(body []byte) (w watchRequest, ok bool, err error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' || len(body) > MaxRequest {
		return w, false, nil
	}
	var raw struct {
		Watch    *float64        `json:"watch"`
		ID       json.RawMessage `json:"id"`
		Interval *float64        `json:"interval"`
		Limit    *int            `json:"limit"`
		Sort     *string         `json:"sort"`
	}
	bad := func(format string, args ...any) (watchRequest, bool, error) {
		return watchRequest{}, true, fmt.Errorf("%w: watch request: %s", errMalformed, fmt.Sprintf(format, args...))
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		// A key of the wrong type: a watch request if "watch" is there
		// (else parseRequest would answer it as a poll), else
		// parseRequest says why.
		var keys map[string]json.RawMessage
		if json.Unmarshal(body, &keys) != nil {
			return w, false, nil
		}
		if _, isWatch := keys["watch"]; !isWatch {
			return w, false, nil
		}
		return bad("%v", err)
	}
	if raw.Watch == nil {
		return w, false, nil
	}
	if *raw.Watch < 0 {
		return bad("negative watch")
	}
	if w.viewer = watchViewerID(raw.ID); w.viewer == "" || len(w.viewer) > maxRequestID || !utf8.ValidString(w.viewer) {
		return bad("id missing or longer than %d bytes", maxRequestID)
	}
	w.lease = min(leaseSeconds(*raw.Watch), maxLease)
	w.interval = time.Second
	if raw.Interval != nil {
		if *raw.Interval <= 0 {
			return bad("interval must be positive")
		}
		w.interval = min(max(leaseSeconds(*raw.Interval), minLiveInterval), maxLiveInterval)
	}
	w.limit = defaultLiveLimit
	if raw.Limit != nil {
		if *raw.Limit < 0 {
			return bad("negative limit")
		}
		if *raw.Limit > 0 {
			w.limit = min(*raw.Limit, maxLiveLimit)
		}
	}
	w.sort = report.SortRate
	if raw.Sort != nil {
		if w.sort, err = report.ParseSortKey(*raw.Sort); err != nil {
			return bad("%v", err)
		}
	}
	return w, true, nil
}

// watchViewerID reads an id as parseRequest does: a string, or a number as
// written.
func watchViewerID(raw json.RawMessage) string {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	if _, err := strconv.ParseFloat(string(raw), 64); err == nil {
		return string(raw)
	}
	return ""
}

// leaseSeconds converts a JSON number of seconds, saturating far beyond any
// bound.
func leaseSeconds(s float64) time.Duration {
	if s > 1e6 {
		return 1e6 * time.Second
	}
	return time.Duration(s * float64(time.Second))
}

// viewerLease is one viewer's.
type viewerLease struct {
	until    time.Time
	interval time.Duration
	limit    int
	sort     report.SortKey
}

// leases are the live leases of this node.
type leases struct {
	floor   time.Duration // the fastest interval: minLiveInterval or the table's refresh
	viewers map[string]viewerLease
	last    time.Time // the last live publish, zero before
	fresh   bool      // a viewer arrived since: publish without waiting for the interval
	// refused counts requests refused for the viewer bound.
	refused uint64
}

// newLeases makes an empty set. refresh is the table's refresh interval
// (-t): a stream faster than the table changes would repeat itself.
func newLeases(refresh time.Duration) *leases {
	return &leases{floor: max(minLiveInterval, refresh), viewers: map[string]viewerLease{}}
}

// setRefresh follows the table's refresh interval, which is known once
// the table made a snapshot.
func (l *leases) setRefresh(refresh time.Duration) {
	l.floor = max(minLiveInterval, refresh)
}

// apply takes a watch request received at now: it starts, renews or (with
// a zero lease) ends the viewer's lease. A new viewer beyond maxViewers is
// refused; those holding a lease keep it.
func (l *leases) apply(now time.Time, w watchRequest) error {
	if w.lease <= 0 {
		delete(l.viewers, w.viewer)
		return nil
	}
	if _, ok := l.viewers[w.viewer]; !ok {
		l.expire(now) // room may have been freed
		if len(l.viewers) >= maxViewers {
			l.refused++
			return errTooManyViewers
		}
		l.fresh = true // a new viewer wants its first document now
	}
	l.viewers[w.viewer] = viewerLease{until: now.Add(w.lease), interval: w.interval, limit: w.limit, sort: w.sort}
	return nil
}

func (l *leases) expire(now time.Time) {
	for v, ls := range l.viewers {
		if !now.Before(ls.until) {
			delete(l.viewers, v)
		}
	}
}

// livePlan is what the live stream publishes.
type livePlan struct {
	interval time.Duration // the fastest asked, not below the floor
	limit    int           // the largest asked
	sort     report.SortKey
	viewers  int
}

// plan is the stream the live leases ask for; ok is false when none is
// left.
func (l *leases) plan(now time.Time) (p livePlan, ok bool) {
	l.expire(now)
	if len(l.viewers) == 0 {
		return livePlan{}, false
	}
	votes := map[report.SortKey]int{}
	p.interval = maxLiveInterval
	for _, ls := range l.viewers {
		p.interval = min(p.interval, ls.interval)
		p.limit = max(p.limit, ls.limit)
		votes[ls.sort]++
	}
	p.interval = max(p.interval, l.floor)
	p.viewers = len(l.viewers)
	// One stream serves every viewer: the order most of them asked for
	// (ties go to the earlier key of this list); the others sort what
	// they receive themselves.
	best := -1
	for _, k := range []report.SortKey{report.SortRate, report.SortBytes, report.SortPackets, report.SortAge} {
		if votes[k] > best {
			p.sort, best = k, votes[k]
		}
	}
	return p, true
}

// due says what to do at now: publish a live document of plan p (then
// call sent), and ask again at next. A zero next means no lease is left:
// the node is back to its periodic snapshots alone.
func (l *leases) due(now time.Time) (p livePlan, publish bool, next time.Time) {
	p, ok := l.plan(now)
	if !ok {
		l.fresh = false
		return p, false, time.Time{}
	}
	wait := p.interval
	if l.fresh {
		wait = l.floor // a new viewer: at once, but never faster than the floor
	}
	at := l.last.Add(wait)
	publish = !now.Before(at)
	if publish {
		at = now.Add(p.interval)
	}
	// Ask again when the first lease ends, to drop to the next plan then.
	for _, ls := range l.viewers {
		if ls.until.Before(at) {
			at = ls.until
		}
	}
	return p, publish, at
}

// sent records a live document published at now.
func (l *leases) sent(now time.Time) {
	l.last = now
	l.fresh = false
}

// liveTopic is where the live stream of a node goes.
func liveTopic(prefix, node string, gz bool) string {
	t := prefix + "/" + node + "/live"
	if gz {
		t += "/gz"
	}
	return t
}
