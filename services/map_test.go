package services

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/flowtop/flowtop/etc"
)

// writeFile writes dir/name, creating dir.
func writeFile(t *testing.T, dir, name, content string) string {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// lookup is one Name call and its expected answer.
type lookup struct {
	proto uint8
	port  uint16
	want  string
}

func checkNames(t *testing.T, m *Map, lookups []lookup) {
	t.Helper()
	for _, l := range lookups {
		if got := m.Name(l.proto, l.port); got != l.want {
			t.Errorf("Name(%d, %d) = %q, want %q", l.proto, l.port, got, l.want)
		}
	}
}

func TestLoaderSearchOrder(t *testing.T) {
	root := t.TempDir()
	etcServices := writeFile(t, root, "services",
		"ssh 22/tcp\nsvc-udp 53/udp\nsvc-sctp 3868/sctp\nsvc-dccp 9/dccp\n")
	embedded := fstest.MapFS{
		"tcp.conf":  {Data: []byte("22, emb-tcp\n")},
		"udp.conf":  {Data: []byte("53, emb-udp\n")},
		"sctp.conf": {Data: []byte("3868, emb-sctp\n")},
	}

	tests := []struct {
		name     string
		files    map[string]string // path under root -> content
		dirs     []string          // under the case's dir; "" kept as is, "empty" never exists
		etc      string
		embedded fs.FS
		lookups  []lookup
		wantWarn []string // "$ROOT" stands for root
	}{
		{
			name:     "first dir wins over second, embedded, /etc/services",
			files:    map[string]string{"first/tcp.conf": "22, first\n", "second/tcp.conf": "22, second\n80, second\n"},
			dirs:     []string{"", "first", "second"},
			etc:      etcServices,
			embedded: embedded,
			lookups: []lookup{
				{protoTCP, 22, "first"},
				{protoTCP, 80, "second"}, // a port the first file does not name
				{protoUDP, 53, "emb-udp"},
				{protoSCTP, 3868, "emb-sctp"},
				{protoDCCP, 9, "svc-dccp"}, // no file anywhere: /etc/services
			},
		},
		{
			name:     "missing dirs are passed over",
			files:    map[string]string{"second/udp.conf": "53, second\n"},
			dirs:     []string{"empty", "first", "second"},
			etc:      etcServices,
			embedded: embedded,
			lookups: []lookup{
				{protoTCP, 22, "emb-tcp"},
				{protoUDP, 53, "second"},
				{protoUDPLite, 53, "second"},
			},
		},
		{
			name:     "an empty file names nothing: the next places still do",
			files:    map[string]string{"first/tcp.conf": "# nothing\n"},
			dirs:     []string{"first"},
			etc:      etcServices,
			embedded: embedded,
			lookups:  []lookup{{protoTCP, 22, "emb-tcp"}, {protoUDP, 53, "emb-udp"}},
		},
		{
			name:     "no embedded: /etc/services for every protocol",
			etc:      etcServices,
			lookups:  []lookup{{protoTCP, 22, "ssh"}, {protoUDP, 53, "svc-udp"}, {protoSCTP, 3868, "svc-sctp"}},
			embedded: nil,
		},
		{
			name:    "nothing at all: empty, no warnings",
			dirs:    []string{"empty"},
			etc:     filepath.Join(root, "no-such-services"),
			lookups: []lookup{{protoTCP, 22, ""}, {protoUDP, 53, ""}},
		},
		{
			name:     "bad lines warn with the file path; the rest loads",
			files:    map[string]string{"first/tcp.conf": "22, ssh\n70000, big\n"},
			dirs:     []string{"first"},
			embedded: embedded,
			lookups:  []lookup{{protoTCP, 22, "ssh"}},
			wantWarn: []string{`$ROOT/first/tcp.conf:2: port "70000" out of range`},
		},
		{
			name:     "an unreadable file warns and the next place is tried",
			files:    map[string]string{"first/tcp.conf/x": "", "second/tcp.conf": "22, second\n"},
			dirs:     []string{"first", "second"},
			embedded: embedded,
			lookups:  []lookup{{protoTCP, 22, "second"}},
			wantWarn: []string{"read $ROOT/first/tcp.conf: is a directory"},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Each case gets its own copy of the tree under root/case<i>.
			base := filepath.Join(root, "case"+string(rune('a'+i)))
			for path, content := range tt.files {
				writeFile(t, filepath.Join(base, filepath.Dir(path)), filepath.Base(path), content)
			}
			var dirs []string
			for _, d := range tt.dirs {
				if d != "" {
					d = filepath.Join(base, d)
				}
				dirs = append(dirs, d)
			}
			warn, warnings := collect()
			m := Loader{Dirs: dirs, EtcServices: tt.etc, Embedded: tt.embedded}.Load(warn)
			checkNames(t, m, tt.lookups)
			var want []string
			for _, w := range tt.wantWarn {
				want = append(want, strings.ReplaceAll(w, "$ROOT", base))
			}
			if diff := cmp.Diff(want, *warnings, diffOpts); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

// TestLoaderReadsEtcServicesOnlyWhenNeeded: when every protocol has a file,
// /etc/services is not read, so its problems are not reported.
func TestLoaderReadsEtcServicesOnlyWhenNeeded(t *testing.T) {
	dir := t.TempDir()
	for _, f := range tableFiles {
		writeFile(t, dir, f.file, "1, x\n")
	}
	bad := writeFile(t, dir, "services", "broken\n")
	warn, warnings := collect()
	Loader{Dirs: []string{dir}, EtcServices: bad}.Load(warn)
	if len(*warnings) != 0 {
		t.Errorf("warnings = %q, want none", *warnings)
	}

	// Without sctp.conf and dccp.conf the file is read, and warned about once.
	os.Remove(filepath.Join(dir, "sctp.conf"))
	os.Remove(filepath.Join(dir, "dccp.conf"))
	warn, warnings = collect()
	Loader{Dirs: []string{dir}, EtcServices: bad}.Load(warn)
	want := []string{bad + `:1: missing port/protocol after "broken"`}
	if diff := cmp.Diff(want, *warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

// TestEmbeddedDefaults checks the files shipped in the binary: all four
// exist, parse without a warning, and name what an admin expects.
func TestEmbeddedDefaults(t *testing.T) {
	for _, f := range tableFiles {
		data, err := fs.ReadFile(etc.Files, f.file)
		if err != nil {
			t.Errorf("built-in %s: %v", f.file, err)
			continue
		}
		warn, warnings := collect()
		if m := Parse(strings.NewReader(string(data)), f.file, warn); len(m) == 0 {
			t.Errorf("built-in %s is empty", f.file)
		}
		if len(*warnings) != 0 {
			t.Errorf("built-in %s: %q", f.file, *warnings)
		}
	}

	m := Loader{Embedded: etc.Files}.Load(func(s string) { t.Error(s) })
	checkNames(t, m, []lookup{
		{protoTCP, 22, "ssh"},
		{protoTCP, 443, "https"},
		{protoTCP, 1883, "mqtt"},
		{protoTCP, 8883, "mqtt-tls"},
		{protoTCP, 5432, "postgresql"},
		{protoUDP, 53, "domain"},
		{protoUDP, 123, "ntp"},
		{protoUDP, 5353, "mdns"},
		{protoUDP, 51820, "wireguard"},
		{protoUDPLite, 53, "domain"},
		{protoSCTP, 3868, "diameter"},
		{protoDCCP, 6514, "syslog-tls"},
		{protoTCP, 1, ""},
	})
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "tcp.conf", "22, from-config-dir\n")
	m := Load(dir, nil)
	checkNames(t, m, []lookup{{protoTCP, 22, "from-config-dir"}})
	if m.Name(protoUDP, 53) == "" {
		t.Error("Load: no name for udp 53 (built-in udp.conf not used?)")
	}
}

// TestLoaderFallsBackPerPort: a config-dir tcp.conf that names only port
// 8000 must not take the names of the other ports away; each comes from the
// first place that names it.
func TestLoaderFallsBackPerPort(t *testing.T) {
	root := t.TempDir()
	configDir, etcFlowtop := filepath.Join(root, "config"), filepath.Join(root, "etc-flowtop")
	writeFile(t, configDir, "tcp.conf", "8000, my-app\n")
	writeFile(t, etcFlowtop, "tcp.conf", "443, site-https\n8000, not-this-one\n")
	embedded := fstest.MapFS{"tcp.conf": {Data: []byte("22, emb-ssh\n443, emb-https\n8000, emb-alt\n")}}
	warn, warnings := collect()
	m := Loader{Dirs: []string{configDir, etcFlowtop}, Embedded: embedded}.Load(warn)
	checkNames(t, m, []lookup{
		{protoTCP, 8000, "my-app"},    // the config dir
		{protoTCP, 443, "site-https"}, // /etc/flowtop
		{protoTCP, 22, "emb-ssh"},     // built in
		{protoTCP, 80, ""},            // nowhere
		{protoUDP, 8000, ""},          // other protocols are not mixed in
	})
	if len(*warnings) != 0 {
		t.Errorf("warnings: %q", *warnings)
	}

	// The same through Load, with the real built-in maps.
	m = Load(configDir, nil)
	checkNames(t, m, []lookup{{protoTCP, 8000, "my-app"}, {protoTCP, 22, "ssh"}})
}

// TestLoaderBoundsHugeFile: a huge file of bad lines is read up to
// maxFileSize, with one warning saying so, and reports maxWarnings of its
// problems and one line counting the others.
func TestLoaderBoundsHugeFile(t *testing.T) {
	dir := t.TempDir()
	const first, bad, last = "22, ssh\n", "bad line!\n", "80, http\n"
	var b strings.Builder
	b.WriteString(first)
	for b.Len() < maxFileSize+maxFileSize/4 {
		b.WriteString(bad)
	}
	b.WriteString(last) // beyond the limit: never read
	path := writeFile(t, dir, "tcp.conf", b.String())

	warn, warnings := collect()
	m := Loader{Dirs: []string{dir}}.Load(warn)
	checkNames(t, m, []lookup{{protoTCP, 22, "ssh"}, {protoTCP, 80, ""}})

	// The bad lines wholly within the limit; the one cut by it is dropped.
	badLines := (maxFileSize - len(first)) / len(bad)
	want := []string{path + ": larger than 4 MiB, only its first 4 MiB are read"}
	for line := 2; line < 2+maxWarnings; line++ {
		want = append(want, fmt.Sprintf(`%s:%d: missing "," between port and name in "bad line!"`, path, line))
	}
	want = append(want, fmt.Sprintf("%d more warnings suppressed in %s", badLines-maxWarnings, path))
	if len(*warnings) != len(want) {
		got := *warnings
		t.Fatalf("%d warnings, want %d; the first: %q", len(got), len(want), got[:min(len(got), 3)])
	}
	if diff := cmp.Diff(want, *warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

// TestLoaderBoundsWarningsPerFile: every file, /etc/services too, gets its
// own maxWarnings; "1 more warning" is singular.
func TestLoaderBoundsWarningsPerFile(t *testing.T) {
	dir := t.TempDir()
	conf := writeFile(t, dir, "tcp.conf", strings.Repeat("x\n", maxWarnings+1))
	services := writeFile(t, dir, "services", strings.Repeat("lonely\n", maxWarnings+5))
	warn, warnings := collect()
	Loader{Dirs: []string{dir}, EtcServices: services}.Load(warn)
	var want []string
	for line := 1; line <= maxWarnings; line++ {
		want = append(want, fmt.Sprintf(`%s:%d: missing "," between port and name in "x"`, conf, line))
	}
	want = append(want, "1 more warning suppressed in "+conf)
	for line := 1; line <= maxWarnings; line++ {
		want = append(want, fmt.Sprintf(`%s:%d: missing port/protocol after "lonely"`, services, line))
	}
	want = append(want, "5 more warnings suppressed in "+services)
	if diff := cmp.Diff(want, *warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

func TestName(t *testing.T) {
	m := &Map{tables: [numTables]map[uint16]string{
		tableTCP:  {22: "ssh"},
		tableUDP:  {53: "domain"},
		tableSCTP: {3868: "diameter"},
		tableDCCP: {9: "discard"},
	}}
	checkNames(t, m, []lookup{
		{protoTCP, 22, "ssh"},
		{protoTCP, 53, ""},
		{protoUDP, 53, "domain"},
		{protoUDPLite, 53, "domain"}, // UDP-Lite shares UDP's map
		{protoSCTP, 3868, "diameter"},
		{protoDCCP, 9, "discard"},
		{1, 22, ""},  // ICMP has no ports
		{58, 53, ""}, // nor ICMPv6
	})
	checkNames(t, nil, []lookup{{protoTCP, 22, ""}})
	checkNames(t, &Map{}, []lookup{{protoTCP, 22, ""}})
}

func TestNameDoesNotAllocate(t *testing.T) {
	m := Loader{Embedded: etc.Files}.Load(nil)
	if n := testing.AllocsPerRun(100, func() {
		_ = m.Name(protoTCP, 22)
		_ = m.Name(protoUDPLite, 53)
		_ = m.Name(protoSCTP, 1)
	}); n != 0 {
		t.Errorf("Name allocates %v times per run, want 0", n)
	}
}

// TestNameConcurrent is for -race: a loaded Map is read from many
// goroutines without locks.
func TestNameConcurrent(t *testing.T) {
	m := Loader{Embedded: etc.Files}.Load(nil)
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for port := range 1024 {
				_ = m.Name(protoTCP, uint16(port))
			}
		})
	}
	wg.Wait()
}

func BenchmarkName(b *testing.B) {
	m := Loader{Embedded: etc.Files}.Load(nil)
	for i := 0; b.Loop(); i++ {
		_ = m.Name(protoTCP, uint16(i))
	}
}
