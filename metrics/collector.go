package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/export"
	"github.com/flowtop/flowtop/report"
	"github.com/flowtop/flowtop/traffic"
)

// EndedBuffer is the buffer of the collector's ended-flow subscription
// (export.Spec.Ended): what overflows it is counted as the exporter's
// ended_dropped (and the host counters miss those flows' last bytes).
const EndedBuffer = 4096

// KernelStats reads the kernel's conntrack statistics;
// *kernel.StatsReader implements it.
type KernelStats interface {
	Read() (conntrack.KernelStats, error)
}

// Config is the metrics exporter's own settings (the --metrics-* flags);
// what it reads of the table, and the other exporters' health, come with
// the export.Env it is made with. The zero value of a field means its
// default.
type Config struct {
	// Listener is where Run serves /metrics: opened by the caller, so
	// that a bad address fails before anything else starts (flowtop opens
	// it before it touches the kernel). Run closes it. Without one, Run
	// only collects, and the caller may serve it with Serve.
	Listener net.Listener
	// Auth is what a scrape must send (none by default).
	Auth Auth
	// OpenKernel opens the reader of the kernel's conntrack statistics
	// (flowtop: kernel.OpenStats in the table's namespace); nil for none.
	// New opens it and logs why when it cannot (the metrics go on
	// without them); Run closes it when it is an io.Closer.
	OpenKernel func() (KernelStats, error)
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
}

// Collector is the metrics exporter: it gathers the metrics and serves
// them. Run must be running for scrapes to be answered.
type Collector struct {
	cfg Config
	// latest is the table's newest snapshot (nil before the first).
	// endedCh is the collector's own ended-flow subscription; without
	// one, flows are counted only while snapshots list them.
	latest  func() *conntrack.Snapshot
	endedCh <-chan conntrack.Ended
	// health fills a report.Health with every exporter's counters
	// (Env.Health); nil for none.
	health func(*report.Health)
	kernel KernelStats // nil without kernel statistics
	log    *slog.Logger
	acct   *traffic.Accounting
	// classes counts the flows of the last snapshot folded in acct.
	classes    classCounter
	countClass func(*conntrack.Flow) // classes.add, made once
	reqs       chan chan *view
	done       chan struct{} // closed when the accounting stops
	// limits are Run's server's (defaultLimits; tests shorten them).
	limits limits

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

// New makes a Collector. env is what it reads of the table: Latest
// (required; it must not block) and its own Ended subscription; its
// Health hook, which gives every exporter's counters and their
// subscriptions' losses; and its Logger. Nothing is served until Run.
func New(cfg Config, env export.Env) (*Collector, error) {
	if env.Latest == nil {
		return nil, errors.New("metrics: no snapshot source (Env.Latest is nil)")
	}
	if cfg.GoVersion == "" {
		cfg.GoVersion = runtime.Version()
	}
	if cfg.FoldEvery <= 0 {
		cfg.FoldEvery = 10 * time.Second
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Collector{
		cfg:     cfg,
		latest:  env.Latest,
		endedCh: env.Ended,
		health:  env.Health,
		log:     log,
		acct:    traffic.New(cfg.LocalNets, cfg.MaxHosts),
		reqs:    make(chan chan *view),
		done:    make(chan struct{}),
		limits:  defaultLimits,
	}
	c.countClass = c.classes.add
	if cfg.OpenKernel != nil {
		k, err := cfg.OpenKernel()
		if err != nil {
			log.Warn("metrics: no kernel conntrack statistics", "err", err)
		} else {
			c.kernel = k
		}
	}
	return c, nil
}

// New makes the exporter of c on env: New as flowtop's exporter seam
// calls it (export.Spec.New).
func (c Config) New(env export.Env) (export.Exporter, error) {
	col, err := New(c, env)
	if err != nil {
		return nil, err
	}
	return col, nil
}

// Name is the exporter's key in health.exporters.
func (c *Collector) Name() string { return "metrics" }

// Health is Stats: what flowtop's exporter seam (package export) reads.
func (c *Collector) Health() report.ExporterHealth { return c.Stats() }

// Stats counts the scrapes of /metrics answered (Published) and those that
// could not be (Errors: the collector stopped or the request was gone),
// flowtop's health.exporters.metrics. Refused credentials count in
// neither. It is safe for concurrent use.
func (c *Collector) Stats() report.ExporterHealth {
	return report.ExporterHealth{Published: c.scrapes.Load(), Errors: c.scrapeErrs.Load()}
}

// Run serves the metrics on Config.Listener until ctx ends or the server
// fails, and owns the accounting meanwhile; without a Listener it only
// collects, until ctx ends. It then closes the kernel statistics reader.
// Run is called once.
func (c *Collector) Run(ctx context.Context) error {
	defer c.closeKernel()
	if c.cfg.Listener == nil {
		c.account(ctx)
		return nil
	}
	// The accounting outlives ctx until the server has stopped: the
	// scrapes under way when ctx ends get the server's grace to finish,
	// which they could not without the accounting's view.
	acctCtx, stopAccounting := context.WithCancel(context.WithoutCancel(ctx))
	var accounting sync.WaitGroup
	defer accounting.Wait()
	defer stopAccounting()
	accounting.Go(func() { c.account(acctCtx) })
	c.log.Info("serving Prometheus metrics", "url", "http://"+c.cfg.Listener.Addr().String()+"/metrics")
	srv := &server{handle: c.handler(c.cfg.Auth), limits: c.limits, log: c.log}
	return srv.serve(ctx, c.cfg.Listener)
}

// closeKernel closes the kernel statistics reader, if it has to be.
func (c *Collector) closeKernel() {
	if cl, ok := c.kernel.(io.Closer); ok {
		cl.Close()
	}
}

// account owns the accounting until ctx ends: it counts ended flows as
// they come, folds the latest snapshot in for each scrape and every
// FoldEvery.
func (c *Collector) account(ctx context.Context) {
	defer close(c.done)
	tick := time.NewTicker(c.cfg.FoldEvery)
	defer tick.Stop()
	ended := c.endedCh
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
	s := c.latest()
	if s == nil {
		return
	}
	for drained := false; !drained && c.endedCh != nil; {
		select {
		case e, ok := <-c.endedCh:
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

// collect asks the accounting goroutine for a view of the counters, with
// the latest snapshot folded in.
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
	if c.kernel == nil {
		return s, false
	}
	s, err := c.kernel.Read()
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
