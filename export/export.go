package export

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
	"github.com/flowtop/flowtop/report"
)

// Exporter hands flowtop's flows on. It reads the table only through its
// Env, never blocking it.
type Exporter interface {
	// Name is the exporter's key in health.exporters ("mqtt", "file").
	Name() string
	// Run exports until ctx ends, then flushes what it holds (briefly:
	// shutdown waits for it) and returns. It is called once.
	Run(ctx context.Context) error
	// Health returns the exporter's counters; safe for concurrent use.
	Health() report.ExporterHealth
}

// Env is what an exporter is made with.
type Env struct {
	// Latest returns the newest snapshot, nil before the first; it never
	// blocks.
	Latest func() *conntrack.Snapshot
	// Ended is the exporter's own ended-flow subscription, nil when its
	// Spec asks for none. The table drops (and counts) what does not fit
	// its buffer, so the exporter should always drain it.
	Ended <-chan conntrack.Ended
	// Names enriches flows (services, reverse DNS, GeoIP, processes).
	Names enrich.Namer
	// Health, when set, completes the health of a document the exporter
	// publishes with what the snapshot does not hold (every exporter's
	// counters, the lookups' work), so that its documents carry the same
	// health as flowtop's own (--once, --write). Safe for concurrent use.
	Health func(*report.Health)
	Logger *slog.Logger
	// Host and Netns go into the documents.
	Host, Netns string
}

// Spec is one exporter flowtop may run.
type Spec struct {
	// On tells whether the command line asks for the exporter.
	On bool
	// Flag, when set, is the flag that asks for it: it begins the
	// constructor's error ("--mqtt: ...").
	Flag string
	// Ended is the buffer of its ended-flow subscription, 0 for none.
	Ended int
	// New makes the exporter; its error ends flowtop.
	New func(Env) (Exporter, error)
}

// Table is what the exporters read of the flow table; *conntrack.Table
// has it.
type Table interface {
	Latest() *conntrack.Snapshot
	SubscribeEndedCounted(buffer int) (ended <-chan conntrack.Ended, dropped func() uint64)
}

// Set is the exporters flowtop runs. Its methods are safe for concurrent
// use; a nil *Set has no exporters.
type Set struct {
	table  Table
	wanted []member // the specs that are on, with their subscriptions

	mu      sync.Mutex
	running []member
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

// member is one exporter of the set and its ended-flow subscription.
type member struct {
	spec    Spec
	ended   <-chan conntrack.Ended
	dropped func() uint64 // nil without a subscription
	exp     Exporter
}

// Subscribe opens the ended-flow subscriptions of the specs that are on.
// Call it before the table runs: what ends before a subscription exists
// never reaches it.
func Subscribe(t Table, specs []Spec) *Set {
	s := &Set{table: t}
	for _, sp := range specs {
		if !sp.On {
			continue
		}
		m := member{spec: sp}
		if sp.Ended > 0 {
			m.ended, m.dropped = t.SubscribeEndedCounted(sp.Ended)
		}
		s.wanted = append(s.wanted, m)
	}
	return s
}

// Start makes the exporters in the order of their specs, then runs each
// in a goroutine of its own until ctx ends or Stop. A constructor's error
// is returned with nothing started, after the Flag of its spec. env.Latest
// and env.Ended are the set's own; the rest is handed to every exporter.
func (s *Set) Start(ctx context.Context, env Env) error {
	if env.Logger == nil {
		env.Logger = slog.New(slog.DiscardHandler)
	}
	env.Latest = s.table.Latest
	made := make([]member, 0, len(s.wanted))
	for _, m := range s.wanted {
		e := env
		e.Ended = m.ended
		exp, err := m.spec.New(e)
		if err != nil {
			if m.spec.Flag != "" {
				err = fmt.Errorf("%s: %w", m.spec.Flag, err)
			}
			return err
		}
		m.exp = exp
		made = append(made, m)
	}
	ctx, cancel := context.WithCancel(ctx)
	s.mu.Lock()
	s.running, s.cancel = made, cancel
	s.mu.Unlock()
	for _, m := range made {
		s.wg.Go(func() {
			if err := m.exp.Run(ctx); err != nil {
				env.Logger.Error(m.exp.Name()+" exporter stopped", "err", err)
			}
		})
	}
	return nil
}

// Stop ends the exporters and waits until each has flushed and returned.
func (s *Set) Stop() {
	if s == nil {
		return
	}
	s.mu.Lock()
	cancel := s.cancel
	s.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	s.wg.Wait()
}

// members returns the running exporters.
func (s *Set) members() []member {
	if s == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running
}

// Health returns each running exporter's counters by name, with the
// records its ended-flow subscription lost; nil when none runs.
func (s *Set) Health() map[string]report.ExporterHealth {
	ms := s.members()
	if len(ms) == 0 {
		return nil
	}
	h := make(map[string]report.ExporterHealth, len(ms))
	for _, m := range ms {
		eh := m.exp.Health()
		if m.dropped != nil {
			n := m.dropped()
			eh.EndedDropped = &n
		}
		h[m.exp.Name()] = eh
	}
	return h
}

// Status is the screen's line about the exporters that keep a connection
// (MQTT): its state and counters, "" when none does.
func (s *Set) Status() string {
	var parts []string
	for _, m := range s.members() {
		h := m.exp.Health()
		if h.Connected == nil {
			continue
		}
		state := "disconnected"
		if *h.Connected {
			state = "connected"
		}
		parts = append(parts, fmt.Sprintf("%s %s: %d sent, %d dropped, %d errors",
			m.exp.Name(), state, h.Published, h.Dropped, h.Errors))
	}
	return strings.Join(parts, "; ")
}
