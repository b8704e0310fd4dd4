package services

import (
	"fmt"
	"io/fs"
	"strings"
	"testing"

	"github.com/flowtop/flowtop/etc"
)

// checkResult holds for anything the parsers return, whatever the input:
// names fit one table cell and warnings one status line.
func checkResult(t *testing.T, m map[uint16]string, warnings []string, file string) {
	t.Helper()
	if m == nil {
		t.Fatal("nil map")
	}
	for port, name := range m {
		if name == "" || strings.ContainsAny(name, " ,#\t\r\n") || !validName(name) {
			t.Fatalf("port %d: bad name %q", port, name)
		}
	}
	for _, w := range warnings {
		if !strings.HasPrefix(w, file+":") {
			t.Fatalf("warning %q does not start with %q", w, file+":")
		}
		if strings.ContainsAny(w, "\n\r\x1b\x00") {
			t.Fatalf("warning %q holds control characters", w)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"", "22, ssh\n", "0x16,ssh\r\n# c\n", "70000, x\n", "22 ssh", "22,\n", ",\n",
		"22, a b\n", "1, \xff\n", "0x, y\n", "080, http # www\n",
	} {
		f.Add([]byte(s))
	}
	if data, err := fs.ReadFile(etc.Files, "tcp.conf"); err == nil {
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		warn, warnings := collect()
		m := Parse(strings.NewReader(string(data)), "f", warn)
		checkResult(t, m, *warnings, "f")

		// What was loaded, written back, loads again the same and cleanly.
		var b strings.Builder
		for port, name := range m {
			fmt.Fprintf(&b, "%d, %s\n", port, name)
		}
		warn, again := collect()
		m2 := Parse(strings.NewReader(b.String()), "g", warn)
		if len(*again) != 0 {
			t.Fatalf("round trip warns: %q", *again)
		}
		if len(m2) != len(m) {
			t.Fatalf("round trip: %d entries, want %d", len(m2), len(m))
		}
		for port, name := range m {
			if m2[port] != name {
				t.Fatalf("round trip: port %d is %q, want %q", port, m2[port], name)
			}
		}
	})
}

func FuzzParseServices(f *testing.F) {
	for _, s := range []string{
		"", "ssh 22/tcp\n", "http\t80/tcp\twww # web\r\n", "x 70000/udp\n", "lonely\n",
		"a 1/\n", "a /tcp\n", "a,b 1/tcp\n", "domain 53/udp\ndomain 53/tcp\n",
	} {
		f.Add([]byte(s), "tcp")
	}
	f.Add([]byte("amqp 5672/sctp\n"), "SCTP")
	f.Fuzz(func(t *testing.T, data []byte, proto string) {
		warn, warnings := collect()
		m := ParseServices(strings.NewReader(string(data)), "f", proto, warn)
		checkResult(t, m, *warnings, "f")
	})
}
