package remote

import (
	"encoding/json"
	"slices"
	"time"
)

// watchSet is what the viewer wants watched.
type watchSet struct {
	all bool
	// summary, with all, asks every node for its totals only, every
	// NodesInterval: what the Nodes tab shows.
	summary bool
	nodes   []string
}

// leaseBody is a watch request (docs/mqtt.md, "Watching a node live"):
// for the next Watch seconds, publish the top Limit flows by Sort every
// Interval seconds on <prefix>/<node>/live. Watch 0 ends the lease.
type leaseBody struct {
	ID       string  `json:"id"`
	Watch    float64 `json:"watch"`
	Interval float64 `json:"interval,omitempty"`
	Limit    int     `json:"limit,omitempty"`
	Sort     string  `json:"sort,omitempty"`
}

// lease is the body of this viewer's lease request (watch false: its
// cancellation); summary asks for the totals and one flow every
// NodesInterval instead of the top flows every Interval.
func (s *settings) lease(watch, summary bool) []byte {
	b := leaseBody{ID: s.ClientID}
	if watch {
		b.Watch = s.Lease.Seconds()
		b.Interval = s.Interval.Seconds()
		b.Limit = s.Limit
		if b.Limit == 0 {
			b.Limit = DefaultWatchLimit
		}
		b.Sort = string(s.Sort)
		if summary {
			// A lease lists at least one flow; the totals are what counts.
			b.Interval, b.Limit = s.NodesInterval.Seconds(), 1
		}
	}
	out, _ := json.Marshal(b) // plain fields: cannot fail
	return out
}

// renewEvery is how often a lease is renewed: three times per lease, so
// that one lost renewal does not end it.
func (s *settings) renewEvery() time.Duration { return s.Lease / 3 }

// requestTopic is where a lease for node goes ("" for every node: the
// broadcast topic).
func (s *settings) requestTopic(node string) string {
	if node == "" {
		return s.Topic + "/broadcast/request"
	}
	return s.Topic + "/" + node + "/request"
}

// setWatch makes w the watched set. It returns the request topics whose
// leases must be cancelled (nodes no longer watched).
func (t *tracker) setWatch(w watchSet) (cancel []string) {
	if t.watchAll && !w.all {
		cancel = append(cancel, t.s.requestTopic(""))
	}
	want := map[string]bool{}
	for _, n := range w.nodes {
		if CheckNode(n) == nil { // a lease is published to the node's request topic
			want[n] = true
		}
	}
	if !w.all && !t.watchAll {
		for n := range t.watching {
			if !want[n] {
				cancel = append(cancel, t.s.requestTopic(n))
			}
		}
	}
	// From one-by-one leases to the broadcast one, nothing is cancelled:
	// the broadcast renews each node's lease (the lease is this viewer's,
	// whatever topic it came by).
	t.watchAll = w.all
	t.summary = w.all && w.summary
	t.watching = want
	if w.all {
		t.watching = map[string]bool{}
	}
	for name, n := range t.nodes {
		n.watched = t.watchAll || t.watching[name]
	}
	t.changed = true
	slices.Sort(cancel)
	return cancel
}

// leaseTopics are the request topics to renew leases on now.
func (t *tracker) leaseTopics() []string {
	if t.watchAll {
		return []string{t.s.requestTopic("")}
	}
	topics := make([]string, 0, len(t.watching))
	for n := range t.watching {
		topics = append(topics, t.s.requestTopic(n))
	}
	slices.Sort(topics)
	return topics
}
