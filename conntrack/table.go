package conntrack

import (
	"context"
	"fmt"
	"log/slog"
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
type entry struct {
	Flow
	gen      uint32    // last dump that saw the flow
	seenAt   time.Time // when OrigCount/ReplyCount were read
	hasRates bool
	// next chains flows whose kernel IDs collide. The ID is a 32-bit hash,
	// so among 50,000 flows a collision is likely (about 1 in 4 tables)
	// and among a million it is certain: the ID alone is no key.
	next *entry
}

// sameFlow reports whether e is the kernel entry f describes.
func (e *entry) sameFlow(f *Flow) bool {
	return e.Orig == f.Orig && e.Proto == f.Proto && e.Zone == f.Zone
}

// Table is the flow table. One goroutine (Run) owns it; every other
// goroutine reads immutable snapshots through Latest or Subscribe.
type Table struct {
	cfg     TableConfig
	log     *slog.Logger
	now     func() time.Time
	flows   map[uint32]*entry // by kernel ID, chained on collisions
	size    int               // number of entries
	gen     uint32
	filter  Filter
	health  Health
	events  chan Event
	filterC chan Filter
	resync  bool

	latest atomic.Pointer[Snapshot]

	mu         sync.Mutex
	subs       []chan *Snapshot
	endedSubs  []chan Ended
	endedDrops atomic.Uint64
}

// NewTable makes a table; call Run to fill it.
func NewTable(cfg TableConfig) *Table {
	t := &Table{
		cfg:     cfg,
		log:     cfg.Logger,
		now:     cfg.Now,
		flows:   map[uint32]*entry{},
		filter:  cfg.Filter,
		events:  make(chan Event, 8192),
		filterC: make(chan Filter, 1),
	}
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

// SubscribeEnded returns a channel of flows the kernel destroyed. Sends
// never block the table: when the buffer is full the record is dropped and
// counted (EndedDrops).
func (t *Table) SubscribeEnded(buffer int) <-chan Ended {
	ch := make(chan Ended, buffer)
	t.mu.Lock()
	t.endedSubs = append(t.endedSubs, ch)
	t.mu.Unlock()
	return ch
}

// EndedDrops counts ended-flow records dropped because a subscriber was
// slow.
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

	if err := t.refresh(); err != nil {
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
			return nil
		case err := <-listenErr:
			if err != nil {
				return err
			}
			return nil
		case f := <-t.filterC:
			t.filter = f
			t.publish()
		case ev := <-t.events:
			t.apply(ev)
			// Drain what is queued without a select per event.
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
		case <-tick.C:
			t.refreshAndPublish()
		}
	}
}

func (t *Table) refreshAndPublish() {
	if err := t.refresh(); err != nil {
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
	e := t.find(f)
	switch ev.Type {
	case EventNew, EventUpdate:
		if e == nil {
			// Events carry no counters: the flow is counted from zero
			// until the next dump reads them.
			acct, ts := t.accounting()
			now := t.now()
			e = &entry{Flow: *f, gen: t.gen, seenAt: now}
			e.HasCounters = acct
			if ts {
				e.Start = now
			}
			t.insert(e)
			return
		}
		e.Reply, e.Status, e.Timeout, e.Mark = f.Reply, f.Status, f.Timeout, f.Mark
		if !ev.noState {
			e.State = f.State
		}
		if !ev.noLabels {
			e.Labels = f.Labels
		}
	case EventDestroy:
		if e != nil {
			t.remove(e)
		}
		t.ended(ev, e)
	}
}

// ended hands a DESTROY to the ended-flow subscribers, with the final
// counters of the event and what the table knew (start time, rates).
func (t *Table) ended(ev Event, e *entry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.endedSubs) == 0 {
		return
	}
	rec := Ended{Flow: ev.Flow, Stop: ev.Stop}
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
	for _, ch := range t.endedSubs {
		select {
		case ch <- rec:
		default:
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
	interrupted, err := t.cfg.Kernel.Dump(func(f *Flow) {
		e := t.find(f)
		if e == nil {
			e = &entry{Flow: *f, gen: gen, seenAt: start}
			t.insert(e)
			// A flow that began since the last look has counted all its
			// bytes since its start: that gives a first rate at once.
			if age, ok := f.Age(start); ok && f.HasCounters && age > 0 && age <= t.cfg.Interval {
				e.OrigRate.advance(f.OrigCount.Bytes, f.OrigCount.Packets, age, true)
				e.ReplyRate.advance(f.ReplyCount.Bytes, f.ReplyCount.Packets, age, true)
				e.hasRates = true
			}
			return
		}
		dt := start.Sub(e.seenAt)
		if e.HasCounters && f.HasCounters && dt > 0 {
			e.OrigRate.advance(delta(f.OrigCount.Bytes, e.OrigCount.Bytes),
				delta(f.OrigCount.Packets, e.OrigCount.Packets), dt, !e.hasRates)
			e.ReplyRate.advance(delta(f.ReplyCount.Bytes, e.ReplyCount.Bytes),
				delta(f.ReplyCount.Packets, e.ReplyCount.Packets), dt, !e.hasRates)
			e.hasRates = true
		}
		origRate, replyRate, hasRates := e.OrigRate, e.ReplyRate, e.hasRates
		e.Flow = *f
		e.OrigRate, e.ReplyRate, e.hasRates = origRate, replyRate, hasRates
		e.gen, e.seenAt = gen, start
	})
	t.health.Refresh = t.now().Sub(start)
	if err != nil {
		return err
	}
	if !interrupted {
		t.sweep(gen)
	}
	if t.cfg.KernelFlows != nil {
		t.health.KernelFlows = t.cfg.KernelFlows()
	}
	t.health.Accounting, t.health.Timestamps = t.accounting()
	t.health.LastError = ""
	return nil
}

// publish makes a new snapshot of the filtered table and hands it out.
func (t *Table) publish() {
	now := t.now()
	s := &Snapshot{
		Time:       now,
		Interval:   t.cfg.Interval,
		TableFlows: t.size,
		Filter:     t.filter,
		Health:     t.health,
	}
	s.Flows = make([]Flow, 0, t.size)
	for _, head := range t.flows {
		for e := head; e != nil; e = e.next {
			if t.filter.Match(&e.Flow, now) {
				s.Flows = append(s.Flows, e.Flow)
			}
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

// find returns the entry of the kernel flow f, nil when the table has none.
func (t *Table) find(f *Flow) *entry {
	for e := t.flows[f.ID]; e != nil; e = e.next {
		if e.sameFlow(f) {
			return e
		}
	}
	return nil
}

// insert adds an entry that find did not find.
func (t *Table) insert(e *entry) {
	e.next = t.flows[e.ID]
	t.flows[e.ID] = e
	t.size++
}

// remove takes an entry out of the table.
func (t *Table) remove(e *entry) {
	head := t.flows[e.ID]
	if head == e {
		if e.next == nil {
			delete(t.flows, e.ID)
		} else {
			t.flows[e.ID] = e.next
		}
		t.size--
		return
	}
	for p := head; p != nil; p = p.next {
		if p.next == e {
			p.next = e.next
			t.size--
			return
		}
	}
}

// sweep removes the entries the dump of generation gen did not see: flows
// the kernel no longer has, whose DESTROY event was lost.
func (t *Table) sweep(gen uint32) {
	for id, head := range t.flows {
		var keep *entry // rebuilt chain, order does not matter
		for e := head; e != nil; {
			next := e.next
			if e.gen == gen {
				e.next = keep
				keep = e
			} else {
				t.size--
			}
			e = next
		}
		if keep == nil {
			delete(t.flows, id)
		} else {
			t.flows[id] = keep
		}
	}
}
