//go:build linux

package main

import (
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/flowtop/flowtop/conntrack/kernel"
)

// kernelSide is what flowtop opens and changes in the kernel: the conntrack
// source, the accounting sysctls and their watchdog, the --enable-tracking
// rule, and the two counters it reads beside the table (the flow count,
// the IP packet counters). Close puts it all back.
type kernelSide struct {
	src      *kernel.Source
	guard    *kernel.SysctlGuard
	count    *kernel.KernelCount // nil when unreadable
	activity *kernel.IPActivity  // nil when unreadable
	// packetsBefore is the namespace's IP packet count at start: an empty
	// table in a namespace whose count grows is traffic conntrack ignores.
	packetsBefore uint64
	// watchdogReady closes once the sysctl watchdog runs (or failed to).
	watchdogReady <-chan struct{}

	stopWatchdog   func()       // nil without a watchdog
	removeTracking func() error // nil without --enable-tracking
	keepAccounting bool
	stderr         io.Writer // for what Close has to say
}

// openKernel opens the kernel side for o. On error, what was opened is
// closed again.
func openKernel(o *options, log *slog.Logger, stderr io.Writer) (_ *kernelSide, err error) {
	k := &kernelSide{keepAccounting: o.keepAccounting, stderr: stderr}
	defer func() {
		if err != nil {
			k.Close()
		}
	}()
	if k.src, err = kernel.Open(o.netns); err != nil {
		return nil, err
	}
	if k.guard, err = kernel.EnableAccounting(k.src.NetnsFile(), o.stateDir); err != nil {
		k.guard = nil // nothing to restore
		return nil, err
	}
	k.startWatchdog(o, log)
	if o.enableTracking {
		if k.removeTracking, err = enableTracking(k.src.NetnsFile()); err != nil {
			return nil, err
		}
	}
	if k.count, err = kernel.OpenCount(k.src.NetnsFile()); err != nil {
		log.Warn("flow count unavailable", "err", err)
	}
	// The IP packet counters tell an idle namespace from one whose traffic
	// conntrack ignores (no rule uses it).
	if k.activity, err = kernel.OpenIPActivity(k.src.NetnsFile()); err != nil {
		log.Debug("no IP counters", "err", err)
	}
	k.packetsBefore = k.activity.Packets()
	return k, nil
}

// startWatchdog starts the sysctl watchdog when flowtop changed the
// sysctls; without one a crash leaves them to the next start.
func (k *kernelSide) startWatchdog(o *options, log *slog.Logger) {
	noWatchdog := make(chan struct{})
	close(noWatchdog)
	k.watchdogReady = noWatchdog
	for _, note := range k.guard.Notes {
		log.Warn(note)
	}
	if k.guard.Warning != "" {
		log.Warn(k.guard.Warning)
		return
	}
	stop, ready, err := startWatchdog(o.netns, o.stateDir, o.keepAccounting, log)
	if err != nil {
		log.Warn("no sysctl watchdog: after a crash the next start restores the sysctls", "err", err)
		return
	}
	k.stopWatchdog, k.watchdogReady = stop, ready
}

// waitWatchdog waits (at most 2 s) for the sysctl watchdog that started
// during the first dump; from then on a crash anywhere is covered.
func (k *kernelSide) waitWatchdog() {
	select {
	case <-k.watchdogReady:
	case <-time.After(2 * time.Second):
	}
	crashHook()
}

// Close undoes openKernel: the counters are closed, the tracking rule
// removed, the sysctls restored (or kept with --keep-accounting), then
// the watchdog told so — in that order, so that the state file is gone by
// the time the watchdog wakes — and the source closed.
func (k *kernelSide) Close() {
	k.activity.Close()
	k.count.Close()
	if k.removeTracking != nil {
		if err := k.removeTracking(); err != nil {
			fmt.Fprintf(k.stderr, "flowtop: %v\n", err)
		}
	}
	if k.guard != nil {
		endAccounting(k.guard, k.keepAccounting, k.stderr)
	}
	if k.stopWatchdog != nil {
		k.stopWatchdog()
	}
	if k.src != nil {
		k.src.Close()
	}
}
