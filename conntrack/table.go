package conntrack

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Kernel is what the table needs from the kernel side; *Source implements
// it, tests fake it.
type Kernel interface {
	Dump(fn func(*Flow)) (interrupted bool, err error)
	Listen(ctx context.Context, out chan<- Event) error
}

// TableConfig configures a Table.
type TableConfig struct {
	Kernel Kernel
	// Interval is the counter refresh period; 0 means dump once and stop
	// refreshing (flowtop --once -t 0).
	Interval time.Duration
	Filter   Filter
	// KernelFlows returns nf_conntrack_count; nil when unknown.
	KernelFlows func() int
	// Accounting reports whether nf_conntrack_acct and _timestamp are on.
	Accounting func() (acct, timestamps bool)
	Logger     *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// entry is a flow in the table plus what rate maths needs.
//
// The flow itself is a record shared with the snapshots: once a snapshot
// holds it, it is never modified; a change makes a new record (copy on
// write). Flows that do not change between refreshes, most of a big table,
// cost a snapshot one pointer instead of a copy, and no allocation.
//
// 24 bytes, in this order: a 100k-flow table's entries are 2.7 MB.
type entry struct {
	flow   *Flow
	seenAt Stamp // when the record's counters were read
	// next is the position of the next flow with the same kernel ID, -1
	// for none. The ID is a 32-bit hash, so among 50,000 flows a
	// collision is likely (about 1 in 4 tables) and among a million it is
	// certain: the ID alone is no key.
	next int32
	// gen is the last dump that saw the flow. Only equality with the
	// current dump's counts (sweep), and every completed dump sweeps
	// what it did not see, so 16 bits that wrap are enough.
	gen uint16
	// fresh is set while the record is in no published snapshot: it may
	// still be changed in place.
	fresh    bool
	hasRates bool
}

// mutable returns the entry's record, first copying it if a snapshot may
// hold it.
func (t *Table) mutable(e *entry) *Flow {
	if !e.fresh {
		r := t.newRecord()
		*r = *e.flow
		e.flow, e.fresh = r, true
	}
	return e.flow
}

// newEntry makes the entry of a flow the table has not seen.
func (t *Table) newEntry(f *Flow, gen uint16, seen Stamp) entry {
	r := t.newRecord()
	*r = *f
	r.Seen = seen
	return entry{flow: r, fresh: true, gen: gen, seenAt: seen}
}

// The kernel's timeout of a flow in a dump is read when its message
// arrives, not at the dump's start: a million-flow dump takes seconds,
// over which idle timeouts run down. Rates use the dump's start for all
// flows (seenAt) so that every flow steps by the same time.

// recordsPerSlab is how many flow records are allocated at once. One
// allocation per record cost a 100k-flow first dump 110 ms of its 250;
// slabs of 256 (48 KiB) cut that while a slab kept alive by one long-lived
// record pins little memory.
const recordsPerSlab = 256

// newRecord returns a zeroed record from the current slab.
func (t *Table) newRecord() *Flow {
	if len(t.slab) == cap(t.slab) {
		t.slab = make([]Flow, 0, recordsPerSlab)
		prefault(t.slab)
	}
	t.slab = t.slab[:len(t.slab)+1]
	return &t.slab[len(t.slab)-1]
}

// Table is the flow table. One goroutine (Run) owns it; every other
// goroutine reads immutable snapshots through Latest or Subscribe.
type Table struct {
	cfg TableConfig
	log *slog.Logger
	now func() time.Time
	// entries holds the flows densely, so that a refresh or a snapshot
	// walks memory in order; index finds the first entry of a kernel ID.
	entries []entry
	index   map[uint32]int32
	matched []bool // publish's scratch: which entries pass the filter
	slab    []Flow // where new records come from (newRecord)
	// lastRefresh is when the last full refresh began (wall clock, for
	// the adaptive refresh interval).
	lastRefresh time.Time
	gen         uint16 // of the last full dump; see entry.gen
	filter      Filter
	health      Health
	events      chan Event
	filterC     chan Filter
	resync      bool

	// vanishing holds the flows the last sweeps removed while they wait
	// for their DESTROY event (see vanished.go); vanishTimer fires when
	// the first is due, after vanishGrace (a field, for tests).
	vanishing   vanishList
	vanishTimer *time.Timer
	// vanishedOut holds vanished records waiting for room in the
	// subscribers' buffers (flushVanished).
	vanishedOut []Ended
	vanishGrace time.Duration

	// hot are the busiest flows as of the last full refresh, watched the
	// flows consumers asked for; both are read every interval between
	// full refreshes of a huge table (refreshHot).
	hot, watched, ask []*Flow
	hotHeap           TopK
	watchC            chan []*Flow

	latest atomic.Pointer[Snapshot]

	mu         sync.Mutex
	subs       []chan *Snapshot
	endedSubs  []*endedSub
	endedDrops atomic.Uint64
}

// endedSub is one ended-flow subscription and the records it lost.
type endedSub struct {
	ch    chan Ended
	drops atomic.Uint64
}

// eventQueue is how many decoded events may wait for the table. It only
// smooths the hand-over: a burst waits in the event socket's buffer
// (64 MiB of kernel memory), not here, where each event is a 260-byte
// Event of flowtop's heap (8192 of them were 2 MB of its RSS).
const eventQueue = 1024

// NewTable makes a table; call Run to fill it.
func NewTable(cfg TableConfig) *Table {
	t := &Table{
		cfg:     cfg,
		log:     cfg.Logger,
		now:     cfg.Now,
		filter:  cfg.Filter,
		events:  make(chan Event, eventQueue),
		filterC: make(chan Filter, 1),
		watchC:  make(chan []*Flow, 1),

		vanishTimer: time.NewTimer(time.Hour),
		vanishGrace: vanishGrace,
	}
	t.vanishTimer.Stop()
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	if t.now == nil {
		t.now = time.Now
	}
	t.health.KernelFlows = -1
	t.health.RefreshEvery = cfg.Interval
	return t
}

// Latest returns the newest snapshot, nil before the first dump ends.
func (t *Table) Latest() *Snapshot { return t.latest.Load() }

// Subscribe returns a channel that receives each new snapshot. A slow
// reader misses intermediate snapshots, never the newest one. cancel
// stops the subscription.
func (t *Table) Subscribe() (snapshots <-chan *Snapshot, cancel func()) {
	ch := make(chan *Snapshot, 1)
	t.mu.Lock()
	t.subs = append(t.subs, ch)
	t.mu.Unlock()
	return ch, func() {
		t.mu.Lock()
		defer t.mu.Unlock()
		for i, c := range t.subs {
			if c == ch {
				t.subs = append(t.subs[:i], t.subs[i+1:]...)
				break
			}
		}
	}
}

// SubscribeEnded returns a channel of flows that ended: those the kernel
// destroyed and, some seconds late, those that vanished without a DESTROY
// event (Ended.Reason). Sends never block the table: when the buffer is
// full the record is dropped and counted (EndedDrops).
func (t *Table) SubscribeEnded(buffer int) <-chan Ended {
	ch, _ := t.SubscribeEndedCounted(buffer)
	return ch
}

// SubscribeEndedCounted is SubscribeEnded with the subscription's own
// count of the records dropped because its reader was slow: each
// consumer can report its losses, not only the table's sum.
func (t *Table) SubscribeEndedCounted(buffer int) (ended <-chan Ended, dropped func() uint64) {
	sub := &endedSub{ch: make(chan Ended, buffer)}
	t.mu.Lock()
	t.endedSubs = append(t.endedSubs, sub)
	t.mu.Unlock()
	return sub.ch, sub.drops.Load
}

// EndedDrops counts ended-flow records dropped because a subscriber was
// slow, over all subscriptions.
func (t *Table) EndedDrops() uint64 { return t.endedDrops.Load() }

// SetFilter replaces the table filter; the next snapshot (made at once)
// uses it. Safe from any goroutine.
func (t *Table) SetFilter(f Filter) {
	for {
		select {
		case t.filterC <- f:
			return
		default:
			select {
			case <-t.filterC:
			default:
			}
		}
	}
}

// Run dumps the table, then applies events and refreshes counters every
// Interval until ctx ends. It returns the first error that stops the
// kernel side (a failed initial dump, a dead event socket).
func (t *Table) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	listenErr := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Add(1)
	// Listen before the first dump so that no event falls between them;
	// events that arrive during a dump wait in the channel and are applied
	// after it.
	go func() {
		defer wg.Done()
		listenErr <- t.cfg.Kernel.Listen(ctx, t.events)
	}()
	defer wg.Wait()
	defer cancel()

	if err := t.adaptiveRefresh(); err != nil {
		return fmt.Errorf("initial conntrack dump: %w", err)
	}
	t.publish()
	if t.cfg.Interval <= 0 {
		return nil
	}
	tick := time.NewTicker(t.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			// Apply what is already queued, so that the last DESTROY
			// records still reach the ended-flow subscribers, and report
			// the flows still waiting for theirs: no more will come.
			for n := len(t.events); n > 0; n-- {
				t.apply(<-t.events)
			}
			t.reportVanished(true)
			return nil
		case err := <-listenErr:
			if err != nil {
				return err
			}
			return nil
		case f := <-t.filterC:
			t.filter = f
			t.publish()
		case w := <-t.watchC:
			t.watched = w
		case ev := <-t.events:
			t.apply(ev)
			t.applyQueued()
		case <-t.vanishTimer.C:
			// A DESTROY already queued comes first.
			t.applyQueued()
			t.reportVanished(false)
		case now := <-tick.C:
			if now.Sub(t.lastRefresh) >= t.health.RefreshEvery-t.cfg.Interval/2 {
				t.refreshAndPublish()
			} else {
				// Between full refreshes of a huge table the snapshot still
				// follows the events (new and ended flows), and the busiest
				// and watched flows are read one by one.
				t.refreshHot()
				t.publish()
			}
		}
	}
}

// applyQueued applies the events queued, without a select per event, and
// resynchronises after an overrun among them.
func (t *Table) applyQueued() {
	for n := len(t.events); n > 0; n-- {
		t.apply(<-t.events)
	}
	if t.resync {
		t.resync = false
		t.health.Resyncs++
		t.log.Warn("conntrack event overrun: resynchronising with a full dump",
			"overruns", t.health.Overruns)
		t.refreshAndPublish()
	}
}

// refreshBudget is the share of the time a full refresh may take. A table
// whose dump takes longer (a million flows take seconds) is refreshed less
// often than the interval asks, and Health.RefreshEvery says how often.
const refreshBudget = 4 // at most 1/4 of the time

// adaptiveRefresh is a full refresh that then sets the interval until
// the next one from what it cost.
func (t *Table) adaptiveRefresh() error {
	t.lastRefresh = time.Now()
	err := t.refresh()
	t.health.Refreshes++
	t.health.RefreshEvery = t.cfg.Interval
	if floor := t.health.Refresh * refreshBudget; floor > t.cfg.Interval && t.cfg.Interval > 0 {
		// Whole intervals, so that refreshes stay on the ticks.
		n := (floor + t.cfg.Interval - 1) / t.cfg.Interval
		t.health.RefreshEvery = n * t.cfg.Interval
	}
	t.pickHot()
	return err
}

func (t *Table) refreshAndPublish() {
	if err := t.adaptiveRefresh(); err != nil {
		t.health.LastError = err.Error()
		t.log.Error("conntrack refresh failed", "err", err)
	}
	t.publish()
}

// apply applies one event to the table.
func (t *Table) apply(ev Event) {
	if ev.Type == EventOverrun {
		t.health.Overruns++
		t.resync = true
		return
	}
	t.health.Events++
	f := &ev.Flow
	i, head := t.lookup(f)
	switch ev.Type {
	case EventNew, EventUpdate:
		now := StampOf(t.now())
		if i < 0 {
			// Events carry no counters: the flow is counted from zero
			// until the next dump reads them.
			acct, ts := t.accounting()
			e := t.newEntry(f, t.gen, now)
			e.flow.HasCounters = acct
			if ts {
				e.flow.Start = now
			}
			t.insert(e, head)
			return
		}
		e := &t.entries[i]
		r := t.mutable(e)
		r.Reply, r.Status, r.Timeout, r.Seen, r.Mark = f.Reply, f.Status, f.Timeout, now, f.Mark
		if !ev.NoState {
			r.State = f.State
		}
		if !ev.NoLabels {
			r.Labels = f.Labels
		}
	case EventDestroy:
		if i < 0 {
			// A flow a dump no longer found may wait for this event.
			t.ended(ev, t.vanishing.take(f, 0))
			return
		}
		t.ended(ev, t.entries[i].flow)
		t.removeAt(i)
	}
}

// ended hands a DESTROY to the ended-flow subscribers, with the final
// counters of the event and what the table knew (start time, rates).
func (t *Table) ended(ev Event, e *Flow) {
	if !t.hasEndedSubs() {
		return
	}
	rec := Ended{Flow: ev.Flow, Stop: ev.Stop, Reason: EndDestroyed}
	if rec.Stop.IsZero() {
		rec.Stop = t.now()
	}
	if e != nil {
		if rec.Start.IsZero() {
			rec.Start = e.Start
		}
		rec.OrigRate, rec.ReplyRate = e.OrigRate, e.ReplyRate
		if !rec.HasCounters && e.HasCounters {
			rec.OrigCount, rec.ReplyCount, rec.HasCounters = e.OrigCount, e.ReplyCount, true
		}
	}
	t.sendEnded(&rec)
}

// vanish makes a flow the sweep removed wait for its DESTROY event; stop
// is when the dump that missed it ended.
func (t *Table) vanish(f *Flow, stop time.Time) {
	due := time.Now().Add(t.vanishGrace)
	if len(t.vanishing.list) == 0 {
		t.vanishTimer.Reset(t.vanishGrace)
	}
	t.vanishing.add(f, stop, due)
}

// reportVanished hands the flows whose wait for a DESTROY is over (all of
// them when all is set) to the ended-flow subscribers as vanished, with the
// last counters the table read.
func (t *Table) reportVanished(all bool) {
	subs := t.hasEndedSubs()
	now := time.Now()
	next := t.vanishing.expire(now, all, func(w *vanishing) {
		t.health.Vanished++
		if !subs {
			return
		}
		rec := Ended{Flow: *w.flow, Stop: w.stop, Reason: EndVanished}
		if len(t.vanishedOut) < maxVanishedBacklog {
			t.vanishedOut = append(t.vanishedOut, rec)
		} else {
			t.sendEnded(&rec) // counted as dropped where there is no room
		}
	})
	if t.flushVanished(all) {
		if retry := now.Add(vanishRetry); next.IsZero() || next.After(retry) {
			next = retry
		}
	}
	if !next.IsZero() {
		t.vanishTimer.Reset(max(next.Sub(now), 0))
	}
}

// maxVanishedBacklog bounds the vanished records waiting in the table for
// room in the subscribers' buffers; vanishRetry is how soon it tries again.
const (
	maxVanishedBacklog = 1 << 18
	vanishRetry        = 20 * time.Millisecond
)

// flushVanished hands the waiting vanished records to the subscribers
// while every one of them has room, and reports whether some still wait.
// Vanished flows come in bursts (the first dumps after a start find the
// flows made before it gone without a DESTROY, as does a resync after an
// overrun): tens of thousands at once would overflow any subscriber's
// buffer, so they wait here, in order, instead of being dropped. DESTROY
// records still go straight out. With all (the table stops), what does not
// fit is dropped and counted. Only the owner goroutine sends, so a buffer
// with room takes the record.
func (t *Table) flushVanished(all bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	sent := 0
	for ; sent < len(t.vanishedOut); sent++ {
		if !all && !t.roomLocked() {
			break
		}
		t.sendEndedLocked(&t.vanishedOut[sent])
	}
	n := copy(t.vanishedOut, t.vanishedOut[sent:])
	clear(t.vanishedOut[n:])
	t.vanishedOut = t.vanishedOut[:n]
	if n == 0 && cap(t.vanishedOut) > 1024 {
		t.vanishedOut = nil // a burst's backlog is not kept
	}
	return n > 0
}

// roomLocked reports whether every ended-flow subscriber can take a record
// now. The caller holds t.mu.
func (t *Table) roomLocked() bool {
	for _, sub := range t.endedSubs {
		if len(sub.ch) == cap(sub.ch) {
			return false
		}
	}
	return true
}

func (t *Table) hasEndedSubs() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.endedSubs) > 0
}

// sendEnded hands rec to every ended-flow subscriber, without blocking.
func (t *Table) sendEnded(rec *Ended) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sendEndedLocked(rec)
}

// sendEndedLocked is sendEnded with t.mu held.
func (t *Table) sendEndedLocked(rec *Ended) {
	for _, sub := range t.endedSubs {
		select {
		case sub.ch <- *rec:
		default:
			sub.drops.Add(1)
			t.endedDrops.Add(1)
		}
	}
}

func (t *Table) accounting() (acct, ts bool) {
	if t.cfg.Accounting == nil {
		return true, true
	}
	return t.cfg.Accounting()
}

// refresh reads the whole table from the kernel, updating counters and
// rates, adding flows the events missed and removing flows the kernel no
// longer has.
func (t *Table) refresh() error {
	start := t.now()
	t.gen++
	gen := t.gen
	alphas := newAlphas()
	t.reserve()
	now := StampOf(start)
	read, reads := now, 0
	// The kernel dumps its hash table in the same order every time, and
	// the entries are in the order of the first dump: the flow after the
	// last one found is most likely the entry after it. Checking there
	// first spares a random walk through the ID index and the entries.
	var cursor int32
	interrupted, err := t.cfg.Kernel.Dump(func(f *Flow) {
		// When the counters were read, to the millisecond: the clock is
		// read every 64 flows (a 100k-flow dump reads 64 in about 0.1 ms).
		if reads++; reads%64 == 0 {
			read = StampOf(t.now())
		}
		i, head := cursor, int32(-1)
		if int(i) >= len(t.entries) || t.entries[i].flow.ID != f.ID || !t.entries[i].flow.SameConnection(f) {
			i, head = t.lookup(f)
		}
		if i >= 0 {
			cursor = i + 1
		}
		if i < 0 {
			if len(t.vanishing.list) > 0 && !f.Start.IsZero() {
				// The same kernel entry, missed by an earlier dump: it
				// never ended.
				t.vanishing.take(f, f.Start)
			}
			e := t.insert(t.newEntry(f, gen, read), head)
			e.seenAt = now
			// A flow that began since the last look has counted all its
			// bytes since its start: that gives a first rate at once.
			if age, ok := f.Age(start); ok && f.HasCounters && age > 0 && age <= t.cfg.Interval {
				e.flow.OrigRate.advance(f.OrigCount.Bytes, f.OrigCount.Packets, age, true)
				e.flow.ReplyRate.advance(f.ReplyCount.Bytes, f.ReplyCount.Packets, age, true)
				e.hasRates = true
			}
			return
		}
		e := &t.entries[i]
		e.gen = gen
		t.update(e, f, now, read, alphas)
	})
	end := t.now()
	t.health.Refresh = end.Sub(start)
	if err != nil {
		return err
	}
	if !interrupted {
		t.sweep(gen, end)
	}
	if t.cfg.KernelFlows != nil {
		t.health.KernelFlows = t.cfg.KernelFlows()
	}
	t.health.Accounting, t.health.Timestamps = t.accounting()
	t.health.LastError = ""
	return nil
}

// update applies what the kernel now says of a known flow (from a dump or
// a GET) to its entry: counters, rates over the time since the entry was
// last read (now), state. read is when f was read.
func (t *Table) update(e *entry, f *Flow, now, read Stamp, alphas *alphaCache) {
	r := e.flow
	origRate, replyRate := r.OrigRate, r.ReplyRate
	dt := time.Duration(int64(now) - int64(e.seenAt))
	if r.HasCounters && f.HasCounters && dt > 0 {
		a := alphas.at(dt)
		origRate.step(delta(f.OrigCount.Bytes, r.OrigCount.Bytes),
			delta(f.OrigCount.Packets, r.OrigCount.Packets), dt, a, !e.hasRates)
		replyRate.step(delta(f.ReplyCount.Bytes, r.ReplyCount.Bytes),
			delta(f.ReplyCount.Packets, r.ReplyCount.Packets), dt, a, !e.hasRates)
		e.hasRates = true
	}
	e.seenAt = now
	if origRate == r.OrigRate && replyRate == r.ReplyRate && unchanged(r, f, read) {
		return // an idle flow: the snapshots keep sharing its record
	}
	m := t.mutable(e)
	*m = *f
	m.Seen, m.OrigRate, m.ReplyRate = read, origRate, replyRate
}

// Getter is a Kernel that can also read single flows (*Source can).
type Getter interface {
	Get(flows []*Flow, fn func(*Flow)) error
}

// hotFlows is how many of the busiest flows are read every interval while
// the full refresh of a huge table runs less often. A GET costs the
// kernel a hash lookup: 1024 of them take a few milliseconds.
const hotFlows = 1024

// pickHot chooses, after a full refresh, the flows to read every interval
// until the next one: the busiest by rate (what tops the default sort and
// the screen; by bytes after the first dump, when no flow has a rate yet).
// The flows consumers watch (Watch: the rows on screen) are read too.
func (t *Table) pickHot() {
	t.hot = t.hot[:0]
	if t.health.RefreshEvery <= t.cfg.Interval {
		// Every flow is refreshed every interval anyway.
		t.health.HotFlows, t.health.HotRefresh = 0, 0
		return
	}
	h := &t.hotHeap
	h.Reset(hotFlows)
	// After the first dump no flow has a rate yet (it takes two reads):
	// the biggest flows so far are the best guess at the busy ones.
	byBytes := t.health.Refreshes <= 1
	for i := range t.entries {
		r := t.entries[i].flow
		m := r.TotalRate()
		if byBytes {
			m = float64(r.TotalBytes())
		}
		if m > 0 {
			h.Offer(Ranked{m, r})
		}
	}
	t.hot = AppendFlows(t.hot, h.Items)
}

// refreshHot reads the hot and watched flows (between two full refreshes
// of a huge table).
func (t *Table) refreshHot() {
	g, ok := t.cfg.Kernel.(Getter)
	if !ok || len(t.hot)+len(t.watched) == 0 {
		t.health.HotFlows = 0
		return
	}
	start := t.now()
	now := StampOf(start)
	alphas := newAlphas()
	ask := append(append(t.ask[:0], t.hot...), t.watched...)
	err := g.Get(ask, func(f *Flow) {
		if i, _ := t.lookup(f); i >= 0 {
			t.update(&t.entries[i], f, now, now, alphas)
		}
	})
	t.health.HotFlows = len(ask)
	clear(ask) // keep no record alive for the next tick's list
	t.ask = ask[:0]
	t.health.HotRefresh = t.now().Sub(start)
	if err != nil {
		t.health.LastError = err.Error()
		t.log.Warn("reading the busiest flows failed", "err", err)
	}
}

// Watch asks the table to keep the given flows fresh every interval even
// while a huge table is refreshed in full less often (the screen's rows).
// Only their tuples are used; at most hotFlows are kept. Safe from any
// goroutine.
func (t *Table) Watch(flows []*Flow) {
	w := slices.Clone(flows[:min(len(flows), hotFlows)])
	for {
		select {
		case t.watchC <- w:
			return
		default:
			select {
			case <-t.watchC:
			default:
			}
		}
	}
}

// publish makes a new snapshot of the filtered table and hands it out.
func (t *Table) publish() {
	now := t.now()
	s := &Snapshot{
		Time:       now,
		Interval:   t.cfg.Interval,
		TableFlows: len(t.entries),
		Filter:     t.filter,
		Health:     t.health,
	}
	// One pass decides, a second collects: the snapshot is allocated at its
	// exact size, whatever share of the table the filter keeps.
	if cap(t.matched) < len(t.entries) {
		t.matched = make([]bool, len(t.entries), len(t.entries)+len(t.entries)/4)
	}
	matched := t.matched[:len(t.entries)]
	n := 0
	for i := range t.entries {
		matched[i] = t.filter.Match(t.entries[i].flow, now)
		if matched[i] {
			n++
		}
	}
	s.Flows = make([]*Flow, n)
	prefault(s.Flows)
	j := 0
	for i := range t.entries {
		e := &t.entries[i]
		e.fresh = false // from now on a snapshot may hold it
		if matched[i] {
			s.Flows[j] = e.flow
			j++
		}
	}
	t.latest.Store(s)
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ch := range t.subs {
		select {
		case ch <- s:
		default:
			// Replace the unread older snapshot with this one.
			select {
			case <-ch:
			default:
			}
			select {
			case ch <- s:
			default:
			}
		}
	}
}

// unchanged reports whether the dump's f says nothing new about the
// record r: same counters, state and attributes, and a timeout that only
// ran down with time (an idle flow's expiry stays put).
func unchanged(r, f *Flow, now Stamp) bool {
	if r.OrigCount != f.OrigCount || r.ReplyCount != f.ReplyCount || r.HasCounters != f.HasCounters ||
		r.State != f.State || r.Status != f.Status || r.Mark != f.Mark || r.Labels != f.Labels ||
		r.Reply != f.Reply || r.Start != f.Start {
		return false
	}
	expires := int64(r.Seen) + int64(r.Timeout)*1e9
	drift := expires - (int64(now) + int64(f.Timeout)*1e9)
	return drift <= 1e9 && drift >= -1e9
}

// reserve sizes an empty table for the flows the kernel holds, so that the
// first dump of a big table does not grow the slice and the index step by
// step (each growth copies everything and leaves garbage behind).
func (t *Table) reserve() {
	if len(t.entries) > 0 || t.cfg.KernelFlows == nil {
		return
	}
	n := t.cfg.KernelFlows()
	if n <= 0 {
		return
	}
	// The index is sized for the flows there are (a map grows a part at
	// a time when more come); the entries have room for flows created
	// during the dump, as a slice grows by a copy of all.
	t.index = make(map[uint32]int32, n)
	n += n / 8
	t.entries = make([]entry, 0, n)
	prefaultHuge(t.entries)
	if t.cfg.Interval <= 0 {
		// Dumped once, never refreshed (--once -t 0): the records may
		// share one allocation, since none is freed before exit. One
		// slab instead of one per 256 records is 11 ms less for 100k.
		t.slab = make([]Flow, 0, n)
		prefaultHuge(t.slab)
	}
}

// lookup returns the position of the kernel flow f, -1 when the table has
// none, and the first position with f's kernel ID (-1 for none), which
// insert takes so that a new flow costs one map access less.
func (t *Table) lookup(f *Flow) (i, head int32) {
	head, ok := t.index[f.ID]
	if !ok {
		return -1, -1
	}
	for i := head; i >= 0; i = t.entries[i].next {
		if t.entries[i].flow.SameConnection(f) {
			return i, head
		}
	}
	return -1, head
}

// insert adds an entry that lookup did not find, in front of head (what
// lookup returned), and returns it (valid until the next insert or
// remove).
func (t *Table) insert(e entry, head int32) *entry {
	e.next = head
	t.entries = append(t.entries, e)
	i := int32(len(t.entries) - 1)
	if t.index == nil {
		t.index = make(map[uint32]int32)
	}
	t.index[e.flow.ID] = i
	return &t.entries[i]
}

// removeAt takes the entry at position i out of the table. The last entry
// moves into its place.
func (t *Table) removeAt(i int32) {
	t.unlink(i)
	last := int32(len(t.entries) - 1)
	if i != last {
		t.redirect(last, i) // the last entry moves to i
		t.entries[i] = t.entries[last]
	}
	t.entries[last] = entry{} // drop what it referenced
	t.entries = t.entries[:last]
}

// unlink takes position i out of its ID chain.
func (t *Table) unlink(i int32) { t.redirect(i, t.entries[i].next) }

// redirect makes whatever points at position from in its ID chain (the
// index or the entry before it) point at to; to < 0 ends the chain there,
// and an ID left without entries leaves the index.
func (t *Table) redirect(from, to int32) {
	id := t.entries[from].flow.ID
	head := t.index[id]
	if head == from {
		if to < 0 {
			delete(t.index, id)
		} else {
			t.index[id] = to
		}
		return
	}
	for p := head; p >= 0; p = t.entries[p].next {
		if t.entries[p].next == from {
			t.entries[p].next = to
			return
		}
	}
}

// sweep removes the entries the dump of generation gen, which ended at
// end, did not see: flows the kernel no longer has, whose DESTROY event
// was lost or is still on its way (they wait for it: vanish).
func (t *Table) sweep(gen uint16, end time.Time) {
	// Downwards, so that the entry moved into a freed place has already
	// been looked at.
	for i := int32(len(t.entries) - 1); i >= 0; i-- {
		if t.entries[i].gen != gen {
			t.vanish(t.entries[i].flow, end)
			t.removeAt(i)
		}
	}
}
