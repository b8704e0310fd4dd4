package main

import (
	"bytes"
	"errors"
	"github.com/flowtop/flowtop/conntrack/kernel"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/report"
)

func protoSet(ps ...conntrack.Proto) conntrack.ProtoSet {
	var s conntrack.ProtoSet
	for _, p := range ps {
		s.Add(p)
	}
	return s
}

var prefixEqual = cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })

// TestParseOptionsFilter checks the table filter that flags build,
// including netsniff-ng flowtop's protocol-mask rule: any family flag
// replaces "both families", any protocol flag replaces "TCP only".
func TestParseOptionsFilter(t *testing.T) {
	const (
		tcp, udp, udplite = conntrack.ProtoTCP, conntrack.ProtoUDP, conntrack.ProtoUDPLite
		icmp, icmp6       = conntrack.ProtoICMP, conntrack.ProtoICMPv6
		dccp, sctp        = conntrack.ProtoDCCP, conntrack.ProtoSCTP
	)
	all := protoSet(tcp, udp, udplite, dccp, icmp, icmp6, sctp)
	tests := []struct {
		name string
		args []string
		want conntrack.Filter
	}{
		{"default is TCP over both families", nil,
			conntrack.Filter{IPv4: true, IPv6: true, Protos: protoSet(tcp)}},
		{"bundled -46UTDISs", []string{"-46UTDISs"},
			conntrack.Filter{IPv4: true, IPv6: true, Protos: all}},
		{"separate short flags", []string{"-4", "-6", "-U", "-T", "-D", "-I", "-S"},
			conntrack.Filter{IPv4: true, IPv6: true, Protos: all}},
		{"long names", []string{"--ipv4", "--ipv6", "--tcp", "--udp", "--dccp", "--icmp", "--sctp"},
			conntrack.Filter{IPv4: true, IPv6: true, Protos: all}},
		{"-U alone is UDP and UDP-Lite only", []string{"-U"},
			conntrack.Filter{IPv4: true, IPv6: true, Protos: protoSet(udp, udplite)}},
		{"-4 alone is IPv4 only, TCP", []string{"-4"},
			conntrack.Filter{IPv4: true, Protos: protoSet(tcp)}},
		{"-6 alone is IPv6 only, TCP", []string{"-6"},
			conntrack.Filter{IPv6: true, Protos: protoSet(tcp)}},
		{"-I is ICMP and ICMPv6", []string{"-I"},
			conntrack.Filter{IPv4: true, IPv6: true, Protos: protoSet(icmp, icmp6)}},
		{"-D and -S", []string{"-DS"},
			conntrack.Filter{IPv4: true, IPv6: true, Protos: protoSet(dccp, sctp)}},
		{"-6I bundled", []string{"-6I"},
			conntrack.Filter{IPv6: true, Protos: protoSet(icmp, icmp6)}},
		{"ports, lists and ranges", []string{"--port", "80,443", "--port", "1000-1002", "--exclude-port=22"},
			conntrack.Filter{IPv4: true, IPv6: true, Protos: protoSet(tcp),
				Ports: []uint16{80, 443, 1000, 1001, 1002}, ExcludePorts: []uint16{22}}},
		{"exclude-proto by name and number", []string{"-TU", "--exclude-proto", "udp,1"},
			conntrack.Filter{IPv4: true, IPv6: true, Protos: protoSet(tcp, udp, udplite),
				ExcludeProtos: protoSet(udp, icmp)}},
		{"exclude-proto names", []string{"--exclude-proto=ICMPv6,udplite,gre,esp,ah"},
			conntrack.Filter{IPv4: true, IPv6: true, Protos: protoSet(tcp),
				ExcludeProtos: protoSet(icmp6, udplite, conntrack.ProtoGRE, 50, 51)}},
		{"net CIDRs and a bare address", []string{"--net", "192.0.2.77/24", "--net=2001:db8::1"},
			conntrack.Filter{IPv4: true, IPv6: true, Protos: protoSet(tcp), Nets: []netip.Prefix{
				netip.MustParsePrefix("192.0.2.0/24"), netip.MustParsePrefix("2001:db8::1/128")}}},
		{"min-bytes with suffix", []string{"--min-bytes", "10k"},
			conntrack.Filter{IPv4: true, IPv6: true, Protos: protoSet(tcp), MinBytes: 10000}},
		{"min-bytes binary suffix", []string{"--min-bytes=2Mi"},
			conntrack.Filter{IPv4: true, IPv6: true, Protos: protoSet(tcp), MinBytes: 2 << 20}},
		{"min-age and ignore-control", []string{"--min-age", "10s", "--ignore-control"},
			conntrack.Filter{IPv4: true, IPv6: true, Protos: protoSet(tcp), MinAge: 10 * time.Second,
				IgnoreControl: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseOptions(tt.args, io.Discard)
			if err != nil {
				t.Fatalf("parseOptions(%q): %v", tt.args, err)
			}
			if diff := cmp.Diff(tt.want, o.filter, prefixEqual); diff != "" {
				t.Errorf("parseOptions(%q) filter (-want +got):\n%s", tt.args, diff)
			}
		})
	}
}

// TestParseOptionsBundling checks that every flag of a bundle is set,
// the display ones (-s) included.
func TestParseOptionsBundling(t *testing.T) {
	o, err := parseOptions([]string{"-46UTDISsnGb"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	got := []bool{o.ipv4, o.ipv6, o.udp, o.tcp, o.dccp, o.icmp, o.sctp, o.showSrc, o.noDNS, o.noGeoIP, o.bits}
	for i, v := range got {
		if !v {
			t.Errorf("flag %d of -46UTDISsnGb not set: %+v", i, got)
		}
	}
	if o.update || o.version || o.help {
		t.Errorf("-u/-v/-h set by a bundle without them")
	}
}

func TestParseOptionsInterval(t *testing.T) {
	tests := []struct {
		args []string
		want time.Duration
	}{
		{nil, time.Second},
		{[]string{"-t", "0.5"}, 500 * time.Millisecond},
		{[]string{"-t0.5"}, 500 * time.Millisecond},
		{[]string{"--interval=0.25"}, 250 * time.Millisecond},
		{[]string{"--interval", "2"}, 2 * time.Second},
		{[]string{"-4t", "3"}, 3 * time.Second},
		{[]string{"--once", "-t", "0"}, 0},
	}
	for _, tt := range tests {
		o, err := parseOptions(tt.args, io.Discard)
		if err != nil {
			t.Errorf("parseOptions(%q): %v", tt.args, err)
			continue
		}
		if got := o.intervalDuration(); got != tt.want {
			t.Errorf("parseOptions(%q) interval = %v, want %v", tt.args, got, tt.want)
		}
	}
}

// TestParseOptionsSort: --once -t 0 lists by bytes unless --sort is
// given, since every rate is 0 after a single dump.
func TestParseOptionsSort(t *testing.T) {
	for _, c := range []struct {
		args []string
		want report.SortKey
	}{
		{nil, report.SortRate},
		{[]string{"--once"}, report.SortRate},
		{[]string{"--once", "-t", "0"}, report.SortBytes},
		{[]string{"--once", "-t", "0", "--limit", "10"}, report.SortBytes},
		{[]string{"--once", "-t", "0", "--sort", "rate"}, report.SortRate},
		{[]string{"--once", "-t", "0", "--sort=age"}, report.SortAge},
		{[]string{"--batch", "--sort", "packets"}, report.SortPackets},
	} {
		o, err := parseOptions(c.args, io.Discard)
		if err != nil {
			t.Errorf("parseOptions(%q): %v", c.args, err)
			continue
		}
		if o.sortKey != c.want {
			t.Errorf("parseOptions(%q) sort = %q, want %q", c.args, o.sortKey, c.want)
		}
	}
}

func TestParseOptionsModes(t *testing.T) {
	o, err := parseOptions([]string{"--batch", "--netns", "/proc/1/ns/net", "--sort", "bytes", "--limit", "5",
		"--state-dir", "/tmp/x", "--enable-tracking"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !o.batch || o.once || o.netns != "/proc/1/ns/net" || o.sortKey != report.SortBytes || o.limit != 5 ||
		o.stateDir != "/tmp/x" || !o.enableTracking {
		t.Errorf("got %+v", o)
	}
	o, err = parseOptions(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.sortKey != report.SortRate || o.stateDir != kernel.DefaultStateDir || o.limit != 0 {
		t.Errorf("defaults: sort %q state dir %q limit %d", o.sortKey, o.stateDir, o.limit)
	}
}

// TestParseOptionsErrors checks usage errors: each is an error from
// parseOptions and exit status 2 with a message naming the culprit from run.
func TestParseOptionsErrors(t *testing.T) {
	tests := []struct {
		args    []string
		mention string // the message names this
	}{
		{[]string{"-x"}, "x"},
		{[]string{"-4x"}, "x"},
		{[]string{"--bogus"}, "bogus"},
		{[]string{"-t", "0"}, "-t"},
		{[]string{"--batch", "-t", "0"}, "-t"},
		{[]string{"-t", "-1"}, "-1"},
		{[]string{"-t", "abc"}, "abc"},
		{[]string{"--once", "--batch"}, "--batch"},
		{[]string{"--mqtt", "tcp://b", "--mqtt-homeassistant-prefix", "ha/#"}, "--mqtt-homeassistant-prefix \"ha/#\": an MQTT wildcard"},
		{[]string{"--mqtt", "tcp://b", "--mqtt-topic", "a/+/b"}, "--mqtt-topic \"a/+/b\": an MQTT wildcard"},
		{[]string{"--remote", "tcp://b", "--mqtt-topic", "#"}, "--mqtt-topic \"#\": an MQTT wildcard"},
		{[]string{"--sort", "size"}, "size"},
		{[]string{"--limit", "-3"}, "--limit"},
		{[]string{"--port", "70000"}, "70000"},
		{[]string{"--port", "9-3"}, "9-3"},
		{[]string{"--exclude-proto", "bogus"}, "bogus"},
		{[]string{"--exclude-proto", "256"}, "256"},
		{[]string{"--net", "not-a-net"}, "not-a-net"},
		{[]string{"--min-bytes", "lots"}, "lots"},
		{[]string{"--min-age", "-5s"}, "--min-age"},
		{[]string{"stray"}, "stray"},
		// Intervals: NaN and infinities, and more than 20 refreshes a second.
		{[]string{"-t", "NaN"}, "NaN"},
		{[]string{"--once", "-t", "NaN"}, "NaN"},
		{[]string{"-t", "Inf"}, "Inf"},
		{[]string{"-t", "-Inf"}, "Inf"},
		{[]string{"--once", "-t", "0.0001"}, "0.0001"},
		{[]string{"--batch", "-t", "0.049"}, "0.049"},
		// Empty values that would mean "not given".
		{[]string{"--netns", ""}, "--netns"},
		{[]string{"--netns="}, "--netns"},
		{[]string{"--write", ""}, "--write"},
		{[]string{"--mqtt="}, "--mqtt"},
		// --write must be able to write, from the start.
		{[]string{"--write", "/nonexistent-flowtop-dir/flows.json"}, "/nonexistent-flowtop-dir"},
		{[]string{"--write", "/sys/flowtop-flows.json"}, "/sys"},
		{[]string{"--write", t.TempDir()}, "directory"},
		// Bad broker URLs.
		{[]string{"--mqtt", "tcp://127.0.0.1:70000"}, "70000"},
		{[]string{"--no-ui", "--mqtt", "tcp://127.0.0.1:65536"}, "65536"},
		{[]string{"--mqtt", "tcp://127.0.0.1:0"}, "port 0"},
		{[]string{"--mqtt", "tcp://127.0.0.1:mqtt"}, "mqtt"},
		{[]string{"--mqtt", "http://127.0.0.1"}, "http"},
		{[]string{"--mqtt", "127.0.0.1:1883"}, "want a URL like tcp://"},
		{[]string{"--mqtt", "tcp://:1883"}, "host"},
		{[]string{"--mqtt", "tcp://user:secret@127.0.0.1"}, "password"},
		// Headless needs something to export to.
		{[]string{"--no-ui"}, "--no-ui"},
		{[]string{"--no-ui", "-t", "5", "--limit", "10"}, "--mqtt"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			if _, err := parseOptions(tt.args, io.Discard); err == nil {
				t.Fatalf("parseOptions(%q) = nil error", tt.args)
			}
			var stdout, stderr bytes.Buffer
			if code := run(tt.args, &stdout, &stderr); code != 2 {
				t.Errorf("run(%q) = %d, want 2", tt.args, code)
			}
			if stdout.Len() != 0 {
				t.Errorf("run(%q) wrote to stdout: %q", tt.args, stdout.String())
			}
			// One line says what is wrong; a "Try 'flowtop --help'" hint
			// may follow it, nothing else.
			lines := strings.Split(strings.TrimSuffix(stderr.String(), "\n"), "\n")
			if !strings.HasPrefix(lines[0], "flowtop: ") || !strings.Contains(lines[0], tt.mention) {
				t.Errorf("run(%q) first line %q: want \"flowtop: ...\" naming %q", tt.args, lines[0], tt.mention)
			}
			if len(lines) > 2 || len(lines) == 2 && !strings.Contains(lines[1], "--help") {
				t.Errorf("run(%q) stderr has more than the error and a --help hint:\n%s", tt.args, stderr.String())
			}
		})
	}
}

func TestRunHelpAndVersion(t *testing.T) {
	for _, arg := range []string{"-h", "--help"} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{arg}, &stdout, &stderr); code != 0 {
			t.Errorf("run(%s) = %d, want 0", arg, code)
		}
		usage := stdout.String() + stderr.String()
		for _, want := range []string{"Usage: flowtop", "-4, --ipv4", "-t, --interval", "--netns", "--once", "--batch",
			"--enable-tracking", "--once -t 0 sorts by bytes", "ranges like 1000-2000", "0 for all"} {
			if !strings.Contains(usage, want) {
				t.Errorf("run(%s) usage lacks %q:\n%s", arg, want, usage)
			}
		}
	}
	if _, err := parseOptions([]string{"-h"}, io.Discard); !errors.Is(err, errHelp) {
		t.Errorf("parseOptions(-h) error = %v, want errHelp", err)
	}
	for _, arg := range []string{"-v", "--version"} {
		var stdout, stderr bytes.Buffer
		if code := run([]string{arg}, &stdout, &stderr); code != 0 {
			t.Errorf("run(%s) = %d, want 0", arg, code)
		}
		if got, want := stdout.String(), "flowtop "+version+"\n"; got != want {
			t.Errorf("run(%s) stdout = %q, want %q", arg, got, want)
		}
		if stderr.Len() != 0 {
			t.Errorf("run(%s) stderr = %q", arg, stderr.String())
		}
	}
}

func TestWantsDNS(t *testing.T) {
	for _, c := range []struct {
		args []string
		want bool
	}{
		{nil, true},
		{[]string{"-n"}, false},
		{[]string{"--batch", "-t", "0.5"}, true},
		{[]string{"--once"}, true},
		{[]string{"--once", "-t", "0"}, false}, // no time for an answer
	} {
		o, err := parseOptions(c.args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if got := o.wantsDNS(); got != c.want {
			t.Errorf("%q: reverse DNS %v, want %v", c.args, got, c.want)
		}
	}
}

// TestParseOptionsRemote: --remote takes the broker options and the
// screen's own, and refuses, with one line naming it, every option that
// means the local kernel or an export.
func TestParseOptionsRemote(t *testing.T) {
	o, err := parseOptions([]string{"--remote", "tcp://broker:1883", "--mqtt-node", "+", "--mqtt-topic", "fleet",
		"--mqtt-user", "viewer", "-t", "2", "--limit", "50", "--sort", "bytes", "-n", "-b"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg := o.remoteConfig()
	if cfg.URL != "tcp://broker:1883" || cfg.Topic != "fleet" || cfg.User != "viewer" || cfg.Interval != 2*time.Second ||
		cfg.Limit != 50 || cfg.Sort != report.SortBytes || o.mqtt.node != "+" {
		t.Errorf("remote config %+v, node %q", cfg, o.mqtt.node)
	}
	if o, err := parseOptions([]string{"--remote", "tcp://b", "--once"}, io.Discard); err != nil || o.interval != 2 {
		t.Errorf("--remote --once without -t: err %v, interval %g; want the node list to wait 2 s", err, o.interval)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--remote", ""}, `--remote "": want a broker URL`},
		{[]string{"--remote", "http://b"}, `--remote "http://b": want a tcp://`},
		{[]string{"--remote", "tcp://u:pw@b"}, "--remote: the URL carries a password"},
		{[]string{"--remote", "tcp://b", "-T"}, "--tcp makes no sense with --remote"},
		{[]string{"--remote", "tcp://b", "--mqtt", "tcp://c"}, "--mqtt makes no sense with --remote"},
		{[]string{"--remote", "tcp://b", "--netns", "x"}, "--netns makes no sense with --remote"},
		{[]string{"--remote", "tcp://b", "--no-ui"}, "--no-ui makes no sense with --remote"},
		{[]string{"--remote", "tcp://b", "--mqtt-node", ""}, `--mqtt-node "": want a node name`},
		{[]string{"--remote", "tcp://b", "--mqtt-node", "+", "--once"}, "--mqtt-node + with --once"},
		{[]string{"--remote", "tcp://b", "--mqtt-node", "r1#"}, "--mqtt-node: node name \"r1#\" holds / + or #"},
		{[]string{"--remote", "tcp://b", "--mqtt-node", "a/b", "--once"}, "--mqtt-node: node name \"a/b\" holds / + or #"},
		{[]string{"--remote", "tcp://b", "--mqtt-node", "broadcast"}, `--mqtt-node: "broadcast" is the topic level of requests to every node`},
		{[]string{"--remote", "tcp://b", "--mqtt-qos", "7"}, "--mqtt-qos 7: want 0, 1 or 2"},
		{[]string{"--remote", "tcp://b", "--mqtt-qos", "-1"}, "--mqtt-qos -1: want 0, 1 or 2"},
	} {
		_, err := parseOptions(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%q: error %v, want one line with %q", tc.args, err, tc.want)
		}
	}
	// Every flag the remote view accepts is one of flowtop's.
	fs := (&options{}).flagSet()
	for name := range remoteFlags {
		if fs.Lookup(name) == nil {
			t.Errorf("remoteFlags names %q, which is no flag", name)
		}
	}
}
