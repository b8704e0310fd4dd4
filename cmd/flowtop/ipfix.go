package main

import (
	"fmt"
	"time"

	"github.com/spf13/pflag"

	"github.com/flowtop/flowtop/ipfix"
)

// ipfixOptions are the --ipfix flags.
type ipfixOptions struct {
	urls          []string
	format        string
	activeTimeout time.Duration
	mtu           int
	natEvents     bool
}

func addIPFIXFlags(fs *pflag.FlagSet, o *ipfixOptions) {
	fs.StringArrayVar(&o.urls, "ipfix", nil, "export flows to the IPFIX collector `URL`, udp://host[:4739] or tcp://host[:4739] (repeatable)")
	fs.StringVar(&o.format, "ipfix-format", "ipfix", "`format`: ipfix, or nf9 for NetFlow v9")
	fs.DurationVar(&o.activeTimeout, "ipfix-active-timeout", ipfix.DefaultActiveTimeout, "export long flows this often, with the counters since the last record")
	fs.IntVar(&o.mtu, "ipfix-mtu", ipfix.DefaultMTU, "path MTU to the collectors: no export datagram is larger")
	fs.BoolVar(&o.natEvents, "ipfix-nat-events", false, "add RFC 8158 NAT44 session create and delete events")
}

// config is the exporter's configuration, without the table.
func (o *ipfixOptions) config() (ipfix.Config, error) {
	f, err := ipfix.ParseFormat(o.format)
	if err != nil {
		return ipfix.Config{}, err
	}
	return ipfix.Config{URLs: o.urls, Format: f, ActiveTimeout: o.activeTimeout, MTU: o.mtu, NATEvents: o.natEvents}, nil
}

// derive checks the flags: a bad value is a usage error.
func (o *ipfixOptions) derive() error {
	cfg, err := o.config()
	if err != nil {
		return fmt.Errorf("--ipfix-format: %w", err)
	}
	if len(o.urls) == 0 {
		return nil
	}
	return cfg.Check()
}
