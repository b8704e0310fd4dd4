package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/mqttexport"
	"github.com/flowtop/flowtop/report"
)

// options is the parsed command line.
type options struct {
	ipv4, ipv6, tcp, udp, dccp, icmp, sctp bool

	noDNS, noGeoIP, showSrc, bits, update, version, help bool
	interval                                             float64

	netns               string
	once, batch, noUI   bool
	sort                string
	limit               int
	ports, excludePorts []string
	excludeProtos, nets []string
	ignoreControl       bool
	minBytes            string
	minAge              time.Duration
	enableTracking      bool
	configDir, geoipDir string
	geoipLicenseFile    string
	stateDir            string
	keepAccounting      bool
	write               string
	writeInterval       time.Duration

	mqtt   mqttOptions
	remote string // --remote: the broker to read other machines' flows from

	metrics metricsOptions
	ipfix   ipfixOptions

	// Derived.
	filter  conntrack.Filter
	sortKey report.SortKey
	given   map[string]bool // the long names of the flags on the command line
}

type mqttOptions struct {
	url, user, passwordFile, ca, cert, key string
	clientID, topic, node                  string
	qos                                    int
	interval                               time.Duration
	gzip, homeAssistant                    bool
	haPrefix                               string
}

// errHelp is returned by parseOptions for -h: usage was printed.
var errHelp = errors.New("help requested")

// parseOptions parses args (without the program name); -h prints the usage
// to helpOut. Usage errors are returned as errors; the caller exits with
// status 2.
func parseOptions(args []string, helpOut io.Writer) (*options, error) {
	o := &options{}
	fs := o.flagSet()
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if o.help {
		fmt.Fprintf(helpOut, "Usage: flowtop [options]\n\nA top-like view of the connections the kernel's conntrack tracks.\n\nOptions:\n%s", fs.FlagUsages())
		return o, errHelp
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	o.given = map[string]bool{}
	fs.Visit(func(f *pflag.Flag) { o.given[f.Name] = true })
	return o, o.derive()
}

// flagSet declares flowtop's flags, in the order --help lists them.
func (o *options) flagSet() *pflag.FlagSet {
	fs := pflag.NewFlagSet("flowtop", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false

	fs.BoolVarP(&o.ipv4, "ipv4", "4", false, "show IPv4 flows")
	fs.BoolVarP(&o.ipv6, "ipv6", "6", false, "show IPv6 flows")
	fs.BoolVarP(&o.tcp, "tcp", "T", false, "show TCP flows")
	fs.BoolVarP(&o.udp, "udp", "U", false, "show UDP and UDP-Lite flows")
	fs.BoolVarP(&o.dccp, "dccp", "D", false, "show DCCP flows")
	fs.BoolVarP(&o.icmp, "icmp", "I", false, "show ICMP and ICMPv6 flows")
	fs.BoolVarP(&o.sctp, "sctp", "S", false, "show SCTP flows")
	fs.BoolVarP(&o.noDNS, "no-dns", "n", false, "numeric addresses, no reverse DNS")
	fs.BoolVarP(&o.noGeoIP, "no-geoip", "G", false, "no GeoIP lookups")
	fs.BoolVarP(&o.showSrc, "show-src", "s", false, "show the source peer too")
	fs.BoolVarP(&o.bits, "bits", "b", false, "rates in bits per second")
	fs.BoolVarP(&o.update, "update", "u", false, "download the GeoIP databases, then exit")
	fs.Float64VarP(&o.interval, "interval", "t", 1, "refresh interval in seconds (fractions allowed)")
	fs.BoolVarP(&o.version, "version", "v", false, "print the version and exit")
	fs.BoolVarP(&o.help, "help", "h", false, "print this help and exit")

	fs.StringVar(&o.netns, "netns", "", "network namespace to watch: a name under /var/run/netns or a path like /proc/PID/ns/net")
	fs.BoolVar(&o.once, "once", false, "print one JSON snapshot after one interval and exit (-t 0: right after the dump, by bytes)")
	fs.BoolVar(&o.batch, "batch", false, "print one JSON snapshot per interval (NDJSON) until interrupted")
	fs.BoolVar(&o.noUI, "no-ui", false, "run headless (exporters only), logging to stderr")
	fs.StringVar(&o.sort, "sort", "rate", "order of flows in JSON output: rate, bytes, packets or age; --once -t 0 sorts by bytes unless this is given (one dump has no rates)")
	fs.IntVar(&o.limit, "limit", 0, "list at most N flows in JSON output, 0 for all (totals still count all)")
	fs.StringSliceVar(&o.ports, "port", nil, "only flows with one of these ports at either end (comma list; ranges like 1000-2000)")
	fs.StringSliceVar(&o.excludePorts, "exclude-port", nil, "hide flows with one of these ports at either end (comma list; ranges like 1000-2000)")
	fs.StringSliceVar(&o.excludeProtos, "exclude-proto", nil, "hide these IP protocols (numbers or names)")
	fs.StringSliceVar(&o.nets, "net", nil, "only flows with either end inside this CIDR (repeatable)")
	fs.BoolVar(&o.ignoreControl, "ignore-control", false, "hide multicast, broadcast and loopback traffic")
	fs.StringVar(&o.minBytes, "min-bytes", "0", "hide flows that carried fewer bytes (suffixes k, M, G)")
	fs.DurationVar(&o.minAge, "min-age", 0, "hide flows younger than this (e.g. 10s)")
	fs.BoolVar(&o.enableTracking, "enable-tracking", false, "install a minimal nft table that turns conntrack on, removed at exit")
	fs.StringVar(&o.configDir, "config-dir", "", "directory searched first for tcp.conf, udp.conf, geoip.conf")
	fs.StringVar(&o.geoipDir, "geoip-dir", "", "directory searched first for GeoIP .mmdb databases")
	fs.StringVar(&o.geoipLicenseFile, "geoip-license-file", "", "file holding the MaxMind licence key for -u")
	fs.StringVar(&o.stateDir, "state-dir", defaultStateDir, "where the sysctl values to restore are recorded")
	fs.BoolVar(&o.keepAccounting, "keep-accounting", false, "leave nf_conntrack_acct and nf_conntrack_timestamp on at exit (for repeated --once)")
	fs.StringVar(&o.write, "write", "", "write the JSON snapshot to FILE (atomically) every --write-interval")
	fs.DurationVar(&o.writeInterval, "write-interval", 10*time.Second, "period of --write")

	fs.StringVar(&o.mqtt.url, "mqtt", "", "publish to this MQTT broker (tcp://, ssl://, ws://, wss://)")
	fs.StringVar(&o.mqtt.user, "mqtt-user", "", "MQTT user name")
	fs.StringVar(&o.mqtt.passwordFile, "mqtt-password-file", "", "file holding the MQTT password (or set FLOWTOP_MQTT_PASSWORD)")
	fs.StringVar(&o.mqtt.ca, "mqtt-ca", "", "CA certificate for MQTT over TLS")
	fs.StringVar(&o.mqtt.cert, "mqtt-cert", "", "client certificate for MQTT over TLS")
	fs.StringVar(&o.mqtt.key, "mqtt-key", "", "client key for MQTT over TLS")
	fs.StringVar(&o.mqtt.clientID, "mqtt-client-id", "", "MQTT client id (default flowtop-<hostname>)")
	fs.StringVar(&o.mqtt.topic, "mqtt-topic", "flowtop", "MQTT topic prefix")
	fs.StringVar(&o.mqtt.node, "mqtt-node", "", "node name in MQTT topics (default the hostname)")
	fs.IntVar(&o.mqtt.qos, "mqtt-qos", 1, "MQTT quality of service (0, 1 or 2)")
	fs.DurationVar(&o.mqtt.interval, "mqtt-interval", 60*time.Second, "period of MQTT snapshots (e.g. 30s, 5m)")
	fs.BoolVar(&o.mqtt.gzip, "mqtt-gzip", false, "gzip MQTT snapshot payloads")
	fs.BoolVar(&o.mqtt.homeAssistant, "mqtt-homeassistant", false, "publish Home Assistant MQTT discovery of the node's sensors")
	fs.StringVar(&o.mqtt.haPrefix, "mqtt-homeassistant-prefix", mqttexport.DefaultHomeAssistantPrefix, "Home Assistant's MQTT discovery prefix (with --mqtt-homeassistant)")
	fs.StringVar(&o.remote, "remote", "", "show the flows other machines publish to the MQTT broker at `URL` instead of the local kernel's (--mqtt-node NAME, or + for all)")
	addMetricsFlags(fs, &o.metrics)
	addIPFIXFlags(fs, &o.ipfix)
	return fs
}

// minInterval is the shortest -t but 0: 20 dumps and documents a second.
const minInterval = 0.05

// derive checks values and builds the table filter.
func (o *options) derive() error {
	// Written so that NaN, which compares false to everything, fails.
	if !(o.interval >= 0 && o.interval <= 3600) {
		return fmt.Errorf("-t/--interval %g: want %g to 3600 seconds", o.interval, minInterval)
	}
	if o.interval == 0 && !o.once {
		return errors.New("-t 0 makes sense only with --once")
	}
	if o.interval > 0 && o.interval < minInterval {
		return fmt.Errorf("-t/--interval %g: want at least %g seconds (or 0 with --once)", o.interval, minInterval)
	}
	if o.once && o.batch {
		return errors.New("--once and --batch exclude each other")
	}
	if o.limit < 0 {
		return fmt.Errorf("--limit %d: want 0 or more", o.limit)
	}
	var err error
	if o.sortKey, err = report.ParseSortKey(o.sort); err != nil {
		return fmt.Errorf("--sort: %w", err)
	}
	if o.singleDump() && !o.given["sort"] {
		// One dump has no rates: by rate, the order would be the IDs'.
		o.sortKey = report.SortBytes
	}
	if o.filter, err = o.tableFilter(); err != nil {
		return err
	}
	if o.given["remote"] {
		return o.checkRemote()
	}
	if o.mqtt.qos < 0 || o.mqtt.qos > 2 {
		return fmt.Errorf("--mqtt-qos %d: want 0, 1 or 2", o.mqtt.qos)
	}
	if o.mqtt.interval <= 0 {
		return fmt.Errorf("--mqtt-interval %v: want a positive duration", o.mqtt.interval)
	}
	if o.writeInterval <= 0 {
		return fmt.Errorf("--write-interval %v: want a positive duration", o.writeInterval)
	}
	if err := o.metrics.check(o.once); err != nil {
		return err
	}
	if err := o.ipfix.derive(); err != nil {
		return err
	}
	return o.checkOutputs() // last: it tries to create a file
}

// tableFilter builds the table filter from the filter flags.
func (o *options) tableFilter() (conntrack.Filter, error) {
	var err error
	f := conntrack.Filter{IPv4: o.ipv4, IPv6: o.ipv6}
	// flowtop's rule: any family flag replaces "both", any protocol flag
	// replaces "TCP only".
	if !o.ipv4 && !o.ipv6 {
		f.IPv4, f.IPv6 = true, true
	}
	for _, p := range []struct {
		on     bool
		protos []conntrack.Proto
	}{
		{o.tcp, []conntrack.Proto{conntrack.ProtoTCP}},
		{o.udp, []conntrack.Proto{conntrack.ProtoUDP, conntrack.ProtoUDPLite}},
		{o.dccp, []conntrack.Proto{conntrack.ProtoDCCP}},
		{o.icmp, []conntrack.Proto{conntrack.ProtoICMP, conntrack.ProtoICMPv6}},
		{o.sctp, []conntrack.Proto{conntrack.ProtoSCTP}},
	} {
		if p.on {
			for _, proto := range p.protos {
				f.Protos.Add(proto)
			}
		}
	}
	if f.Protos.Empty() {
		f.Protos.Add(conntrack.ProtoTCP)
	}
	if f.Ports, err = parsePorts("--port", o.ports); err != nil {
		return conntrack.Filter{}, err
	}
	if f.ExcludePorts, err = parsePorts("--exclude-port", o.excludePorts); err != nil {
		return conntrack.Filter{}, err
	}
	for _, s := range o.excludeProtos {
		p, err := parseProto(s)
		if err != nil {
			return conntrack.Filter{}, fmt.Errorf("--exclude-proto: %w", err)
		}
		f.ExcludeProtos.Add(p)
	}
	for _, s := range o.nets {
		pfx, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return conntrack.Filter{}, fmt.Errorf("--net %q: want a CIDR like 192.168.1.0/24", s)
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		f.Nets = append(f.Nets, pfx.Masked())
	}
	f.IgnoreControl = o.ignoreControl
	if f.MinBytes, err = parseBytes(o.minBytes); err != nil {
		return conntrack.Filter{}, fmt.Errorf("--min-bytes: %w", err)
	}
	if o.minAge < 0 {
		return conntrack.Filter{}, fmt.Errorf("--min-age %v: want a positive duration", o.minAge)
	}
	f.MinAge = o.minAge
	return f, nil
}

// checkOutputs checks what --netns, --no-ui, --mqtt and --write name
// before anything starts: empty values (which would mean "not given"), a
// daemon with nothing to export to, a malformed broker URL, a file that
// cannot be written.
func (o *options) checkOutputs() error {
	for _, f := range []struct{ name, value, want string }{
		{"netns", o.netns, "a namespace name or path"},
		{"write", o.write, "a file name"},
		{"mqtt", o.mqtt.url, "a broker URL"},
	} {
		if o.given[f.name] && f.value == "" {
			return fmt.Errorf("--%s \"\": want %s", f.name, f.want)
		}
	}
	if o.noUI && o.mqtt.url == "" && o.write == "" && len(o.ipfix.urls) == 0 && o.metrics.listen == "" {
		return errors.New("--no-ui needs an exporter: --mqtt URL, --write FILE, --ipfix URL or --metrics-listen ADDR")
	}
	if o.mqtt.url != "" {
		if err := checkMQTTURL(o.mqtt.url); err != nil {
			return err
		}
		for _, f := range []struct{ name, value string }{
			{"mqtt-topic", o.mqtt.topic}, {"mqtt-homeassistant-prefix", o.mqtt.haPrefix},
		} {
			if strings.ContainsAny(f.value, "+#") {
				return fmt.Errorf("--%s %q: an MQTT wildcard (+ or #) cannot be part of a topic", f.name, f.value)
			}
		}
	}
	if o.write != "" {
		if err := checkWritable(o.write); err != nil {
			return err
		}
	}
	return nil
}

// intervalDuration is -t as a duration.
func (o *options) intervalDuration() time.Duration {
	return time.Duration(o.interval * float64(time.Second))
}

func parsePorts(flag string, list []string) ([]uint16, error) {
	var ports []uint16
	for _, s := range list {
		s = strings.TrimSpace(s)
		if lo, hi, ok := strings.Cut(s, "-"); ok {
			a, err1 := strconv.ParseUint(lo, 10, 16)
			b, err2 := strconv.ParseUint(hi, 10, 16)
			if err1 != nil || err2 != nil || a > b || b-a > 4096 {
				return nil, fmt.Errorf("%s %q: want a port range like 1000-1010 (at most 4096 ports)", flag, s)
			}
			for p := a; p <= b; p++ {
				ports = append(ports, uint16(p))
			}
			continue
		}
		p, err := strconv.ParseUint(s, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("%s %q: want a port number 0-65535", flag, s)
		}
		ports = append(ports, uint16(p))
	}
	return ports, nil
}

var protoByName = map[string]conntrack.Proto{
	"icmp": conntrack.ProtoICMP, "tcp": conntrack.ProtoTCP, "udp": conntrack.ProtoUDP,
	"dccp": conntrack.ProtoDCCP, "gre": conntrack.ProtoGRE, "icmpv6": conntrack.ProtoICMPv6,
	"ipv6-icmp": conntrack.ProtoICMPv6, "sctp": conntrack.ProtoSCTP, "udplite": conntrack.ProtoUDPLite,
	"esp": 50, "ah": 51,
}

func parseProto(s string) (conntrack.Proto, error) {
	s = strings.ToLower(strings.TrimSpace(s))
	if p, ok := protoByName[s]; ok {
		return p, nil
	}
	n, err := strconv.ParseUint(s, 10, 8)
	if err != nil {
		return 0, fmt.Errorf("unknown protocol %q (a number 0-255 or tcp, udp, udplite, icmp, icmpv6, sctp, dccp, gre, esp, ah)", s)
	}
	return conntrack.Proto(n), nil
}

// parseBytes reads a byte count with an optional k/M/G suffix (powers of
// 1000, as flowtop prints them) or Ki/Mi/Gi (powers of 1024).
func parseBytes(s string) (uint64, error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), "B")
	mult := uint64(1)
	for _, u := range []struct {
		suffix string
		mult   uint64
	}{{"Ki", 1 << 10}, {"Mi", 1 << 20}, {"Gi", 1 << 30}, {"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}} {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSuffix(s, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q: want a byte count like 1000, 10k or 5M", s)
	}
	return n * mult, nil
}

// mqttSchemes are the URL schemes mqttexport accepts.
var mqttSchemes = map[string]bool{"tcp": true, "mqtt": true, "ssl": true, "tls": true, "mqtts": true, "ws": true, "wss": true}

// checkMQTTURL checks the broker URL of --mqtt before anything starts, so
// that a bad one is a usage error.
func checkMQTTURL(s string) error { return checkBrokerURL("--mqtt", s) }

// checkBrokerURL checks the broker URL of flag (--mqtt, --remote).
func checkBrokerURL(flag, s string) error {
	u, err := url.Parse(s)
	if err != nil {
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err // without the URL, which may hold a password
		}
		return fmt.Errorf("%s: %v (want a URL like tcp://broker:1883)", flag, err)
	}
	if _, ok := u.User.Password(); ok {
		return fmt.Errorf("%s: the URL carries a password: use --mqtt-password-file or %s instead", flag, mqttexport.PasswordEnv)
	}
	if !mqttSchemes[strings.ToLower(u.Scheme)] {
		return fmt.Errorf("%s %q: want a %s URL", flag, s, mqttexport.SchemeNames)
	}
	if err := mqttexport.CheckWebsockets(u.Scheme); err != nil {
		return fmt.Errorf("%s %q: %w", flag, s, err)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%s %q: no broker host", flag, s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("%s %q: port %s: want 1 to 65535", flag, s, p)
		}
	}
	return nil
}

// checkWritable checks at start that --write can create its file: the
// directory exists and takes a new file (the document is written to a
// temporary file there, then renamed).
func checkWritable(path string) error {
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		return fmt.Errorf("--write %s: is a directory, want a file name", path)
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("--write %s: directory %s: %v", path, dir, unwrapPath(err))
	}
	if !fi.IsDir() {
		return fmt.Errorf("--write %s: %s is not a directory", path, dir)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".check*")
	if err != nil {
		return fmt.Errorf("--write %s: cannot create a file in %s: %v", path, dir, unwrapPath(err))
	}
	f.Close()
	os.Remove(f.Name())
	return nil
}

// unwrapPath drops the operation and path of a *fs.PathError, which the
// message names already.
func unwrapPath(err error) error {
	var perr *fs.PathError
	if errors.As(err, &perr) {
		return perr.Err
	}
	return err
}
