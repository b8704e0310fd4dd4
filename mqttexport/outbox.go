package mqttexport

import (
	"sync"
	"sync/atomic"

	"github.com/flowtop/flowtop/conntrack"
)

type jobKind uint8

const (
	jobSnapshot  jobKind = iota // periodic snapshot, and the state topic
	jobReply                    // a snapshot answering a request
	jobEnded                    // a batch of ended flows
	jobDiscovery                // the Home Assistant discovery config
	jobLive                     // a live document for the viewers holding a watch lease
)

// job is work for the sender, kept lazy: documents are built only when a
// connection is up to publish them, so an outage costs no encoding.
type job struct {
	kind  jobKind
	snap  *conntrack.Snapshot
	req   request
	ended []conntrack.Ended
	// traffic is, for a snapshot, what the local hosts did: the state's
	// totals and top hosts.
	traffic *hostTraffic
	// live is, for a live document, what the watch leases ask for.
	live  livePlan
	tries int
}

// lossCounters counts what the exporter could not deliver. Every loss is
// also in dropped.
type lossCounters struct {
	dropped *atomic.Uint64 // everything: the exporter's Dropped
	ended   *atomic.Uint64 // ended records
	full    *atomic.Uint64 // ended records dropped for the queue bound
}

// endedRecords counts n ended records lost.
func (l lossCounters) endedRecords(n int) {
	l.dropped.Add(uint64(n))
	l.ended.Add(uint64(n))
}

// queueFull counts n ended records dropped for the queue bound; they are
// logged in a summary, not one by one.
func (l lossCounters) queueFull(n int) {
	l.endedRecords(n)
	l.full.Add(uint64(n))
}

// outbox is the bounded queue between the scheduler and the sender. A
// newer snapshot, reply or live document replaces an unsent one; ended
// batches queue up to maxEnded records, the oldest dropped first. Every
// loss is counted.
// The discovery config waits in a slot of its own: asking for it again
// before it went out changes nothing.
type outbox struct {
	mu        sync.Mutex
	discovery *job
	snapshot  *job
	reply     *job
	live      *job
	ended     []*job
	nEnded    int // records in ended
	maxEnded  int
	notify    chan struct{} // something was queued: wakes the sender
	endedIn   chan struct{} // ended records were queued: shortens a reconnect wait
	lost      lossCounters
}

func newOutbox(maxEnded int, lost lossCounters) *outbox {
	return &outbox{maxEnded: maxEnded, notify: make(chan struct{}, 1), endedIn: make(chan struct{}, 1), lost: lost}
}

// put queues j without blocking.
func (o *outbox) put(j *job) {
	o.mu.Lock()
	switch j.kind {
	case jobDiscovery:
		o.discovery = j
	case jobSnapshot:
		if o.snapshot != nil {
			o.lost.dropped.Add(1)
		}
		o.snapshot = j
	case jobReply:
		if o.reply != nil {
			o.lost.dropped.Add(1)
		}
		o.reply = j
	case jobLive:
		if o.live != nil {
			o.lost.dropped.Add(1)
		}
		o.live = j
	case jobEnded:
		o.ended = append(o.ended, j)
		o.nEnded += len(j.ended)
		o.trimEnded()
	}
	o.mu.Unlock()
	notify(o.notify)
	if j.kind == jobEnded {
		notify(o.endedIn)
	}
}

// requeue puts back a job whose publishing failed, unless something newer
// took its place. It reports whether the job was kept. An ended batch
// goes back in front, within the bound.
func (o *outbox) requeue(j *job) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	switch j.kind {
	case jobDiscovery:
		if o.discovery != nil {
			return false
		}
		o.discovery = j
	case jobSnapshot:
		if o.snapshot != nil {
			return false
		}
		o.snapshot = j
	case jobReply:
		if o.reply != nil {
			return false
		}
		o.reply = j
	case jobLive:
		if o.live != nil {
			return false
		}
		o.live = j
	case jobEnded:
		o.ended = append([]*job{j}, o.ended...)
		o.nEnded += len(j.ended)
		o.trimEnded()
	}
	return true
}

// trimEnded drops the oldest records beyond the bound.
func (o *outbox) trimEnded() {
	for o.nEnded > o.maxEnded && len(o.ended) > 0 {
		old := o.ended[0]
		over := o.nEnded - o.maxEnded
		if over < len(old.ended) {
			old.ended = old.ended[over:]
			o.nEnded -= over
			o.lost.queueFull(over)
			return
		}
		o.ended[0] = nil
		o.ended = o.ended[1:]
		o.nEnded -= len(old.ended)
		o.lost.queueFull(len(old.ended))
	}
}

// next takes the most urgent job: the discovery config (a few small
// messages, and what makes the state readable), the oldest ended batch
// (records must not wait behind snapshots, which are replaced when they
// wait), then a reply, then the snapshot, then a live document (the
// periodic subscribers keep their schedule whoever watches). It returns
// nil when the outbox is empty.
func (o *outbox) next() *job {
	o.mu.Lock()
	defer o.mu.Unlock()
	var j *job
	switch {
	case o.discovery != nil:
		j, o.discovery = o.discovery, nil
	case len(o.ended) > 0:
		j = o.takeEnded()
	case o.reply != nil:
		j, o.reply = o.reply, nil
	case o.snapshot != nil:
		j, o.snapshot = o.snapshot, nil
	case o.live != nil:
		j, o.live = o.live, nil
	}
	return j
}

// nextEnded takes the oldest ended batch, or returns nil.
func (o *outbox) nextEnded() *job {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.ended) == 0 {
		return nil
	}
	return o.takeEnded()
}

func (o *outbox) takeEnded() *job {
	j := o.ended[0]
	o.ended[0] = nil
	o.ended = o.ended[1:]
	o.nEnded -= len(j.ended)
	return j
}

// size tells how many jobs and ended records are queued.
func (o *outbox) size() (jobs, endedRecords int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.discovery != nil {
		jobs++
	}
	if o.snapshot != nil {
		jobs++
	}
	if o.reply != nil {
		jobs++
	}
	if o.live != nil {
		jobs++
	}
	return jobs + len(o.ended), o.nEnded
}
