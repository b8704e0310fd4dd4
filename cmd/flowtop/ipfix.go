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

// config is the --ipfix exporter's settings, from its flags (checked by
// derive).
func (o *ipfixOptions) config() ipfix.Config {
	return ipfix.Config{URLs: o.urls, Format: ipfix.Format(o.format), ActiveTimeout: o.activeTimeout, MTU: o.mtu,
		NATEvents: o.natEvents}
}

// derive checks the flags: a bad value is a usage error. The format is
// checked even without --ipfix.
func (o *ipfixOptions) derive() error {
	if _, err := ipfix.ParseFormat(o.format); err != nil {
		return fmt.Errorf("--ipfix-format: %w", err)
	}
	if len(o.urls) == 0 {
		return nil
	}
	return o.config().Check()
}
