package mqttexport

import (
	"context"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/traffic"
)

// schedule turns ticks, ended flows and requests into jobs for the
// outbox. It never blocks on the broker.
func (e *Exporter) schedule(ctx context.Context) {
	s := newScheduler(e)
	defer s.stop()
	for {
		select {
		case <-ctx.Done():
			s.shutdown()
			return
		case <-e.fresh:
			s.afterConnect()
		case <-s.newerC:
			s.pollNewer()
		case <-s.tick.C:
			s.periodic()
		case fl, ok := <-s.ended:
			s.endedRecord(fl, ok)
		case <-s.endedTick.C:
			s.endedBatch()
		case <-s.liveC:
			s.planLive()
		case in := <-e.reqs:
			s.request(in)
		case <-s.pendingC:
			s.replyPending()
		}
	}
}

// scheduler is the state of schedule: one method per event of its loop.
// It is owned by the one goroutine that runs schedule; nothing else reads
// or writes its fields, so none of them is guarded.
type scheduler struct {
	e *Exporter

	tick      *time.Ticker           // periodic snapshots, every Interval
	endedTick *time.Ticker           // ended batches, every endedEvery
	ended     <-chan conntrack.Ended // the table's ended records; nil once closed
	batch     []conntrack.Ended      // the ended records of the current second

	// The local hosts' traffic, for the state: this goroutine owns it and
	// feeds it the ended records it reads anyway. The first snapshot is
	// its baseline.
	acct *traffic.Accounting

	newest    time.Time // Time of the newest snapshot queued
	newerT    *time.Timer
	newerC    <-chan time.Time // polls for a newer snapshot after a tick found none
	newerPoll time.Duration    // the period of that poll

	// Replies: at most one per reqEvery, the newest request waiting.
	lastReply time.Time
	pending   *request
	pendingT  *time.Timer
	pendingC  <-chan time.Time

	// What the logs said last: rejected and coalesced requests, ended
	// records dropped for the queue bound.
	loggedRej, loggedCoal uint64
	lastBadNote           time.Time
	loggedFull            uint64
	lastFull              time.Time

	live       *leases
	liveNewest time.Time // Time of the newest snapshot queued as a live document
	liveT      *time.Timer
	liveC      <-chan time.Time
}

func newScheduler(e *Exporter) *scheduler {
	s := &scheduler{
		e:         e,
		tick:      time.NewTicker(e.s.Interval),
		endedTick: time.NewTicker(e.endedEvery),
		ended:     e.s.Ended,
		newerT:    stoppedTimer(),
		newerPoll: min(max(e.s.Interval/20, 10*time.Millisecond), 100*time.Millisecond),
		pendingT:  stoppedTimer(),
		live:      newLeases(0),
		liveT:     stoppedTimer(),
	}
	s.acct = traffic.New(e.s.LocalNets, 0)
	s.acct.Fold(e.s.Latest())
	return s
}

// stoppedTimer is a timer to Reset later.
func stoppedTimer() *time.Timer {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return t
}

// stop stops the scheduler's tickers and timers.
func (s *scheduler) stop() {
	s.tick.Stop()
	s.endedTick.Stop()
	s.newerT.Stop()
	s.pendingT.Stop()
	s.liveT.Stop()
}

// shutdown queues the last ended batch.
func (s *scheduler) shutdown() {
	e := s.e
	// The table stops before the exporters and may just have sent its
	// last DESTROY records: take them too, and leave the batch to the
	// sender's final flush.
	s.batch = e.drainEnded(s.ended, s.batch)
	if len(s.batch) > 0 {
		e.out.put(&job{kind: jobEnded, ended: s.batch})
	}
	if full := e.endedFull.Load(); full != s.loggedFull {
		e.log.Warn("mqtt: ended records dropped: the queue is full", "records", full-s.loggedFull, "bound", e.maxEnded)
	}
}

// afterConnect queues the latest snapshot after a connect: it goes out at
// once, even if it was sent before the connection was lost.
func (s *scheduler) afterConnect() {
	if snap := s.e.s.Latest(); snap != nil {
		s.newest = maxTime(s.newest, snap.Time)
		s.queueSnapshot(snap)
	}
}

// periodic queues the snapshot of a tick, or polls for it, and summarises
// the requests ignored.
func (s *scheduler) periodic() {
	if s.newerC == nil && !s.queueNewer() {
		// Wait for the table's next snapshot; a tick that comes
		// meanwhile changes nothing.
		s.newerT.Reset(s.newerPoll)
		s.newerC = s.newerT.C
	}
	s.logIgnoredRequests()
}

// pollNewer looks again for the snapshot a tick found none newer of.
func (s *scheduler) pollNewer() {
	if s.queueNewer() {
		s.newerC = nil
	} else {
		s.newerT.Reset(s.newerPoll)
	}
}

// queueNewer queues the latest snapshot if it is newer than the last one
// queued. The table makes its snapshots on its own tick: when the two
// periods are equal and nearly in phase, the latest snapshot at one tick
// could be the same as at the one before (published twice with one time,
// and the next one never).
func (s *scheduler) queueNewer() bool {
	snap := s.e.s.Latest()
	if snap == nil || !snap.Time.After(s.newest) {
		return false
	}
	s.newest = snap.Time
	s.queueSnapshot(snap)
	return true
}

// queueSnapshot queues snap with its state's traffic.
func (s *scheduler) queueSnapshot(snap *conntrack.Snapshot) {
	var j *job
	j, s.batch = s.e.snapshotJob(s.acct, s.ended, s.batch, snap)
	s.e.out.put(j)
}

// logIgnoredRequests summarises hostile or noisy pollers, once per
// interval.
func (s *scheduler) logIgnoredRequests() {
	e := s.e
	if rej, coal := e.rejected.Load(), e.coalesced.Load(); rej != s.loggedRej || coal != s.loggedCoal {
		e.log.Warn("mqtt requests ignored", "rejected", rej-s.loggedRej, "coalesced", coal-s.loggedCoal,
			"total_requests", e.requests.Load(), "total_oversized", e.inbound.cut.Load())
		s.loggedRej, s.loggedCoal = rej, coal
	}
}

// endedRecord takes a record read from the table (ok is false once the
// channel is closed).
func (s *scheduler) endedRecord(fl conntrack.Ended, ok bool) {
	if !ok {
		s.ended = nil
		return
	}
	s.batch = s.e.takeEnded(s.acct, s.batch, fl)
}

// endedBatch queues the ended records of the second gone by.
func (s *scheduler) endedBatch() {
	e := s.e
	if len(s.batch) > 0 {
		e.out.put(&job{kind: jobEnded, ended: s.batch})
		s.batch = nil
	}
	// Records dropped for the bound are summarised every ten seconds at
	// most; other losses are logged as they happen.
	if full := e.endedFull.Load(); full != s.loggedFull && time.Since(s.lastFull) >= 10*time.Second {
		e.log.Warn("mqtt: ended records dropped: the queue is full", "records", full-s.loggedFull,
			"bound", e.maxEnded, "connected", e.connected.Load(), "total_dropped_records", e.endedLost.Load())
		s.loggedFull, s.lastFull = full, time.Now()
	}
}

// planLive queues a live document when the leases say one is due, and
// sets the timer for the next look. A table snapshot goes out live once
// at most: without a newer one, it looks again shortly.
func (s *scheduler) planLive() {
	now := time.Now()
	p, publish, next := s.live.due(now)
	if publish {
		snap := s.e.s.Latest()
		switch {
		case !s.e.connected.Load():
			// Skipped, not queued: a document per interval replaced
			// while the broker is away would only count as dropped.
			s.live.sent(now)
		case snap != nil && snap.Time.After(s.liveNewest):
			s.liveNewest = snap.Time
			s.e.out.put(&job{kind: jobLive, snap: snap, live: p})
			s.live.sent(now)
		default:
			next = now.Add(min(max(s.live.floor/20, 10*time.Millisecond), 100*time.Millisecond))
		}
	}
	if next.IsZero() {
		s.liveT.Stop()
		s.liveC = nil
		return
	}
	s.liveT.Reset(time.Until(next))
	s.liveC = s.liveT.C
}

// request takes a message of the request topics: a watch request or a
// poll.
func (s *scheduler) request(in inbound) {
	if w, isWatch, err := parseWatch(in.body); isWatch {
		s.watch(in, w, err)
		return
	}
	r, err := parseRequest(in.body)
	if err != nil {
		s.reject("mqtt request ignored", in, err)
		return
	}
	switch {
	case s.pending != nil:
		// One reply per reqEvery: the newest request wins.
		s.e.coalesced.Add(1)
		s.e.dropped.Add(1)
		s.pending = &r
	case time.Since(s.lastReply) >= s.e.reqEvery:
		s.reply(r)
	default:
		s.pending = &r
		s.pendingT.Reset(time.Until(s.lastReply.Add(s.e.reqEvery)))
		s.pendingC = s.pendingT.C
	}
}

// watch takes a watch request: no poll answer, whatever it says.
func (s *scheduler) watch(in inbound, w watchRequest, err error) {
	if err == nil {
		if snap := s.e.s.Latest(); snap != nil {
			s.live.setRefresh(snap.Interval)
		}
		err = s.live.apply(time.Now(), w)
	}
	if err != nil {
		s.reject("mqtt watch request ignored", in, err)
		return
	}
	s.planLive()
}

// reject counts a request refused; the log notes one every ten seconds
// at most (the summary at each tick counts them all).
func (s *scheduler) reject(msg string, in inbound, err error) {
	s.e.rejected.Add(1)
	s.e.dropped.Add(1)
	if time.Since(s.lastBadNote) > 10*time.Second {
		s.lastBadNote = time.Now()
		s.e.log.Debug(msg, "topic", in.topic, "err", err)
	}
}

// replyPending answers the request that waited for reqEvery.
func (s *scheduler) replyPending() {
	s.pendingC = nil
	s.reply(*s.pending)
	s.pending = nil
}

func (s *scheduler) reply(r request) {
	s.lastReply = time.Now()
	if snap := s.e.s.Latest(); snap != nil {
		s.e.out.put(&job{kind: jobReply, snap: snap, req: r})
	}
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// snapshotJob makes the job of a periodic snapshot: it folds snap into
// the accounting and takes the state's traffic from it. The ended records
// already waiting on ended are counted (and added to batch) first: the
// table sends a flow's record before the first snapshot without the flow,
// and a record counted after that snapshot would find the flow forgotten
// and count all its bytes once more.
func (e *Exporter) snapshotJob(acct *traffic.Accounting, ended <-chan conntrack.Ended, batch []conntrack.Ended,
	snap *conntrack.Snapshot) (*job, []conntrack.Ended) {
	// Only the records buffered now: a closed channel is left to the
	// scheduler's loop, and a busy one cannot hold the snapshot back.
	for n := len(ended); n > 0; n-- {
		batch = e.takeEnded(acct, batch, <-ended)
	}
	acct.Fold(snap)
	return &job{kind: jobSnapshot, snap: snap, traffic: hostTrafficOf(acct)}, batch
}

// takeEnded counts an ended record in the accounting and adds it to the
// batch of the current second.
func (e *Exporter) takeEnded(acct *traffic.Accounting, batch []conntrack.Ended, fl conntrack.Ended) []conntrack.Ended {
	acct.Ended(&fl)
	return e.addEnded(batch, fl)
}

// addEnded adds fl to the batch of the current second, unless the batch
// is already as big as the whole queue may be.
func (e *Exporter) addEnded(batch []conntrack.Ended, fl conntrack.Ended) []conntrack.Ended {
	if len(batch) >= e.maxEnded {
		e.losses().queueFull(1)
		return batch
	}
	return append(batch, fl)
}

// drainEnded adds to batch what is left on ch at shutdown. It reads until
// ch is closed or has been empty for endedQuiet, endedDrain at most.
func (e *Exporter) drainEnded(ch <-chan conntrack.Ended, batch []conntrack.Ended) []conntrack.Ended {
	if ch == nil {
		return batch
	}
	quiet := time.NewTimer(e.endedQuiet)
	defer quiet.Stop()
	limit := time.NewTimer(e.endedDrain)
	defer limit.Stop()
	for {
		select {
		case fl, ok := <-ch:
			if !ok {
				return batch
			}
			batch = e.addEnded(batch, fl)
			quiet.Reset(e.endedQuiet)
		case <-quiet.C:
			return batch
		case <-limit.C:
			return batch
		}
	}
}
