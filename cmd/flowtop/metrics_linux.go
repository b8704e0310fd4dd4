package main

import (
	"github.com/flowtop/flowtop/conntrack/kernel"
	"github.com/flowtop/flowtop/metrics"
)

// metricsConfig is the --metrics-listen exporter's settings, with the
// kernel's statistics read in the table's namespace.
func (s *session) metricsConfig() metrics.Config {
	cfg := s.metricsLn.config()
	cfg.OpenKernel = func() (metrics.KernelStats, error) { return kernel.OpenStats(s.k.src.NetnsFile()) }
	return cfg
}
