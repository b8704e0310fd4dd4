package main

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseOptionsIPFIX(t *testing.T) {
	o, err := parseOptions(nil, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := (ipfixOptions{format: "ipfix", activeTimeout: time.Minute, mtu: 1400}); !cmp.Equal(want, o.ipfix, cmp.AllowUnexported(ipfixOptions{})) {
		t.Errorf("defaults %+v, want %+v", o.ipfix, want)
	}
	o, err = parseOptions([]string{"--ipfix", "udp://c.lan", "--ipfix", "tcp://[2001:db8::9]:2055", "--ipfix-format", "nf9",
		"--ipfix-active-timeout", "30s", "--ipfix-mtu", "1500"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := ipfixOptions{urls: []string{"udp://c.lan", "tcp://[2001:db8::9]:2055"}, format: "nf9", activeTimeout: 30 * time.Second, mtu: 1500}
	if diff := cmp.Diff(want, o.ipfix, cmp.AllowUnexported(ipfixOptions{})); diff != "" {
		t.Errorf("options (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		args []string
		err  string
	}{
		{[]string{"--ipfix", "http://c"}, `scheme "http" not supported`},
		{[]string{"--ipfix", "udp://"}, "has no host"},
		{[]string{"--ipfix-format", "v5"}, `--ipfix-format: format "v5": want ipfix or nf9`},
		{[]string{"--ipfix", "udp://c", "--ipfix-mtu", "100"}, "MTU 100: want 576 to 65535"},
		{[]string{"--ipfix", "udp://c", "--ipfix-active-timeout", "10ms"}, "active timeout 10ms"},
		{[]string{"--ipfix", "udp://c", "--ipfix-format", "nf9", "--ipfix-nat-events"}, "IPFIX only"},
	} {
		_, err := parseOptions(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: error %v, want one with %q", tc.args, err, tc.err)
		}
	}
	var stderr bytes.Buffer
	if code := run([]string{"--ipfix", "ftp://c"}, io.Discard, &stderr); code != 2 || !strings.Contains(stderr.String(), "ftp") {
		t.Errorf("a bad --ipfix URL: exit status %d, %q; want 2 and the URL named", code, stderr.String())
	}
}
