package remote

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/flowtop/flowtop/mqttexport"
	"github.com/flowtop/flowtop/report"
)

// Defaults for the zero values of Config.
const (
	DefaultLease         = 10 * time.Second
	DefaultInterval      = time.Second
	DefaultNodesInterval = 10 * time.Second
	DefaultWatchLimit    = 200
	DefaultMaxMessage    = 16 << 20
	DefaultMaxNodes      = 1024
	DefaultMaxFlows      = 500_000
	DefaultPartTimeout   = 5 * time.Second
)

// Config says which broker to read and how. The broker fields have the
// meaning and the defaults of mqttexport.Config (the --mqtt-* options);
// the zero value of any other field means its default.
type Config struct {
	// URL is the broker: tcp://, ssl://, ws:// or wss:// (mqtt://, mqtts://
	// and tls:// are aliases), without a password.
	URL string
	// User is the login name; the password is the first line of
	// PasswordFile or, without one, $FLOWTOP_MQTT_PASSWORD.
	User, PasswordFile string
	// CA verifies the broker (default: the system pool); Cert and Key
	// authenticate the viewer.
	CA, Cert, Key string
	// ClientID defaults to "flowtop-view-<hostname>-<random>": two clients
	// with one id push each other off the broker, and a laptop may run
	// several viewers. It also names this viewer's watch leases.
	ClientID string
	// Topic is the prefix the routers publish under, default "flowtop".
	Topic string
	// QoS of the subscriptions and of the requests (0, 1 or 2), used as
	// given: the command line's default is 1.
	QoS byte
	// Logger defaults to discarding.
	Logger *slog.Logger

	// Interval is the period asked of watched nodes (the viewer's -t),
	// default 1 s; the router publishes no faster than every 0.5 s.
	Interval time.Duration
	// NodesInterval is the period asked by WatchSummary, default 10 s.
	NodesInterval time.Duration
	// Lease is how long one watch request holds, default 10 s; it is
	// renewed every Lease/3 while the node is watched.
	Lease time.Duration
	// Limit is how many flows are asked for: in watch leases (default
	// 200) and by FetchOnce (default: the node's --limit).
	Limit int
	// Sort orders the flows a watch lease asks for, default rate.
	Sort report.SortKey
	// Filter, when set, is sent with FetchOnce's request (the node keeps
	// only the flows where the text occurs).
	Filter string

	// MaxMessage is the largest message body read, and the most a gzip
	// body may inflate to, default 16 MiB. Nodes split their documents
	// into parts of 256 KiB.
	MaxMessage int
	// MaxNodes bounds the nodes tracked, default 1024.
	MaxNodes int
	// MaxFlows bounds the flows held for all nodes together (shown and
	// being joined), default 500,000 (some 250 MB with their names).
	MaxFlows int
	// PartTimeout is how long the parts of a document are awaited after
	// the last one came: then what arrived is shown, flagged incomplete.
	// Default 5 s.
	PartTimeout time.Duration
}

// settings is a checked Config with the files read.
type settings struct {
	Config
	broker   string // the URL with the default port filled in
	password string
	tls      *tls.Config
}

// validate checks c and reads the files it names. Errors are one line and
// name the value or file at fault.
func (c Config) validate() (*settings, error) {
	s := &settings{Config: c}
	b, err := mqttexport.ParseBroker("remote", c.URL, c.User, c.PasswordFile, c.CA, c.Cert, c.Key)
	if err != nil {
		return nil, err
	}
	s.broker, s.User, s.password, s.tls = b.URL, b.User, b.Password, b.TLS

	if s.ClientID == "" {
		host, _ := os.Hostname()
		if host == "" {
			host = "localhost"
		}
		var r [3]byte
		rand.Read(r[:])
		s.ClientID = "flowtop-view-" + host + "-" + hex.EncodeToString(r[:])
	}
	s.Topic = strings.Trim(s.Topic, "/")
	if s.Topic == "" {
		s.Topic = mqttexport.DefaultTopic
	}
	if strings.ContainsAny(s.Topic, "+#") {
		return nil, fmt.Errorf("remote: topic prefix %q contains a wildcard", s.Topic)
	}
	if s.QoS > 2 {
		return nil, fmt.Errorf("remote: QoS %d (want 0, 1 or 2)", s.QoS)
	}
	if s.Interval <= 0 {
		s.Interval = DefaultInterval
	}
	if s.Lease <= 0 {
		s.Lease = DefaultLease
	}
	if s.NodesInterval <= 0 {
		s.NodesInterval = DefaultNodesInterval
	}
	if s.Limit < 0 {
		return nil, fmt.Errorf("remote: limit %d is negative", s.Limit)
	}
	if s.Sort == "" {
		s.Sort = report.SortRate
	}
	if _, err := report.ParseSortKey(string(s.Sort)); err != nil {
		return nil, fmt.Errorf("remote: %w", err)
	}
	if s.MaxMessage <= 0 {
		s.MaxMessage = DefaultMaxMessage
	}
	if s.MaxNodes <= 0 {
		s.MaxNodes = DefaultMaxNodes
	}
	if s.MaxFlows <= 0 {
		s.MaxFlows = DefaultMaxFlows
	}
	if s.PartTimeout <= 0 {
		s.PartTimeout = DefaultPartTimeout
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	return s, nil
}
