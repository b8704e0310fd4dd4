package ipfix

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/export"
	"github.com/flowtop/flowtop/report"
)

// Exporter sends flow records to one or more collectors. Make one with
// New and start it with Run.
type Exporter struct {
	cfg Config
	// latest is the table's newest snapshot (nil before the first): its
	// flows are exported every active timeout, and its filter selects the
	// ended flows exported too. endedCh is the exporter's own ended-flow
	// subscription (nil for none), always drained.
	latest  func() *conntrack.Snapshot
	endedCh <-chan conntrack.Ended
	log     *slog.Logger
	senders []*sender
	running atomic.Bool

	published, dropped, errs atomic.Uint64

	// Owned by Run's goroutine: what was exported of each long or NATed
	// flow, and of those that ended lately, by the flow's identity (the
	// ID alone is a hash and collides).
	flows map[conntrack.Key]exported
	full  bool // the flows map reached maxFlows (logged once)

	// Tunables, changed by tests only.
	templateRefresh time.Duration
	queueLen        int // records waiting per collector
	maxFlows        int // bound of flows
	// forgetAfter is how long a flow missing from the snapshots, or
	// ended, is remembered.
	forgetAfter            time.Duration
	minBackoff, maxBackoff time.Duration
	dialTimeout            time.Duration
	writeTimeout           time.Duration
	// At shutdown: the Ended channel is read until it is quiet for
	// endedQuiet (at most endedDrain in all), then the senders have
	// flushTimeout to send what is queued.
	endedQuiet, endedDrain time.Duration
	flushTimeout           time.Duration
	now                    func() time.Time
}

// exported is what the collectors were last sent of a flow.
type exported struct {
	orig, reply conntrack.Counter
	// at is the end of the last record (Unix ms), where the next one
	// starts.
	at int64
	// seen is the time of the last snapshot that held the flow, or its
	// end (Unix ms).
	seen       int64
	natCreated bool // its NAT create event was sent
	// ended marks a flow whose ended record was sent (at is its end).
	ended bool
}

// New checks cfg. env is what the exporter reads of the table: Latest
// (required; it must not block) and its own Ended subscription, and its
// Logger. Nothing is sent until Run.
func New(cfg Config, env export.Env) (*Exporter, error) {
	cfg, cols, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	if env.Latest == nil {
		return nil, errors.New("ipfix: no snapshot source (Env.Latest is nil)")
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Exporter{
		cfg:             cfg,
		latest:          env.Latest,
		endedCh:         env.Ended,
		log:             log.With("exporter", "ipfix"),
		flows:           map[conntrack.Key]exported{},
		templateRefresh: TemplateRefresh,
		queueLen:        4096,
		maxFlows:        1 << 18,
		forgetAfter:     30 * time.Second,
		minBackoff:      time.Second,
		maxBackoff:      time.Minute,
		dialTimeout:     10 * time.Second,
		writeTimeout:    5 * time.Second,
		endedQuiet:      50 * time.Millisecond,
		endedDrain:      500 * time.Millisecond,
		flushTimeout:    2 * time.Second,
		now:             time.Now,
	}
	for _, c := range cols {
		e.senders = append(e.senders, &sender{col: c, e: e})
	}
	return e, nil
}

// New makes the exporter of c on env: New as flowtop's exporter seam
// calls it (export.Spec.New).
func (c Config) New(env export.Env) (export.Exporter, error) {
	e, err := New(c, env)
	if err != nil {
		return nil, err
	}
	return e, nil
}

// Stats returns the exporter's counters, summed over the collectors. It is
// safe for concurrent use. Published counts data records written to a
// collector's socket; Dropped counts records lost before that (a full
// queue, a failed write, a TCP collector down at exit); Errors counts
// failed connects and writes.
func (e *Exporter) Stats() report.ExporterHealth {
	return report.ExporterHealth{
		Published: e.published.Load(),
		Dropped:   e.dropped.Load(),
		Errors:    e.errs.Load(),
	}
}

// Name is the exporter's key in health.exporters.
func (e *Exporter) Name() string { return "ipfix" }

// Health is Stats: what flowtop's exporter seam (package export) reads.
func (e *Exporter) Health() report.ExporterHealth { return e.Stats() }

// Run exports until ctx is done: ended flows as they come, long flows
// every active timeout. It then takes the flows that ended in the last
// moments, lets the senders send what is queued (for about two seconds at
// most), and returns once its goroutines have stopped. Run may be called
// once.
func (e *Exporter) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return errors.New("ipfix: exporter already run")
	}
	sendCtx, stopSending := context.WithCancel(context.Background())
	defer stopSending()
	var wg sync.WaitGroup
	for _, s := range e.senders {
		s.prepare()
		wg.Go(func() { s.run(sendCtx) })
	}
	ended := e.endedCh
	tick := time.NewTicker(e.scanEvery())
	defer tick.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case fl, ok := <-ended:
			if !ok {
				ended = nil
				continue
			}
			e.ended(&fl)
		case <-tick.C:
			e.scan()
		}
	}
	e.drainEnded(ended)
	for _, s := range e.senders {
		close(s.q)
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(e.flushTimeout):
		stopSending()
		<-done
	}
	return nil
}

// scanEvery is the period of the active-timeout scan: a quarter of the
// timeout, so that a long flow is exported at most a quarter late.
func (e *Exporter) scanEvery() time.Duration {
	return max(e.cfg.ActiveTimeout/4, 250*time.Millisecond)
}

// drainEnded reads what the table still sends at shutdown: until the
// channel is quiet for endedQuiet, at most endedDrain.
func (e *Exporter) drainEnded(ch <-chan conntrack.Ended) {
	if ch == nil {
		return
	}
	deadline := time.NewTimer(e.endedDrain)
	defer deadline.Stop()
	for {
		quiet := time.NewTimer(e.endedQuiet)
		select {
		case fl, ok := <-ch:
			quiet.Stop()
			if !ok {
				return
			}
			e.ended(&fl)
		case <-quiet.C:
			return
		case <-deadline.C:
			quiet.Stop()
			return
		}
	}
}

// takeEnded handles the ended flows already waiting, without blocking.
func (e *Exporter) takeEnded() {
	ch := e.endedCh
	if ch == nil {
		return
	}
	for {
		select {
		case fl, ok := <-ch:
			if !ok {
				return
			}
			e.ended(&fl)
		default:
			return
		}
	}
}

// ended exports a flow the kernel destroyed: the counters since its last
// record (all of them when it had none), and its NAT events.
func (e *Exporter) ended(fl *conntrack.Ended) {
	f := &fl.Flow
	if s := e.latest(); s != nil && !s.Filter.Match(f, fl.Stop) {
		return
	}
	k := f.Key()
	st, had := e.flows[k]
	if had && st.ended {
		st, had = exported{}, false // another connection with the same key
	}
	end := unixMs(fl.Stop)
	start := end
	switch {
	case had:
		start = st.at
	case !f.Start.IsZero():
		start = stampMs(f.Start)
	}
	var orig, reply conntrack.Counter
	if f.HasCounters {
		orig, reply = sub(f.OrigCount, st.orig), sub(f.ReplyCount, st.reply)
	}
	nat := e.cfg.NATEvents && isNAT44(f)
	if nat && !st.natCreated {
		created := start
		if !f.Start.IsZero() {
			created = stampMs(f.Start)
		}
		e.enqueue(natEventRecord(f, natSessionCreate, created))
	}
	e.enqueue(flowRecord(f, orig, reply, start, end, endReason(f)))
	if nat {
		e.enqueue(natEventRecord(f, natSessionDelete, end))
	}
	// A scan may still read a snapshot made before the table applied the
	// DESTROY: a tombstone keeps it from exporting the flow again, as new,
	// with all its counters (or from sending another NAT create event).
	if had || nat || end-start >= e.cfg.ActiveTimeout.Milliseconds() {
		if had || len(e.flows) < e.maxFlows {
			e.flows[k] = exported{ended: true, at: end, seen: end}
		}
	} else {
		delete(e.flows, k)
	}
}

// scan exports the counters of the flows that have not been exported for
// an active timeout, sends the NAT create events of new NATed flows, and
// forgets the flows that left the table.
func (e *Exporter) scan() {
	s := e.latest()
	if s == nil {
		return
	}
	// Flows that ended before this snapshot was made have their records
	// in the channel: take them first.
	e.takeEnded()
	now := unixMs(s.Time)
	timeout := e.cfg.ActiveTimeout.Milliseconds()
	for _, f := range s.Flows {
		k := f.Key()
		st, had := e.flows[k]
		if had && st.ended {
			if f.Start.IsZero() || stampMs(f.Start) <= st.at {
				continue // a snapshot older than the flow's end
			}
			st, had = exported{}, false // another connection with the same key
		}
		if !had {
			natNew := e.cfg.NATEvents && isNAT44(f)
			if !f.Start.IsZero() && !natNew && (!f.HasCounters || now-stampMs(f.Start) < timeout) {
				continue // nothing to send or remember: its start says when it is due
			}
			if len(e.flows) >= e.maxFlows {
				// Its ended record will carry all its counters; only
				// the active-timeout records are lost.
				if !e.full {
					e.full = true
					e.log.Warn("too many long flows to follow: some are exported only when they end", "max", e.maxFlows)
				}
				continue
			}
			st.at = now
			if !f.Start.IsZero() {
				st.at = stampMs(f.Start)
			}
		}
		if e.cfg.NATEvents && !st.natCreated && isNAT44(f) {
			e.enqueue(natEventRecord(f, natSessionCreate, st.at))
			st.natCreated = true
		}
		if f.HasCounters && now-st.at >= timeout {
			orig, reply := sub(f.OrigCount, st.orig), sub(f.ReplyCount, st.reply)
			if orig != (conntrack.Counter{}) || reply != (conntrack.Counter{}) {
				e.enqueue(flowRecord(f, orig, reply, st.at, now, endActiveTimeout))
			}
			// An idle interval is skipped, not carried into the next
			// record's duration.
			st.orig, st.reply, st.at = f.OrigCount, f.ReplyCount, now
		}
		st.seen = now
		e.flows[k] = st
	}
	// A flow missing from the table is forgotten only after a while: a
	// dump can miss a deleted flow seconds before its DESTROY event comes,
	// whose record must still count from the last one.
	forget := e.forgetAfter.Milliseconds()
	for k, st := range e.flows {
		if now-st.seen > forget {
			delete(e.flows, k)
		}
	}
}

// enqueue hands r to every collector's sender. A full queue is waited on
// for at most enqueueWait: a burst (the flows a first dump finds gone, tens
// of thousands at once) outruns a sender for a moment, and waiting makes it
// wait in the table, which holds such records, instead of being lost; a
// collector that is down (TCP) costs no more than that per record, and the
// record is dropped and counted.
func (e *Exporter) enqueue(r record) {
	for _, s := range e.senders {
		select {
		case s.q <- r:
			continue
		default:
		}
		wait := time.NewTimer(enqueueWait)
		select {
		case s.q <- r:
		case <-wait.C:
			e.dropped.Add(1)
		}
		wait.Stop()
	}
}

// enqueueWait is how long a record waits for room in a sender's queue.
const enqueueWait = 100 * time.Millisecond
