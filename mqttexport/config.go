package mqttexport

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/flowtop/flowtop/export"
)

// PasswordEnv is the environment variable read for the broker password
// when Config.PasswordFile is empty.
const PasswordEnv = "FLOWTOP_MQTT_PASSWORD"

// Defaults for the zero values of Config.
const (
	DefaultTopic      = "flowtop"
	DefaultInterval   = 60 * time.Second
	DefaultMaxPayload = 256 << 10
	// DefaultHomeAssistantPrefix is Home Assistant's default discovery
	// prefix.
	DefaultHomeAssistantPrefix = "homeassistant"
	// MaxRequest is the largest request body accepted; larger ones are
	// rejected unread.
	MaxRequest = 4 << 10
	// EndedBuffer is the buffer of the exporter's ended-flow
	// subscription (export.Spec.Ended): a burst the sender has not yet
	// taken waits there, and what overflows it is counted as the
	// exporter's ended_dropped.
	EndedBuffer = 16384
	// defaultMaxEnded is how many ended records wait for the broker at
	// most: a table of 100k flows expiring at once fits (about 20 MB of
	// heap, measured).
	defaultMaxEnded = 100_000
)

// Config is the exporter's own settings (the --mqtt-* flags); what it
// reads of the table comes with the export.Env it is made with. The zero
// value of a field means its default.
type Config struct {
	// URL is the broker: tcp://, ssl://, ws:// or wss:// (mqtt://, mqtts://
	// and tls:// are accepted as aliases). The port defaults to 1883, 8883,
	// 80 or 443 by scheme. The URL must not carry a password.
	URL string
	// User is the login name. The password comes from PasswordFile (first
	// line) or, without it, from the environment variable PasswordEnv.
	User, PasswordFile string
	// CA, Cert and Key are PEM files for TLS: CA verifies the broker
	// (default: the system pool), Cert and Key authenticate flowtop.
	CA, Cert, Key string
	// ClientID defaults to "flowtop-<hostname>".
	ClientID string
	// Topic is the topic prefix, default "flowtop".
	Topic string
	// Node names this machine in topics, default the hostname.
	Node string
	// QoS is used for every publish and subscription (0, 1 or 2). It is
	// used as given: the command line's default is 1.
	QoS byte
	// Interval is the snapshot period, default 60s.
	Interval time.Duration
	// Gzip compresses snapshot and ended bodies, published then under
	// ".../snapshot/gz" and ".../ended/gz".
	Gzip bool
	// Limit keeps the top Limit flows by rate in a snapshot; 0 keeps all.
	Limit int
	// HomeAssistant publishes a Home Assistant MQTT discovery config for
	// the node's sensors (docs/mqtt.md).
	HomeAssistant bool
	// HomeAssistantPrefix is the discovery prefix Home Assistant listens
	// on, default DefaultHomeAssistantPrefix.
	HomeAssistantPrefix string
	// LocalNets are the networks of the local hosts whose traffic the
	// state topic sums and ranks; nil means traffic.DefaultLocalNets.
	LocalNets []netip.Prefix
	// Version is flowtop's version, shown by Home Assistant.
	Version string
	// MaxPayload is the largest message body published; bigger snapshots
	// are split into numbered parts. Default 256 KiB.
	MaxPayload int
}

// settings is a validated Config with everything read from files, and
// the table side it exports.
type settings struct {
	Config
	export.Env
	broker   string // URL with the default port filled in
	password string
	tls      *tls.Config
}

var schemes = map[string]struct {
	tls  bool
	port string
}{
	"tcp": {false, "1883"}, "mqtt": {false, "1883"},
	"ssl": {true, "8883"}, "tls": {true, "8883"}, "mqtts": {true, "8883"},
	"ws": {false, "80"}, "wss": {true, "443"},
}

var errNoWebsockets = errors.New("this build of flowtop has no websockets (the router build leaves them out): use tcp:// or ssl://")

// CheckWebsockets refuses ws:// and wss:// in a build without websockets.
func CheckWebsockets(scheme string) error {
	if s := strings.ToLower(scheme); !Websockets && (s == "ws" || s == "wss") {
		return errNoWebsockets
	}
	return nil
}

// Broker is a broker connection as --mqtt and --remote name it, checked
// and read from its files: the URL without credentials and with its
// default port, the login, and TLS (nil for tcp:// and ws://).
type Broker struct {
	URL, User, Password string
	TLS                 *tls.Config
}

// ParseBroker checks a broker URL (tcp://, ssl://, ws://, wss:// and their
// aliases; never with a password in it) and reads the password file (or
// PasswordEnv) and the TLS files. what names the caller at the start of
// its one-line errors ("mqtt", "remote").
func ParseBroker(what, rawURL, user, passwordFile, ca, cert, key string) (Broker, error) {
	b := Broker{User: user}
	u, err := url.Parse(rawURL)
	if err != nil {
		return b, fmt.Errorf("%s: broker URL %q: %w", what, rawURL, err)
	}
	sch, ok := schemes[strings.ToLower(u.Scheme)]
	if !ok {
		return b, fmt.Errorf("%s: broker URL %q: scheme %q not supported (want %s)", what, rawURL, u.Scheme, SchemeNames)
	}
	if err := CheckWebsockets(u.Scheme); err != nil {
		return b, fmt.Errorf("%s: broker URL %q: %w", what, rawURL, err)
	}
	if u.Hostname() == "" {
		return b, fmt.Errorf("%s: broker URL %q has no host", what, rawURL)
	}
	if _, hasPass := u.User.Password(); hasPass {
		return b, fmt.Errorf("%s: broker URL carries a password: use --mqtt-password-file or %s instead", what, PasswordEnv)
	}
	if u.User != nil && b.User == "" {
		b.User = u.User.Username()
	}
	u.User = nil
	if u.Port() == "" {
		u.Host = net.JoinHostPort(u.Hostname(), sch.port)
	}
	b.URL = u.String()

	switch {
	case passwordFile != "":
		raw, err := os.ReadFile(passwordFile)
		if err != nil {
			return b, fmt.Errorf("%s: password file: %w", what, err)
		}
		b.Password, _, _ = strings.Cut(string(raw), "\n")
		b.Password = strings.TrimRight(b.Password, "\r")
		if b.User == "" {
			return b, fmt.Errorf("%s: password file %s given without a user name", what, passwordFile)
		}
	case b.User != "":
		b.Password = os.Getenv(PasswordEnv)
	}

	if (cert == "") != (key == "") {
		return b, fmt.Errorf("%s: a client certificate needs both --mqtt-cert and --mqtt-key", what)
	}
	if (ca != "" || cert != "") && !sch.tls {
		return b, fmt.Errorf("%s: TLS files given but broker URL %q is not ssl:// or wss://", what, rawURL)
	}
	if sch.tls {
		if b.TLS, err = TLSConfig(ca, cert, key); err != nil {
			return b, err
		}
	}
	return b, nil
}

func (c Config) validate(env export.Env) (*settings, error) {
	s := &settings{Config: c, Env: env}
	if env.Latest == nil {
		return nil, errors.New("mqtt: no snapshot source (Env.Latest is nil)")
	}
	b, err := ParseBroker("mqtt", c.URL, c.User, c.PasswordFile, c.CA, c.Cert, c.Key)
	if err != nil {
		return nil, err
	}
	s.broker, s.User, s.password, s.tls = b.URL, b.User, b.Password, b.TLS

	host, _ := os.Hostname()
	if host == "" {
		host = "localhost"
	}
	if s.ClientID == "" {
		s.ClientID = "flowtop-" + host
	}
	s.Topic = strings.Trim(s.Topic, "/")
	if s.Topic == "" {
		s.Topic = DefaultTopic
	}
	if strings.ContainsAny(s.Topic, "+#") {
		return nil, fmt.Errorf("mqtt: topic prefix %q contains a wildcard", s.Topic)
	}
	if s.Node == "" {
		s.Node = strings.NewReplacer("/", "_", "+", "_", "#", "_").Replace(host)
	}
	if strings.ContainsAny(s.Node, "/+#") || s.Node == "broadcast" {
		return nil, fmt.Errorf("mqtt: node name %q must not contain / + # nor be \"broadcast\"", s.Node)
	}
	s.HomeAssistantPrefix = strings.Trim(s.HomeAssistantPrefix, "/")
	if s.HomeAssistantPrefix == "" {
		s.HomeAssistantPrefix = DefaultHomeAssistantPrefix
	}
	if strings.ContainsAny(s.HomeAssistantPrefix, "+#") {
		return nil, fmt.Errorf("mqtt: Home Assistant discovery prefix %q contains a wildcard", s.HomeAssistantPrefix)
	}
	if s.QoS > 2 {
		return nil, fmt.Errorf("mqtt: QoS %d (want 0, 1 or 2)", s.QoS)
	}
	if s.Interval <= 0 {
		s.Interval = DefaultInterval
	}
	if s.MaxPayload <= 0 {
		s.MaxPayload = DefaultMaxPayload
	}
	if s.Limit < 0 {
		return nil, fmt.Errorf("mqtt: limit %d is negative", s.Limit)
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.Host == "" {
		s.Host = host
	}
	return s, nil
}

// TLSConfig is the TLS configuration of a broker connection: the PEM CA
// file that verifies the broker (the system's CAs when empty) and a client
// certificate and key (none when empty). The remote view shares it.
func TLSConfig(ca, cert, key string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("mqtt: CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("mqtt: CA file %s: no PEM certificate in it", ca)
		}
		cfg.RootCAs = pool
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("mqtt: client certificate %s / key %s: %w", cert, key, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
