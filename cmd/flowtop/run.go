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
	"syscall"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/report"
)

// run is flowtop without os.Exit: it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseOptions(args, stderr)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "flowtop: %v\nTry 'flowtop --help' for more information.\n", err)
		return 2
	}
	if o.version {
		fmt.Fprintf(stdout, "flowtop %s\n", version)
		return 0
	}
	if err := runFlowtop(o, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "flowtop: %v\n", err)
		return 1
	}
	return 0
}

// runFlowtop sets up the kernel side and runs the chosen mode until it
// ends or a signal arrives. Every path out restores the sysctls.
func runFlowtop(o *options, stdout, stderr io.Writer) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))

	src, err := conntrack.Open(o.netns)
	if err != nil {
		return err
	}
	defer src.Close()

	guard, err := conntrack.EnableAccounting(src.NetnsFile(), o.stateDir)
	if err != nil {
		return err
	}
	if guard.Warning != "" {
		log.Warn(guard.Warning)
	} else if stopWatchdog, err := startWatchdog(o.netns, o.stateDir); err != nil {
		log.Warn("no sysctl watchdog: after a crash the next start restores the sysctls", "err", err)
	} else {
		defer stopWatchdog()
	}
	// Deferred after the watchdog's stop, so it runs first: the state file
	// is gone by the time the watchdog wakes.
	defer func() {
		if err := guard.Restore(); err != nil {
			log.Error("restoring sysctls", "err", err)
		}
	}()

	if o.enableTracking {
		remove, err := enableTracking(src.NetnsFile())
		if err != nil {
			return err
		}
		defer func() {
			if err := remove(); err != nil {
				log.Error(err.Error())
			}
		}()
	}

	count, err := conntrack.OpenCount(src.NetnsFile())
	if err != nil {
		log.Warn("flow count unavailable", "err", err)
	}
	defer count.Close()

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

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	tableErr := make(chan error, 1)
	go func() { tableErr <- table.Run(ctx) }()

	host, _ := os.Hostname()
	docOpts := report.Options{Host: host, Netns: o.netns, Sort: o.sortKey, Limit: o.limit}
	enc := json.NewEncoder(stdout)

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
	if first.TableFlows == 0 && first.Health.KernelFlows <= 0 && !o.enableTracking {
		log.Warn("conntrack tracks no flow in this namespace. The kernel tracks a namespace's traffic " +
			"only once a firewall rule uses conntrack (e.g. nft ... ct state established accept); " +
			"flowtop --enable-tracking installs such a rule until it exits")
	}

	switch {
	case o.once:
		s := first
		if o.interval > 0 {
			// One interval later, so that rates are real.
			select {
			case s = <-snaps:
			case err := <-tableErr:
				return err
			case <-ctx.Done():
				return nil
			}
		}
		return enc.Encode(report.Build(s, docOpts))
	default: // --batch (the screen and the daemon come with their issues)
		if err := enc.Encode(report.Build(first, docOpts)); err != nil {
			return err
		}
		for {
			select {
			case s := <-snaps:
				if err := enc.Encode(report.Build(s, docOpts)); err != nil {
					return fmt.Errorf("write snapshot: %w", err)
				}
			case err := <-tableErr:
				return err
			case <-ctx.Done():
				return nil
			}
		}
	}
}
