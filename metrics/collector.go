package metrics

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/report"
	"github.com/flowtop/flowtop/traffic"
)

// KernelStats reads the kernel's conntrack statistics;
// *kernel.StatsReader implements it.
type KernelStats interface {
	Read() (conntrack.KernelStats, error)
}

// Config configures a Collector. Only Latest is required.
type Config struct {
	// Latest returns the newest snapshot (nil before the first dump).
	Latest func() *conntrack.Snapshot
	// Ended is the collector's own ended-flow subscription; nil counts
	// flows only while snapshots list them.
	Ended <-chan conntrack.Ended
	// EndedDrops counts ended-flow records the table dropped for slow
	// subscribers; nil when unknown.
	EndedDrops func() uint64
	// Exporters returns the exporters' counters by name; nil for none.
	Exporters func() map[string]report.ExporterHealth
	// Kernel reads the kernel's conntrack statistics; nil for none.
	Kernel KernelStats
	// LocalNets are the networks whose hosts are counted; nil means
	// traffic.DefaultLocalNets.
	LocalNets []netip.Prefix
	// MaxHosts bounds the hosts with series of their own; 0 means
	// traffic.DefaultMaxHosts.
	MaxHosts int
	// Version is flowtop's version; GoVersion defaults to runtime.Version.
	Version, GoVersion string
	// FoldEvery is how often the latest snapshot is folded into the host
	// counters between scrapes (default 10 s), which bounds what is
	// remembered of ended flows and what a lost DESTROY can cost.
	FoldEvery time.Duration
	Logger    *slog.Logger
}

// Collector gathers the metrics. Run must be running for scrapes to be
// answered.
type Collector struct {
	cfg  Config
	log  *slog.Logger
	acct *traffic.Accounting
	// classes counts the flows of the last snapshot folded in acct.
	classes    classCounter
	countClass func(*conntrack.Flow) // classes.add, made once
	reqs       chan chan *view
	done       chan struct{} // closed when Run returns

	// Scrapes answered and failed, for the exporter's health.
	scrapes, scrapeErrs atomic.Uint64

	// Kernel statistics errors are logged when they change, not on every
	// scrape.
	kernelMu  sync.Mutex
	kernelErr string
}

// view is what one scrape shows of the accounting: a copy, owned by the
// scrape.
type view struct {
	snap     *conntrack.Snapshot
	classes  []classCount
	hosts    []traffic.Host
	tracked  int
	overflow uint64
}

// ErrStopped is returned by a scrape once the collector has stopped.
var ErrStopped = errors.New("metrics collector stopped")

// New makes a Collector.
func New(cfg Config) *Collector {
	if cfg.GoVersion == "" {
		cfg.GoVersion = runtime.Version()
	}
	if cfg.FoldEvery <= 0 {
		cfg.FoldEvery = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Collector{
		cfg:  cfg,
		log:  log,
		acct: traffic.New(cfg.LocalNets, cfg.MaxHosts),
		reqs: make(chan chan *view),
		done: make(chan struct{}),
	}
	c.countClass = c.classes.add
	return c
}

// Stats counts the scrapes of /metrics answered (Published) and those that
// could not be (Errors: the collector stopped or the request was gone),
// flowtop's health.exporters.metrics. Refused credentials count in
// neither. It is safe for concurrent use.
func (c *Collector) Stats() report.ExporterHealth {
	return report.ExporterHealth{Published: c.scrapes.Load(), Errors: c.scrapeErrs.Load()}
}

// Run owns the accounting until ctx ends: it counts ended flows as they
// come, folds the latest snapshot in for each scrape and every FoldEvery.
func (c *Collector) Run(ctx context.Context) {
	defer close(c.done)
	tick := time.NewTicker(c.cfg.FoldEvery)
	defer tick.Stop()
	ended := c.cfg.Ended
	c.fold()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-ended:
			if !ok {
				ended = nil
				continue
			}
			c.ended(&e)
		case reply := <-c.reqs:
			c.fold()
			reply <- c.view()
		case <-tick.C:
			c.fold()
		}
	}
}

// fold counts the latest snapshot. The ended records waiting in the
// channel are counted first: the table sends a flow's record before it
// publishes the first snapshot without the flow, so every record of a
// flow that the snapshot no longer lists is in the channel by now.
func (c *Collector) fold() {
	s := c.cfg.Latest()
	if s == nil {
		return
	}
	for drained := false; !drained && c.cfg.Ended != nil; {
		select {
		case e, ok := <-c.cfg.Ended:
			if !ok {
				drained = true
				break
			}
			c.ended(&e)
		default:
			drained = true
		}
	}
	if s != c.acct.Folded() {
		c.classes.reset()
		c.acct.FoldEach(s, c.countClass)
	}
}

// ended counts an ended flow (the accounting leaves out those the
// table's filter leaves out of snapshots).
func (c *Collector) ended(e *conntrack.Ended) {
	c.acct.Ended(e)
}

func (c *Collector) view() *view {
	v := &view{snap: c.acct.Folded(), tracked: c.acct.Tracked(), overflow: c.acct.Overflow()}
	v.classes = c.classes.appendClasses(nil)
	v.hosts = c.acct.Hosts()
	return v
}

// collect asks Run for a view of the counters, with the latest snapshot
// folded in.
func (c *Collector) collect(ctx context.Context) (*view, error) {
	reply := make(chan *view, 1)
	select {
	case c.reqs <- reply:
	case <-c.done:
		return nil, ErrStopped
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case v := <-reply:
		return v, nil
	case <-c.done:
		return nil, ErrStopped
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// kernelStats reads the kernel's statistics; ok is false when there are
// none to show.
func (c *Collector) kernelStats() (s conntrack.KernelStats, ok bool) {
	if c.cfg.Kernel == nil {
		return s, false
	}
	s, err := c.cfg.Kernel.Read()
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	c.kernelMu.Lock()
	changed := msg != c.kernelErr
	c.kernelErr = msg
	c.kernelMu.Unlock()
	if changed && err != nil {
		c.log.Warn("metrics: kernel conntrack statistics unavailable", "err", err)
	}
	return s, err == nil
}
