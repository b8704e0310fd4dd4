package main

import (
	"errors"
	"log/slog"

	"github.com/flowtop/flowtop/enrich"
	"github.com/flowtop/flowtop/geo"
	"github.com/flowtop/flowtop/rdns"
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

// nameSources are the lookups that name any flow, local or a router's:
// services, reverse DNS and GeoIP. Processes are the local kernel's only.
type nameSources struct {
	names   *enrich.Lookups
	dns     *rdns.Cache // nil with -n
	closers []func()
}

// openNameSources starts the name lookups the options ask for. A source
// that cannot start is logged and left out.
func openNameSources(o *options, log *slog.Logger) nameSources {
	l := nameSources{names: &enrich.Lookups{}}
	l.names.Services = services.Load(o.configDir, func(msg string) { log.Warn(msg) })
	if o.wantsDNS() {
		l.dns = rdns.New(rdns.Config{})
		l.names.DNS = l.dns
		l.closers = append(l.closers, l.dns.Close)
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
			l.names.Geo = db
		}
		l.closers = append(l.closers, func() { db.Close() })
	}
	return l
}

// close stops the sources.
func (l *nameSources) close() {
	for _, c := range l.closers {
		c()
	}
}
