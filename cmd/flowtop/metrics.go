package main

import (
	"context"
	"errors"
	"fmt"
	"github.com/flowtop/flowtop/conntrack/kernel"
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/spf13/pflag"

	"github.com/flowtop/flowtop/export"
	"github.com/flowtop/flowtop/metrics"
	"github.com/flowtop/flowtop/report"
)

// metricsOptions are the --metrics-* flags and --local-net.
type metricsOptions struct {
	listen, basicAuthFile, tokenFile string
	localNets                        []string

	nets []netip.Prefix // derived from localNets; nil for the defaults
}

func addMetricsFlags(fs *pflag.FlagSet, m *metricsOptions) {
	fs.StringVar(&m.listen, "metrics-listen", "", "serve Prometheus metrics on ADDR at /metrics (e.g. 127.0.0.1:9790)")
	fs.StringVar(&m.basicAuthFile, "metrics-basic-auth-file", "", "file holding user:password that scrapes must send (HTTP basic auth)")
	fs.StringVar(&m.tokenFile, "metrics-token-file", "", "file holding a bearer token that scrapes must send")
	fs.StringSliceVar(&m.localNets, "local-net", nil, "CIDR of the local hosts counted in per-host metrics (repeatable; default 10/8, 172.16/12, 192.168/16, fc00::/7)")
}

// check validates the flags; its errors are usage errors.
func (m *metricsOptions) check(once bool) error {
	m.nets = nil
	for _, s := range m.localNets {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return fmt.Errorf("--local-net %q: want a CIDR like 192.168.1.0/24", s)
		}
		m.nets = append(m.nets, p.Masked())
	}
	if m.listen == "" {
		if m.basicAuthFile != "" || m.tokenFile != "" {
			return errors.New("--metrics-basic-auth-file and --metrics-token-file need --metrics-listen")
		}
		return nil
	}
	if once {
		return errors.New("--metrics-listen makes no sense with --once")
	}
	if m.basicAuthFile != "" && m.tokenFile != "" {
		return errors.New("--metrics-basic-auth-file and --metrics-token-file exclude each other")
	}
	if err := metrics.CheckAddr(m.listen); err != nil {
		return fmt.Errorf("--metrics-listen %w", err)
	}
	return nil
}

// usageError is a command-line error found only when acting on it (an
// address flowtop cannot listen on): flowtop exits 2, as for a bad flag.
type usageError struct{ error }

// exitStatus is the exit status of runFlowtop's error.
func exitStatus(err error) int {
	if errors.As(err, new(usageError)) {
		return 2
	}
	return 1
}

// metricsServer is --metrics-listen between the start, where its address
// and credentials are checked before anything touches the kernel, and the
// serving, once the table runs. A nil *metricsServer does nothing.
type metricsServer struct {
	ln   net.Listener
	auth metrics.Auth
	nets []netip.Prefix
}

// listenMetrics listens on --metrics-listen and reads the credentials; nil
// without --metrics-listen.
func listenMetrics(o *options) (*metricsServer, error) {
	m := &o.metrics
	if m.listen == "" {
		return nil, nil
	}
	s := &metricsServer{nets: m.nets}
	var err error
	switch {
	case m.basicAuthFile != "":
		s.auth, err = metrics.BasicAuthFile(m.basicAuthFile)
	case m.tokenFile != "":
		s.auth, err = metrics.TokenFile(m.tokenFile)
	}
	if err != nil {
		return nil, fmt.Errorf("--metrics-listen: %w", err)
	}
	if s.ln, err = metrics.Listen(m.listen); err != nil {
		return nil, usageError{fmt.Errorf("--metrics-listen: %w", err)}
	}
	return s, nil
}

// close releases the listener if serve never ran.
func (s *metricsServer) close() {
	if s != nil {
		s.ln.Close()
	}
}

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
