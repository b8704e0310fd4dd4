package main

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/spf13/pflag"

	"github.com/flowtop/flowtop/metrics"
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
// exporter that serves on it once the table runs. A nil *metricsServer
// does nothing.
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

// config is the --metrics-listen exporter's settings: the listener and
// credentials, the local networks, the version. Its zero value without
// --metrics-listen.
func (s *metricsServer) config() metrics.Config {
	if s == nil {
		return metrics.Config{}
	}
	return metrics.Config{Listener: s.ln, Auth: s.auth, LocalNets: s.nets, Version: version}
}

// close releases the listener if the exporter never ran.
func (s *metricsServer) close() {
	if s != nil {
		s.ln.Close()
	}
}
