package rdns

import (
	"net"
	"time"
)

// Defaults for the zero fields of Config.
const (
	DefaultWorkers     = 8
	DefaultTimeout     = 2 * time.Second
	DefaultTTL         = 10 * time.Minute
	DefaultNegativeTTL = time.Minute
	DefaultMaxEntries  = 65536
	DefaultQueueLen    = 1024
)

// Config tunes a Cache. The zero value is usable: zero fields take the
// defaults above.
type Config struct {
	// Resolver does the lookups. Nil means the pure Go resolver reading
	// /etc/hosts and /etc/resolv.conf; it is preferred to cgo because it
	// honours the per-lookup timeout and does not tie up OS threads.
	// The cache uses a copy whose connections close when a lookup is
	// cancelled, so that Close does not wait for running lookups.
	Resolver *net.Resolver

	Workers     int           // concurrent lookups
	Timeout     time.Duration // hard limit on one lookup
	TTL         time.Duration // how long a name is kept
	NegativeTTL time.Duration // how long a failure or a missing name is kept
	MaxEntries  int           // bound on cached addresses; the least recently used go first

	// QueueLen bounds the lookups waiting for a worker. When the queue is
	// full a new request is dropped (counted in Stats.Dropped) and asked
	// again on a later Name call.
	QueueLen int

	now func() time.Time // clock, replaced in tests
}

// withDefaults returns cfg with its zero fields filled in.
func (cfg Config) withDefaults() Config {
	if cfg.Resolver == nil {
		cfg.Resolver = &net.Resolver{PreferGo: true}
	}
	if cfg.Workers <= 0 {
		cfg.Workers = DefaultWorkers
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.NegativeTTL <= 0 {
		cfg.NegativeTTL = DefaultNegativeTTL
	}
	if cfg.MaxEntries <= 0 {
		cfg.MaxEntries = DefaultMaxEntries
	}
	if cfg.QueueLen <= 0 {
		cfg.QueueLen = DefaultQueueLen
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	return cfg
}
