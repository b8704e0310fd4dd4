//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/export"
	"github.com/flowtop/flowtop/report"
)

// session is flowtop running on a table: the table's goroutine, the
// exporters, the lookups, and the mode (one document, NDJSON, the
// headless daemon or the screen) that uses them.
type session struct {
	o         *options
	k         *kernelSide
	metricsLn *metricsServer // nil without --metrics-listen
	log       *slog.Logger
	warns     *warnings // what the logger held back for the screen
	stdout    io.Writer

	table     *conntrack.Table
	snaps     <-chan *conntrack.Snapshot
	cancelSub func()
	tableErr  chan error
	stopTable context.CancelFunc
	tableWG   sync.WaitGroup

	exp     *export.Set
	names   *lookups
	docOpts report.Options

	watch     *trackingWatch
	stopWatch context.CancelFunc
	watchWG   sync.WaitGroup
	uncounted *uncountedNote
}

// newSession makes the table and opens the exporters' ended-flow
// subscriptions, before the table runs so that no ended flow escapes
// them.
func newSession(o *options, k *kernelSide, metricsLn *metricsServer, log *slog.Logger, warns *warnings, stdout io.Writer) *session {
	s := &session{o: o, k: k, metricsLn: metricsLn, log: log, warns: warns, stdout: stdout,
		tableErr: make(chan error, 1), stopTable: func() {}, stopWatch: func() {}}
	s.table = conntrack.NewTable(conntrack.TableConfig{
		Kernel:      k.src,
		Interval:    o.intervalDuration(),
		Filter:      o.filter,
		KernelFlows: k.count.Read,
		Accounting:  k.guard.Enabled,
		Logger:      log,
	})
	s.snaps, s.cancelSub = s.table.Subscribe()
	s.exp = export.Subscribe(s.table, s.exporterSpecs())
	s.uncounted = &uncountedNote{latest: s.table.Latest}
	s.watch = &trackingWatch{activity: k.activity, count: k.count, log: log, quiet: o.interactive()}
	return s
}

// start runs the table and opens the lookups (service files and GeoIP
// databases load while the kernel dumps), then waits for the first
// snapshot: an error such as a missing privilege ends flowtop with one
// clear line before anything else starts. The snapshot is nil when the
// table failed or ctx ended first.
func (s *session) start(ctx context.Context) (*conntrack.Snapshot, error) {
	tableCtx, stop := context.WithCancel(context.Background())
	s.stopTable = stop
	s.tableWG.Go(func() { s.tableErr <- s.table.Run(tableCtx) })

	s.names = openLookups(s.o, s.log)
	host, _ := os.Hostname()
	s.docOpts = report.Options{Host: host, Netns: s.o.netns, Sort: s.o.sortKey, Limit: s.o.limit, Names: s.names.names}

	select {
	case first := <-s.snaps:
		return first, nil
	case err := <-s.tableErr:
		// With -t 0 the table ends right after publishing its one
		// snapshot, so both may be ready at once: take the snapshot.
		select {
		case first := <-s.snaps:
			return first, nil
		default:
		}
		if err == nil {
			err = errors.New("conntrack reader stopped before the first dump")
		}
		return nil, err
	case <-ctx.Done():
		return nil, nil
	}
}

// startExporters makes and starts the exporters whose flags are given.
func (s *session) startExporters() error {
	return s.exp.Start(context.Background(), export.Env{
		Names: s.names.names, Health: s.addHealth, Logger: s.log, Host: s.docOpts.Host, Netns: s.o.netns,
	})
}

// startTrackingWatch watches for a namespace whose traffic conntrack
// ignores, unless flowtop tracks it itself or reads it only once.
func (s *session) startTrackingWatch() {
	if s.o.enableTracking || s.k.activity == nil || s.o.once {
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	s.stopWatch = stop
	s.watchWG.Go(func() { s.watch.run(ctx, max(s.o.intervalDuration(), time.Second)) })
}

// warnings are the screen header's: what was logged, the untracked
// namespace hint, the flows without counters.
func (s *session) warnings() []string {
	return append(append(s.warns.list(), s.watch.hints()...), s.uncounted.warnings()...)
}

// close stops the session in order: the table first, applying the events
// already queued so that the last DESTROY records reach the exporters;
// then the exporters, which flush what they hold; then the lookups, which
// the exporters' last records were named with. The kernel side (sysctls)
// is put back after this, by its own Close.
func (s *session) close() {
	s.cancelSub()
	s.stopTable()
	s.tableWG.Wait()
	s.exp.Stop()
	s.stopWatch()
	s.watchWG.Wait()
	if s.names != nil {
		s.names.close()
	}
}

// run runs the mode the options ask for.
func (s *session) run(ctx context.Context, first *conntrack.Snapshot) error {
	switch {
	case s.o.once:
		return s.once(ctx, first)
	case s.o.batch:
		return s.batch(ctx, first)
	case s.o.noUI:
		return s.daemon(ctx, first)
	default:
		return s.screen(ctx)
	}
}

// once is --once: one document, one interval after the first dump (so
// that rates are real), or right away with -t 0.
func (s *session) once(ctx context.Context, first *conntrack.Snapshot) error {
	snap := first
	if s.o.interval > 0 {
		// Ask for names now so that the answers (reverse DNS, process
		// owners) have the interval to arrive.
		prefetchNames(first, s.docOpts)
		// After the next full refresh (a huge table is refreshed less
		// often than every interval).
		for snap.Health.Refreshes <= first.Health.Refreshes {
			select {
			case snap = <-s.snaps:
			case err := <-s.tableErr:
				return err
			case <-ctx.Done():
				return nil
			}
		}
	}
	warnUntracked(s.o, s.k.activity, s.k.count.Read(), s.k.packetsBefore, s.log)
	doc := s.document(snap)
	awaitOwners(ctx, s.names.names, doc)
	s.names.addHealth(&doc.Health) // with the owners just found
	warnUncounted(s.log, doc.Health.UncountedFlows)
	return doc.Encode(s.stdout)
}

// batch is --batch: a document per snapshot, NDJSON, until interrupted.
func (s *session) batch(ctx context.Context, first *conntrack.Snapshot) error {
	warnUncounted(s.log, countUncounted(first.Flows))
	if err := s.document(first).Encode(s.stdout); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	for {
		select {
		case snap := <-s.snaps:
			if err := s.document(snap).Encode(s.stdout); err != nil {
				return fmt.Errorf("write snapshot: %w", err)
			}
		case err := <-s.tableErr:
			return err
		case <-ctx.Done():
			return nil
		}
	}
}

// daemon is --no-ui: the exporters run until a signal.
func (s *session) daemon(ctx context.Context, first *conntrack.Snapshot) error {
	s.log.Info("flowtop running headless", "netns", s.o.netns, "mqtt", s.o.mqtt.url, "write", s.o.write)
	warnUncounted(s.log, countUncounted(first.Flows))
	select {
	case err := <-s.tableErr:
		return err
	case <-ctx.Done():
		s.log.Info("flowtop stopping")
		return nil
	}
}

// prefetchNames starts the lookups of the flows a document of s would list
// first; the lookups are asynchronous and cached.
func prefetchNames(s *conntrack.Snapshot, opt report.Options) {
	if opt.Names == nil {
		return
	}
	const most = 1000 // beyond this, a one-shot run should not flood resolvers
	n := most
	if opt.Limit > 0 && opt.Limit < n {
		n = opt.Limit
	}
	for _, f := range report.Top(s.Flows, opt.Sort, s.Time, n) {
		opt.Names.Names(f)
	}
}
