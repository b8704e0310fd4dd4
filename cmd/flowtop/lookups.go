//go:build linux

package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/flowtop/flowtop/conntrack/kernel"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
	"github.com/flowtop/flowtop/procs"
	"github.com/flowtop/flowtop/report"
)

// lookups are the enrichment sources flowtop runs: the names of flows, and
// the reverse DNS cache and process finder whose work health reports.
type lookups struct {
	nameSources
	owners *procs.Finder // nil when it could not start
}

// openLookups starts the enrichment sources the options ask for. A source
// that cannot start is logged and left out; flowtop runs without it.
func openLookups(o *options, log *slog.Logger) *lookups {
	l := &lookups{nameSources: openNameSources(o, log)}
	if f, err := procs.New(procs.Config{NetNS: kernel.NetnsPath(o.netns)}); err != nil {
		log.Warn("no process names", "err", err)
	} else {
		l.owners = f
		l.names.Procs = f
		l.closers = append(l.closers, func() { f.Close() })
	}
	return l
}

// addHealth adds the work of the reverse DNS cache and of the process
// finder, each when it runs, to a document's health.
func (l *lookups) addHealth(h *report.Health) {
	if l.dns != nil {
		s := l.dns.Stats()
		h.RDNS = &report.RDNSHealth{Lookups: s.Lookups, Hits: s.Hits, Misses: s.Misses, NotFound: s.NotFound,
			Failures: s.Failures, Timeouts: s.Timeouts, Dropped: s.Dropped, Inflight: s.Inflight, Entries: s.Entries}
		if s.LastErr != nil {
			h.RDNS.LastError = s.LastErr.Error()
		}
	}
	if l.owners != nil {
		s := l.owners.Stats()
		h.Procs = &report.ProcsHealth{Cached: s.Cached, Queued: s.Queued, Inodes: s.Inodes, Resolved: s.Resolved,
			Unowned: s.Unowned, Retries: s.Retries, Queries: s.Queries, Errors: s.Errors, Scans: s.Scans,
			Evicted: s.Evicted, Deferred: s.Deferred, LastScanMS: float64(s.LastScan.Microseconds()) / 1000}
	}
}

// A one-shot document waits for the owners of at most its first
// awaitOwnersMost flows, for at most awaitOwnersFor.
const (
	awaitOwnersMost = 1000
	awaitOwnersFor  = 2 * time.Second
)

// ownerAwaiter is the part of procs.Finder a one-shot run waits on.
type ownerAwaiter interface {
	Await(ctx context.Context, flows []*conntrack.Flow)
}

// awaitOwners waits, bounded, until the process finder has answered for
// the first flows d lists. The finder answers asynchronously (a lookup
// asked as the document is written comes too late for it), so --once
// without this lacks the owners of every flow with -t 0 and of those
// that began during the interval.
func awaitOwners(ctx context.Context, names *enrich.Lookups, d *report.Prepared) {
	a, ok := names.Procs.(ownerAwaiter)
	if !ok {
		return
	}
	flows := d.Listed()
	ctx, cancel := context.WithTimeout(ctx, awaitOwnersFor)
	defer cancel()
	a.Await(ctx, flows[:min(len(flows), awaitOwnersMost)])
}
