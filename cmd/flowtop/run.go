package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
	"github.com/flowtop/flowtop/ipfix"
	"github.com/flowtop/flowtop/mqttexport"
	"github.com/flowtop/flowtop/report"
)

// run is flowtop without os.Exit: it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseOptions(args, stdout)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "flowtop: %v (see flowtop --help)\n", err)
		return 2
	}
	if o.version {
		fmt.Fprintf(stdout, "flowtop %s\n", version)
		return 0
	}
	if o.interactive() && !haveScreen && !o.update {
		fmt.Fprintln(stderr, "flowtop: this build has no screen (-tags headless): use --no-ui, --once or --batch (see flowtop --help)")
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if o.update {
		err = runUpdate(ctx, o, stdout)
	} else {
		err = runFlowtop(ctx, o, stdout, stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "flowtop: %v\n", err)
		return exitStatus(err)
	}
	return 0
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// interactive reports whether flowtop runs its screen.
func (o *options) interactive() bool { return !o.once && !o.batch && !o.noUI }

// runFlowtop sets up the kernel side and runs the chosen mode until it
// ends or ctx is cancelled by a signal. Every path out restores the
// sysctls.
func runFlowtop(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	// Start-up allocates little garbage and the first dump allocates the
	// whole table at once, all of it live: collections until then find
	// nothing to free, they only rescan a growing heap (ten times over for
	// a 100k-flow dump at GOGC 25, a fifth of its CPU). The collector
	// resumes once the first snapshot is in.
	resumeGC := pauseGC()
	defer resumeGC()

	metricsSrv, err := listenMetrics(o)
	if err != nil {
		return err
	}
	defer metricsSrv.close()

	var warns warnings
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if o.interactive() {
		// The screen owns the terminal: problems go to its header.
		log = slog.New(warns.handler())
	}

	src, err := conntrack.Open(o.netns)
	if err != nil {
		return err
	}
	defer src.Close()

	guard, err := conntrack.EnableAccounting(src.NetnsFile(), o.stateDir)
	if err != nil {
		return err
	}
	noWatchdog := make(chan struct{})
	close(noWatchdog)
	var watchdogReady <-chan struct{} = noWatchdog
	for _, note := range guard.Notes {
		log.Warn(note)
	}
	if guard.Warning != "" {
		log.Warn(guard.Warning)
	} else if stopWatchdog, ready, err := startWatchdog(o.netns, o.stateDir, o.keepAccounting, log); err != nil {
		log.Warn("no sysctl watchdog: after a crash the next start restores the sysctls", "err", err)
	} else {
		watchdogReady = ready
		defer stopWatchdog()
	}
	// Deferred after the watchdog's stop, so it runs first: the state file
	// is gone by the time the watchdog wakes.
	defer endAccounting(guard, o.keepAccounting, stderr)

	if o.enableTracking {
		remove, err := enableTracking(src.NetnsFile())
		if err != nil {
			return err
		}
		defer func() {
			if err := remove(); err != nil {
				fmt.Fprintf(stderr, "flowtop: %v\n", err)
			}
		}()
	}

	count, err := conntrack.OpenCount(src.NetnsFile())
	if err != nil {
		log.Warn("flow count unavailable", "err", err)
	}
	defer count.Close()

	// The IP packet counters tell an idle namespace from one whose traffic
	// conntrack ignores (no rule uses it).
	activity, err := conntrack.OpenIPActivity(src.NetnsFile())
	if err != nil {
		log.Debug("no IP counters", "err", err)
	}
	defer activity.Close()
	packetsBefore := activity.Packets()

	if o.streamsOnce() {
		return onceStreamed(ctx, o, oneDump{src: src, guard: guard, count: count, activity: activity,
			packetsBefore: packetsBefore, watchdogReady: watchdogReady}, stdout, log)
	}

	table := conntrack.NewTable(conntrack.TableConfig{
		Kernel:      src,
		Interval:    o.intervalDuration(),
		Filter:      o.filter,
		KernelFlows: count.Read,
		Accounting:  guard.Enabled,
		Logger:      log,
	})
	snaps, cancelSub := table.Subscribe()
	defer cancelSub()
	var ended <-chan conntrack.Ended
	if o.mqtt.url != "" {
		ended = table.SubscribeEnded(16384)
	}

	// Shutdown order: the table stops first (applying the events already
	// queued, so the last DESTROY records reach the exporters), then the
	// exporters flush and stop. Both happen before the sysctls are
	// restored (deferred earlier, so run later).
	tableCtx, stopTable := context.WithCancel(context.Background())
	exportCtx, stopExports := context.WithCancel(context.Background())
	var tableWG, exportWG sync.WaitGroup
	defer func() {
		stopTable()
		tableWG.Wait()
		stopExports()
		exportWG.Wait()
	}()
	tableErr := make(chan error, 1)
	tableWG.Add(1)
	go func() {
		defer tableWG.Done()
		tableErr <- table.Run(tableCtx)
	}()

	// Names (service files, GeoIP databases) load while the kernel dumps.
	lookups, closeLookups := openLookups(o, log)
	defer closeLookups()

	// Wait for the initial dump before anything else, so that an error
	// such as a missing privilege ends flowtop with one clear line.
	var first *conntrack.Snapshot
	select {
	case first = <-snaps:
	case err := <-tableErr:
		// With -t 0 the table ends right after publishing its one
		// snapshot, so both may be ready at once: take the snapshot.
		select {
		case first = <-snaps:
		default:
		}
		if err == nil && first == nil {
			err = errors.New("conntrack reader stopped before the first dump")
		}
		if err != nil {
			return err
		}
	case <-ctx.Done():
		return nil
	}
	if !o.once {
		// --once exits after one document: no collection would pay.
		resumeGC()
	}
	waitWatchdog(watchdogReady)

	watch := &trackingWatch{activity: activity, count: count, log: log, quiet: o.interactive()}
	if !o.enableTracking && activity != nil && !o.once {
		exportWG.Add(1)
		go func() {
			defer exportWG.Done()
			watch.run(exportCtx, max(o.intervalDuration(), time.Second))
		}()
	}

	host, _ := os.Hostname()
	exp := &exporters{}
	if o.mqtt.url != "" {
		mq, err := newMQTT(o, host, table.Latest, ended, lookups, log)
		if err != nil {
			return fmt.Errorf("--mqtt: %w", err)
		}
		exp.mqtt = mq
		exportWG.Add(1)
		go func() {
			defer exportWG.Done()
			if err := mq.Run(exportCtx); err != nil {
				log.Error("mqtt exporter stopped", "err", err)
			}
		}()
	}
	metricsSrv.serve(exportCtx, &exportWG, table, src.NetnsFile(), exp.health, log)
	if exp.ipfix, err = startIPFIX(exportCtx, &exportWG, &o.ipfix, table, log); err != nil {
		return err
	}
	docOpts := report.Options{Host: host, Netns: o.netns, Sort: o.sortKey, Limit: o.limit, Names: lookups}
	// Documents are written a flow at a time (Encode): all the flows of a
	// 100k table are 60 MB of JSON.
	build := func(s *conntrack.Snapshot) *report.Prepared {
		d := report.Prepare(s, docOpts)
		d.Health.Exporters = exp.health()
		return d
	}
	if o.write != "" {
		exportWG.Add(1)
		go func() {
			defer exportWG.Done()
			exp.writeFile(exportCtx, o.write, o.writeInterval, table.Latest, build, log)
		}()
	}

	uncounted := &uncountedNote{latest: table.Latest}
	m := &modes{
		o: o, log: log, stdout: stdout, table: table, src: src, snaps: snaps, cancelSub: cancelSub,
		tableErr: tableErr, first: first, build: build, docOpts: docOpts, lookups: lookups,
		exp: exp, warnings: func() []string {
			return append(append(warns.list(), watch.hints()...), uncounted.warnings()...)
		},
		activity: activity, count: count, packetsBefore: packetsBefore,
	}
	switch {
	case o.once:
		return m.once(ctx)
	case o.batch:
		return m.batch(ctx)
	case o.noUI:
		return m.daemon(ctx)
	default:
		return m.screen(ctx)
	}
}

// pauseGC turns the garbage collector off; the returned resume turns it
// back on at its old setting (calls after the first do nothing).
func pauseGC() (resume func()) {
	old := debug.SetGCPercent(-1)
	return sync.OnceFunc(func() { debug.SetGCPercent(old) })
}

// newMQTT makes the --mqtt exporter from the options.
func newMQTT(o *options, host string, latest func() *conntrack.Snapshot, ended <-chan conntrack.Ended,
	names enrich.Namer, log *slog.Logger) (*mqttexport.Exporter, error) {
	return mqttexport.New(mqttexport.Config{
		URL: o.mqtt.url, User: o.mqtt.user, PasswordFile: o.mqtt.passwordFile,
		CA: o.mqtt.ca, Cert: o.mqtt.cert, Key: o.mqtt.key,
		ClientID: o.mqtt.clientID, Topic: o.mqtt.topic, Node: o.mqtt.node,
		QoS: byte(o.mqtt.qos), Interval: o.mqtt.interval, Gzip: o.mqtt.gzip,
		Limit: o.limit, HomeAssistant: o.mqtt.homeAssistant,
		HomeAssistantPrefix: o.mqtt.haPrefix, LocalNets: o.metrics.nets, Version: version,
		Host: host, Netns: o.netns,
		Latest: latest, Ended: ended, Names: names, Logger: log,
	})
}

// modes runs what the options ask for once the kernel side is up: one
// document, NDJSON, the headless daemon or the screen.
type modes struct {
	o         *options
	log       *slog.Logger
	stdout    io.Writer
	table     *conntrack.Table
	src       *conntrack.Source
	snaps     <-chan *conntrack.Snapshot
	cancelSub func()
	tableErr  <-chan error
	first     *conntrack.Snapshot
	build     func(*conntrack.Snapshot) *report.Prepared
	docOpts   report.Options
	lookups   *enrich.Lookups
	exp       *exporters
	warnings  func() []string

	activity      *conntrack.IPActivity
	count         *conntrack.KernelCount
	packetsBefore uint64
}

// once is --once: one document, one interval after the first dump (so
// that rates are real), or right away with -t 0.
func (m *modes) once(ctx context.Context) error {
	o, s := m.o, m.first
	if o.interval > 0 {
		// Ask for names now so that the answers (reverse DNS, process
		// owners) have the interval to arrive.
		prefetchNames(m.first, m.docOpts)
		// After the next full refresh (a huge table is refreshed less
		// often than every interval).
		for s.Health.Refreshes <= m.first.Health.Refreshes {
			select {
			case s = <-m.snaps:
			case err := <-m.tableErr:
				return err
			case <-ctx.Done():
				return nil
			}
		}
	}
	warnUntracked(o, m.activity, m.count.Read(), m.packetsBefore, m.log)
	doc := m.build(s)
	awaitOwners(ctx, m.lookups, doc)
	warnUncounted(m.log, doc.Health.UncountedFlows)
	return doc.Encode(m.stdout)
}

// batch is --batch: a document per snapshot, NDJSON, until interrupted.
func (m *modes) batch(ctx context.Context) error {
	warnUncounted(m.log, countUncounted(m.first.Flows))
	if err := m.build(m.first).Encode(m.stdout); err != nil {
		return fmt.Errorf("write snapshot: %w", err)
	}
	for {
		select {
		case s := <-m.snaps:
			if err := m.build(s).Encode(m.stdout); err != nil {
				return fmt.Errorf("write snapshot: %w", err)
			}
		case err := <-m.tableErr:
			return err
		case <-ctx.Done():
			return nil
		}
	}
}

// daemon is --no-ui: the exporters run until a signal.
func (m *modes) daemon(ctx context.Context) error {
	m.log.Info("flowtop running headless", "netns", m.o.netns, "mqtt", m.o.mqtt.url, "write", m.o.write)
	warnUncounted(m.log, countUncounted(m.first.Flows))
	select {
	case err := <-m.tableErr:
		return err
	case <-ctx.Done():
		m.log.Info("flowtop stopping")
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

// exporters holds the running exporters' counters for health and the
// screen's status line.
type exporters struct {
	mqtt                   *mqttexport.Exporter
	ipfix                  *ipfix.Exporter
	filePublished, fileErr atomic.Uint64
	fileOn                 atomic.Bool
}

func (e *exporters) health() map[string]report.ExporterHealth {
	h := map[string]report.ExporterHealth{}
	if e.mqtt != nil {
		h["mqtt"] = e.mqtt.Stats()
	}
	if e.ipfix != nil {
		h["ipfix"] = e.ipfix.Stats()
	}
	if e.fileOn.Load() {
		h["file"] = report.ExporterHealth{Published: e.filePublished.Load(), Errors: e.fileErr.Load()}
	}
	if len(h) == 0 {
		return nil
	}
	return h
}

func (e *exporters) status() string {
	if e.mqtt == nil {
		return ""
	}
	s := e.mqtt.Stats()
	state := "disconnected"
	if s.Connected != nil && *s.Connected {
		state = "connected"
	}
	return fmt.Sprintf("mqtt %s: %d sent, %d dropped, %d errors", state, s.Published, s.Dropped, s.Errors)
}

// writeFile is --write: the snapshot document, replaced atomically every
// interval, until ctx ends.
func (e *exporters) writeFile(ctx context.Context, path string, every time.Duration,
	latest func() *conntrack.Snapshot, build func(*conntrack.Snapshot) *report.Prepared, log *slog.Logger) {
	e.fileOn.Store(true)
	write := func() {
		if s := latest(); s != nil {
			if err := report.WriteFile(path, build(s)); err != nil {
				e.fileErr.Add(1)
				log.Error(err.Error())
				return
			}
			e.filePublished.Add(1)
		}
	}
	write()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			write()
		}
	}
}
