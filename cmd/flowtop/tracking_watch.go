//go:build linux

package main

import (
	"context"
	"github.com/flowtop/flowtop/conntrack/kernel"
	"log/slog"
	"sync/atomic"
	"time"
)

// warnUntracked logs untrackedHint when the kernel tracks no flow although
// IP packets went through the namespace: since the start of flowtop, or,
// for a single dump (no interval to watch), any packet so far.
func warnUntracked(o *options, activity *kernel.IPActivity, kernelFlows int, packetsBefore uint64, log *slog.Logger) {
	if o.enableTracking || activity == nil || kernelFlows != 0 {
		return
	}
	if o.singleDump() && packetsBefore > 0 || activity.Packets() > packetsBefore {
		log.Warn(untrackedHint)
	}
}

// untrackedHint explains an empty table in a namespace with traffic.
const untrackedHint = "conntrack tracks no flow in this namespace although it carries IP traffic. " +
	"The kernel tracks a namespace's traffic only once a firewall rule uses conntrack " +
	"(e.g. nft add rule inet filter input ct state established accept, or any NAT rule)" + trackingHint

// trackingWatch tells when a namespace carries IP traffic but the kernel
// tracks none of it: the kernel counts no flow over two checks in a row
// while the namespace's IP counters grow. The hint goes away as soon as a
// flow is tracked (the screen shows it only while it holds).
type trackingWatch struct {
	activity *kernel.IPActivity
	count    *kernel.KernelCount
	log      *slog.Logger
	quiet    bool // the screen shows hints(); do not log
	flagged  atomic.Bool
}

// minPackets is the traffic over one check that counts as "carries IP
// traffic": a stray neighbour solicitation should not raise the hint.
const minPackets = 10

func (w *trackingWatch) run(ctx context.Context, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	prev := w.activity.Packets()
	strikes := 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := w.activity.Packets()
		if w.count.Read() == 0 && cur-prev >= minPackets {
			strikes++
		} else {
			strikes = 0
		}
		prev = cur
		untracked := strikes >= 2
		if untracked && !w.flagged.Load() && !w.quiet {
			w.log.Warn(untrackedHint)
		}
		w.flagged.Store(untracked)
	}
}

// hints returns the hint while the condition holds.
func (w *trackingWatch) hints() []string {
	if w.flagged.Load() {
		return []string{untrackedHint}
	}
	return nil
}
