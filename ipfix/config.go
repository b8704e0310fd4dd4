package ipfix

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// Defaults for the zero values of Config.
const (
	DefaultPort          = "4739"
	DefaultActiveTimeout = 60 * time.Second
	DefaultMTU           = 1400
	// TemplateRefresh is how often templates are sent again over UDP, so
	// that a collector that restarted learns them.
	TemplateRefresh = 10 * time.Minute
	// EndedBuffer is the buffer of the exporter's ended-flow subscription
	// (export.Spec.Ended): what overflows it is counted as the exporter's
	// ended_dropped.
	EndedBuffer = 4096
)

// Bounds of --ipfix-mtu: every IPv4 path carries 576 bytes (a message of
// 528 after IPv6 and UDP headers holds any one template or record), and a
// message's length is a 16-bit field.
const (
	MinMTU = 576
	MaxMTU = 65535
)

// Config is the exporter's own settings (the --ipfix-* flags); what it
// reads of the table comes with the export.Env it is made with. The zero
// value of a field means its default.
type Config struct {
	// URLs are the collectors, udp://host[:port] or tcp://host[:port]
	// (port 4739 by default). Every collector gets every record.
	URLs []string
	// Format is FormatIPFIX (the default) or FormatNF9, as --ipfix-format
	// names it ("ipfix", "nf9"; any case): New reads it.
	Format Format
	// ActiveTimeout is how often a long connection is exported with the
	// counters since its last record; default 60 s.
	ActiveTimeout time.Duration
	// MTU is the path MTU to the collectors: a message with its IP and
	// UDP headers fits in it. Default 1400.
	MTU int
	// NATEvents adds RFC 8158 NAT44 session create and delete events.
	NATEvents bool
	// DomainID is the observation domain (IPFIX) or source ID (v9).
	DomainID uint32
}

// collector is one parsed --ipfix URL.
type collector struct {
	url     string // as given, for logs
	network string // "udp" or "tcp"
	addr    string // host:port
}

// Check reports the first bad value of c (a URL, the format, the MTU, the
// active timeout), the error New would return for it: the command line
// checks its flags with it before anything starts.
func (c Config) Check() error {
	_, _, err := c.validate()
	return err
}

// validate returns c with its defaults filled in and its format read, and
// its collectors.
func (c Config) validate() (Config, []collector, error) {
	if len(c.URLs) == 0 {
		return c, nil, errors.New("ipfix: no collector URL")
	}
	f, err := ParseFormat(string(c.Format))
	if err != nil {
		return c, nil, fmt.Errorf("ipfix: %w", err)
	}
	c.Format = f
	if c.NATEvents && c.Format != FormatIPFIX {
		return c, nil, errors.New("ipfix: NAT events are sent in IPFIX only (RFC 8158), not NetFlow v9")
	}
	if c.ActiveTimeout == 0 {
		c.ActiveTimeout = DefaultActiveTimeout
	}
	if c.ActiveTimeout < time.Second {
		return c, nil, fmt.Errorf("ipfix: active timeout %v: want 1s or more", c.ActiveTimeout)
	}
	if c.MTU == 0 {
		c.MTU = DefaultMTU
	}
	if c.MTU < MinMTU || c.MTU > MaxMTU {
		return c, nil, fmt.Errorf("ipfix: MTU %d: want %d to %d", c.MTU, MinMTU, MaxMTU)
	}
	var cols []collector
	for _, s := range c.URLs {
		col, err := parseCollector(s)
		if err != nil {
			return c, nil, err
		}
		cols = append(cols, col)
	}
	return c, cols, nil
}

// Headers between the path MTU and an export message.
const (
	ipv4UDPHeaders = 20 + 8
	ipv6UDPHeaders = 40 + 8
)

// parseCollector reads udp://host[:port] or tcp://host[:port].
func parseCollector(s string) (collector, error) {
	u, err := url.Parse(s)
	if err != nil {
		return collector{}, fmt.Errorf("ipfix: collector URL %q: %w", s, err)
	}
	network := strings.ToLower(u.Scheme)
	if network != "udp" && network != "tcp" {
		return collector{}, fmt.Errorf("ipfix: collector URL %q: scheme %q not supported (want udp:// or tcp://)", s, u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return collector{}, fmt.Errorf("ipfix: collector URL %q has no host", s)
	}
	if u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return collector{}, fmt.Errorf("ipfix: collector URL %q: want only %s://host:port", s, network)
	}
	port := u.Port()
	if port == "" {
		port = DefaultPort
	}
	if p, err := net.LookupPort(network, port); err != nil || p == 0 {
		return collector{}, fmt.Errorf("ipfix: collector URL %q: bad port %q", s, port)
	}
	return collector{url: s, network: network, addr: net.JoinHostPort(host, port)}, nil
}
