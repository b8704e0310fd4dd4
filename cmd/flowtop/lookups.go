package main

import (
	"context"
	"errors"
	"github.com/flowtop/flowtop/conntrack/kernel"
	"log/slog"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
	"github.com/flowtop/flowtop/geo"
	"github.com/flowtop/flowtop/procs"
	"github.com/flowtop/flowtop/rdns"
	"github.com/flowtop/flowtop/report"
	"github.com/flowtop/flowtop/services"
)

// wantsDNS reports whether reverse DNS can show anything: not with -n,
// and not in --once -t 0, which writes its document right after the dump.
// Names are asked for as the document is made and an answer comes later,
// so there it would only send queries (100k flows: thousands) whose
// answers nobody reads.
func (o *options) wantsDNS() bool {
	return !o.noDNS && !o.singleDump()
}

// openLookups starts the enrichment sources the options ask for. A source
// that cannot start is logged and left out; flowtop runs without it.
func openLookups(o *options, log *slog.Logger) (*enrich.Lookups, func()) {
	l := &enrich.Lookups{}
	var closers []func()
	l.Services = services.Load(o.configDir, func(msg string) { log.Warn(msg) })
	if o.wantsDNS() {
		c := rdns.New(rdns.Config{})
		l.DNS = c
		closers = append(closers, c.Close)
	}
	if !o.noGeoIP {
		db, errs := geo.Open(geo.DefaultDirs(o.geoipDir))
		for _, err := range errs {
			if errors.Is(err, geo.ErrNoDatabase) {
				log.Info(err.Error())
			} else {
				log.Error(err.Error())
			}
		}
		if db.Available() {
			l.Geo = db
		}
		closers = append(closers, func() { db.Close() })
	}
	if f, err := procs.New(procs.Config{NetNS: kernel.NetnsPath(o.netns)}); err != nil {
		log.Warn("no process names", "err", err)
	} else {
		l.Procs = f
		closers = append(closers, func() { f.Close() })
	}
	return l, func() {
		for _, c := range closers {
			c()
		}
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
