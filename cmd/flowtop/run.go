package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/geo"
	"github.com/flowtop/flowtop/mqttexport"
	"github.com/flowtop/flowtop/report"
	"github.com/flowtop/flowtop/ui"
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
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	if o.update {
		err = runUpdate(ctx, o, stdout)
	} else {
		err = runFlowtop(ctx, o, stdout, stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "flowtop: %v\n", err)
		return 1
	}
	return 0
}

// runUpdate is -u: fetch the GeoIP databases.
func runUpdate(ctx context.Context, o *options, stdout io.Writer) error {
	cfg := geo.UpdateConfig{Dir: o.geoipDir, LicenseFile: o.geoipLicenseFile}
	if o.configDir != "" {
		if conf := filepath.Join(o.configDir, "geoip.conf"); fileExists(conf) {
			cfg.ConfFile = conf
		}
	}
	return geo.Update(ctx, cfg, stdout)
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
	if guard.Warning != "" {
		log.Warn(guard.Warning)
	} else if stopWatchdog, ready, err := startWatchdog(o.netns, o.stateDir, log); err != nil {
		log.Warn("no sysctl watchdog: after a crash the next start restores the sysctls", "err", err)
	} else {
		watchdogReady = ready
		defer stopWatchdog()
	}
	// Deferred after the watchdog's stop, so it runs first: the state file
	// is gone by the time the watchdog wakes.
	defer func() {
		if err := guard.Restore(); err != nil {
			fmt.Fprintf(stderr, "flowtop: restoring sysctls: %v\n", err)
		}
	}()

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

	lookups, closeLookups := openLookups(o, log)
	defer closeLookups()

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

	// Wait for the initial dump before anything else, so that an error
	// such as a missing privilege ends flowtop with one clear line.
	var first *conntrack.Snapshot
	select {
	case first = <-snaps:
	case err := <-tableErr:
		if err == nil {
			err = errors.New("conntrack reader stopped before the first dump")
		}
		return err
	case <-ctx.Done():
		return nil
	}
	// The watchdog started during the dump; from here on a crash
	// anywhere is covered.
	select {
	case <-watchdogReady:
	case <-time.After(2 * time.Second):
	}
	crashHook()

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
		mq, err := mqttexport.New(mqttexport.Config{
			URL: o.mqtt.url, User: o.mqtt.user, PasswordFile: o.mqtt.passwordFile,
			CA: o.mqtt.ca, Cert: o.mqtt.cert, Key: o.mqtt.key,
			ClientID: o.mqtt.clientID, Topic: o.mqtt.topic, Node: o.mqtt.node,
			QoS: byte(o.mqtt.qos), Interval: o.mqtt.interval, Gzip: o.mqtt.gzip,
			Limit: o.limit, HomeAssistant: o.mqtt.homeAssistant,
			Host: host, Netns: o.netns,
			Latest: table.Latest, Ended: ended, Names: lookups, Logger: log,
		})
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
	docOpts := report.Options{Host: host, Netns: o.netns, Sort: o.sortKey, Limit: o.limit, Names: lookups}
	build := func(s *conntrack.Snapshot) *report.Document {
		d := report.Build(s, docOpts)
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

	enc := json.NewEncoder(stdout)
	switch {
	case o.once:
		s := first
		if o.interval > 0 {
			// Ask for names now so that the answers (reverse DNS, process
			// owners) have the interval to arrive.
			prefetchNames(first, docOpts)
			// After the next full refresh, so that rates are real (a huge
			// table is refreshed less often than every interval).
			for s.Health.Refreshes <= first.Health.Refreshes {
				select {
				case s = <-snaps:
				case err := <-tableErr:
					return err
				case <-ctx.Done():
					return nil
				}
			}
		}
		if !o.enableTracking && activity != nil && count.Read() == 0 {
			// -t 0 has no interval to watch: any packet so far counts.
			if o.interval == 0 && packetsBefore > 0 || activity.Packets() > packetsBefore {
				log.Warn(untrackedHint)
			}
		}
		return enc.Encode(build(s))
	case o.batch:
		if err := enc.Encode(build(first)); err != nil {
			return err
		}
		for {
			select {
			case s := <-snaps:
				if err := enc.Encode(build(s)); err != nil {
					return fmt.Errorf("write snapshot: %w", err)
				}
			case err := <-tableErr:
				return err
			case <-ctx.Done():
				return nil
			}
		}
	case o.noUI:
		log.Info("flowtop running headless", "netns", o.netns, "mqtt", o.mqtt.url, "write", o.write)
		select {
		case err := <-tableErr:
			return err
		case <-ctx.Done():
			log.Info("flowtop stopping")
			return nil
		}
	default:
		cancelSub() // the screen reads Latest on its own tick
		uiErr := make(chan error, 1)
		uiCtx, stopUI := context.WithCancel(ctx)
		defer stopUI()
		go func() {
			uiErr <- ui.Run(uiCtx, ui.Config{
				Source:   uiSource{table, src},
				Names:    lookups,
				Version:  version,
				Netns:    o.netns,
				Interval: o.intervalDuration(),
				Bits:     o.bits,
				ShowSrc:  o.showSrc,
				Numeric:  o.noDNS,
				Status:   exp.status,
				Warnings: func() []string { return append(warns.list(), watch.hints()...) },
			})
		}()
		select {
		case err := <-uiErr:
			return err
		case err := <-tableErr:
			stopUI()
			<-uiErr
			return err
		}
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

// uiSource is what the screen needs from the kernel side.
type uiSource struct {
	*conntrack.Table
	src *conntrack.Source
}

func (u uiSource) Delete(f *conntrack.Flow) error { return u.src.Delete(f) }

// exporters holds the running exporters' counters for health and the
// screen's status line.
type exporters struct {
	mqtt                   *mqttexport.Exporter
	filePublished, fileErr atomic.Uint64
	fileOn                 atomic.Bool
}

func (e *exporters) health() map[string]report.ExporterHealth {
	h := map[string]report.ExporterHealth{}
	if e.mqtt != nil {
		h["mqtt"] = e.mqtt.Stats()
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
	latest func() *conntrack.Snapshot, build func(*conntrack.Snapshot) *report.Document, log *slog.Logger) {
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
