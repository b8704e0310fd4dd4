package main

import (
	"context"
	"log/slog"
	"sync"

	"github.com/flowtop/flowtop/conntrack/kernel"
	"github.com/flowtop/flowtop/export"
	"github.com/flowtop/flowtop/metrics"
	"github.com/flowtop/flowtop/report"
)

// newMetrics makes the --metrics-listen exporter: the collector, with its
// own ended-flow subscription, the kernel's statistics read in the
// table's namespace, and the exporters' counters.
func (s *session) newMetrics(env export.Env) (export.Exporter, error) {
	cfg := metrics.Config{
		Latest: env.Latest, Ended: env.Ended, EndedDrops: s.table.EndedDrops,
		Exporters: s.exp.Health, LocalNets: s.metricsLn.nets, Version: version, Logger: env.Logger,
	}
	stats, err := kernel.OpenStats(s.k.src.NetnsFile())
	if err != nil {
		env.Logger.Warn("metrics: no kernel conntrack statistics", "err", err)
	} else {
		cfg.Kernel = stats
	}
	return &metricsExporter{srv: s.metricsLn, c: metrics.New(cfg), stats: stats, log: env.Logger}, nil
}

// metricsExporter serves the collector's metrics on the listener until
// its context ends.
type metricsExporter struct {
	srv   *metricsServer
	c     *metrics.Collector
	stats *kernel.StatsReader // nil without kernel statistics
	log   *slog.Logger
}

func (*metricsExporter) Name() string                    { return "metrics" }
func (e *metricsExporter) Health() report.ExporterHealth { return e.c.Stats() }

// Run serves until ctx ends or the server fails; the collector stops with
// it (nothing else reads it).
func (e *metricsExporter) Run(ctx context.Context) error {
	defer e.stats.Close()
	ctx, cancel := context.WithCancel(ctx)
	var collector sync.WaitGroup
	defer collector.Wait()
	defer cancel()
	collector.Go(func() { e.c.Run(ctx) })
	e.log.Info("serving Prometheus metrics", "url", "http://"+e.srv.ln.Addr().String()+"/metrics")
	return metrics.Serve(ctx, e.srv.ln, e.c.Handler(e.srv.auth), e.log)
}
