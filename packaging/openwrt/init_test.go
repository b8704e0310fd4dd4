package openwrt

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/flowtop/flowtop/conntrack/nstest"
	"github.com/google/go-cmp/cmp"
)

func TestMain(m *testing.M) {
	code := m.Run()
	nstest.RemoveFlowtop()
	os.Exit(code)
}

// runInit runs the init script's start_service with the UCI config uci
// ("flowtop.main.option=value" lines) and the interfaces' subnets in env,
// and returns what procd was told: "instance", "arg X" per argument,
// "param NAME VALUES", "close"; and what the script printed on stderr.
func runInit(t *testing.T, uci string, env ...string) (out []string, stderr string) {
	t.Helper()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "lib/functions"), 0o755); err != nil {
		t.Fatal(err)
	}
	network, err := os.ReadFile("testdata/network.sh")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "lib/functions/network.sh"), network, 0o644); err != nil {
		t.Fatal(err)
	}
	uciFile := filepath.Join(root, "uci")
	if err := os.WriteFile(uciFile, []byte(uci), 0o644); err != nil {
		t.Fatal(err)
	}
	// The script's own mkdir of its state directory goes to the test's
	// directory, not /var/run.
	script := `. testdata/harness.sh; . flowtop/files/flowtop.init; STATE_DIR="$IPKG_INSTROOT/var/run/flowtop"; start_service`
	cmd := exec.Command("sh", "-c", script)
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "IPKG_INSTROOT=" + root, "UCI_FILE=" + uciFile}, env...)
	var errBuf strings.Builder
	cmd.Stderr = &errBuf
	stdout, err := cmd.Output()
	if err != nil && errBuf.Len() == 0 {
		t.Fatalf("init script: %v", err)
	}
	for _, l := range strings.Split(strings.TrimSpace(string(stdout)), "\n") {
		if l != "" {
			out = append(out, l)
		}
	}
	return out, errBuf.String()
}

// args returns the command line procd was given, params apart.
func args(out []string) (argv []string, params []string) {
	for _, l := range out {
		switch {
		case strings.HasPrefix(l, "arg "):
			argv = append(argv, strings.TrimPrefix(l, "arg "))
		case strings.HasPrefix(l, "param "):
			params = append(params, strings.TrimPrefix(l, "param "))
		}
	}
	return argv, params
}

func TestInitMapsUCIToFlags(t *testing.T) {
	if _, err := exec.LookPath("sh"); err != nil {
		t.Fatal("no sh")
	}
	commonParams := []string{
		"respawn 3600 5 0",
		"term_timeout 10",
		"capabilities /etc/capabilities/flowtop.json",
		"no_new_privs 1",
		"stdout 1",
		"stderr 1",
	}
	tests := []struct {
		name       string
		uci        string
		env        []string
		wantArgs   []string
		wantParams []string
	}{{
		name: "MQTT with Home Assistant, interfaces as local networks",
		uci: `flowtop.main.enabled=1
flowtop.main.interval=2
flowtop.main.protocol=tcp udp
flowtop.main.limit=50
flowtop.main.local_network=lan guest 10.9.0.0/16
flowtop.main.mqtt_url=ssl://broker.lan:8883
flowtop.main.mqtt_user=router1
flowtop.main.mqtt_password_file=/etc/flowtop/mqtt-password
flowtop.main.mqtt_ca=/etc/flowtop/ca.pem
flowtop.main.mqtt_node=gw
flowtop.main.mqtt_interval=30s
flowtop.main.mqtt_gzip=1
flowtop.main.mqtt_homeassistant=1
flowtop.main.memory_limit=16MiB
`,
		env: []string{"NET4_lan=192.168.1.1/24", "NET6_lan=fd00:1::1/64", "NET4_guest=192.168.2.1/24"},
		wantArgs: []string{"/usr/sbin/flowtop", "--no-ui", "--state-dir", "STATE", "-t", "2", "-T", "-U",
			"--limit", "50", "--local-net", "192.168.1.1/24,fd00:1::1/64,192.168.2.1/24,10.9.0.0/16",
			"--mqtt", "ssl://broker.lan:8883", "--mqtt-topic", "flowtop", "--mqtt-interval", "30s",
			"--mqtt-user", "router1", "--mqtt-password-file", "/etc/flowtop/mqtt-password",
			"--mqtt-ca", "/etc/flowtop/ca.pem", "--mqtt-node", "gw", "--mqtt-gzip", "--mqtt-homeassistant"},
		wantParams: append([]string{"env GOMEMLIMIT=16MiB"}, commonParams...),
	}, {
		name: "IPFIX and metrics with filters, no MQTT",
		uci: `flowtop.main.enabled=1
flowtop.main.protocol=tcp udp icmp
flowtop.main.limit=0
flowtop.main.port=443 8443
flowtop.main.exclude_proto=gre
flowtop.main.net=192.168.1.0/24 10.0.0.0/8
flowtop.main.ignore_control=1
flowtop.main.min_bytes=10k
flowtop.main.ipfix=udp://192.168.1.2:4739 tcp://192.168.1.3:4739
flowtop.main.ipfix_format=nf9
flowtop.main.ipfix_active_timeout=120s
flowtop.main.metrics_listen=192.168.1.1:9790
`,
		wantArgs: []string{"/usr/sbin/flowtop", "--no-ui", "--state-dir", "STATE", "-t", "1", "-T", "-U", "-I",
			"--port", "443,8443", "--exclude-proto", "gre", "--net", "192.168.1.0/24", "--net", "10.0.0.0/8",
			"--ignore-control", "--min-bytes", "10k",
			"--ipfix", "udp://192.168.1.2:4739", "--ipfix", "tcp://192.168.1.3:4739",
			"--ipfix-format", "nf9", "--ipfix-active-timeout", "120s",
			"--metrics-listen", "192.168.1.1:9790"},
		wantParams: commonParams,
	}, {
		name: "a JSON file for the web page, defaults elsewhere",
		uci: `flowtop.main.enabled=1
flowtop.main.write=/www/flows.json
flowtop.main.write_interval=5s
flowtop.main.geoip_dir=/usr/share/GeoIP
`,
		wantArgs: []string{"/usr/sbin/flowtop", "--no-ui", "--state-dir", "STATE", "-t", "1",
			"--limit", "100", "--geoip-dir", "/usr/share/GeoIP", "--write", "/www/flows.json", "--write-interval", "5s"},
		wantParams: commonParams,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, stderr := runInit(t, tt.uci, tt.env...)
			if len(out) == 0 || out[0] != "instance" || out[len(out)-1] != "close" {
				t.Fatalf("no procd instance; stderr: %s; output: %q", stderr, out)
			}
			argv, params := args(out)
			for i, a := range argv {
				if strings.HasSuffix(a, "/var/run/flowtop") {
					argv[i] = "STATE"
				}
			}
			if d := cmp.Diff(tt.wantArgs, argv); d != "" {
				t.Errorf("command line (-want +got):\n%s", d)
			}
			if d := cmp.Diff(tt.wantParams, params); d != "" {
				t.Errorf("procd params (-want +got):\n%s", d)
			}
			// flowtop itself takes the command line: every flag exists
			// and every value parses (--version exits after parsing).
			// Paths the router has and this machine may not: the state
			// directory and the --write file's directory.
			argv[3] = t.TempDir()
			for i := range argv[:len(argv)-1] {
				if argv[i] == "--write" {
					argv[i+1] = filepath.Join(t.TempDir(), "flows.json")
				}
			}
			flags, err := exec.Command(nstest.Flowtop(t), append(argv[1:], "--version")...).CombinedOutput()
			if err != nil {
				t.Errorf("flowtop refuses the command line: %v: %s", err, flags)
			}
		})
	}
}

func TestInitDoesNotStart(t *testing.T) {
	tests := []struct {
		name, uci, wantErr string
	}{
		{"disabled", "flowtop.main.enabled=0\nflowtop.main.mqtt_url=tcp://b:1883\n", ""},
		{"no exporter", "flowtop.main.enabled=1\n", "set mqtt_url, ipfix, metrics_listen or write"},
		{"invalid value", "flowtop.main.enabled=1\nflowtop.main.mqtt_url=tcp://b:1883\nflowtop.main.limit=ten\n", "invalid values"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, stderr := runInit(t, tt.uci)
			if len(out) != 0 {
				t.Errorf("procd instance started: %q", out)
			}
			if !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("stderr %q, want it to contain %q", stderr, tt.wantErr)
			}
		})
	}
}
