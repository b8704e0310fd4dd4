package services

import (
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// collect returns a warn func and the warnings it received.
func collect() (func(string), *[]string) {
	var got []string
	return func(s string) { got = append(got, s) }, &got
}

// diffOpts treats nil and empty maps and slices alike.
var diffOpts = cmpopts.EquateEmpty()

func TestParse(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     map[uint16]string
		wantWarn []string
	}{
		{name: "empty"},
		{name: "only comments and blanks", in: "# header\n\n   \n\t# indented comment\n"},
		{
			name: "basic",
			in:   "22, ssh\n80, http\n",
			want: map[uint16]string{22: "ssh", 80: "http"},
		},
		{
			name: "spacing around port and name",
			in:   "22,ssh\n  80 ,\thttp  \n443,   https\n",
			want: map[uint16]string{22: "ssh", 80: "http", 443: "https"},
		},
		{
			name: "trailing comment",
			in:   "22, ssh # secure shell\n80, http#no space\n",
			want: map[uint16]string{22: "ssh", 80: "http"},
		},
		{
			name: "hex",
			in:   "0x16, ssh\n0X1BB, https\n0xffff, top\n",
			want: map[uint16]string{22: "ssh", 443: "https", 65535: "top"},
		},
		{
			name: "leading zero is decimal, not octal",
			in:   "080, http\n",
			want: map[uint16]string{80: "http"},
		},
		{
			name: "port zero and the last port",
			in:   "0, zero\n65535, last\n",
			want: map[uint16]string{0: "zero", 65535: "last"},
		},
		{
			name: "CRLF",
			in:   "# dos\r\n22, ssh\r\n80, http # www\r\n\r\n",
			want: map[uint16]string{22: "ssh", 80: "http"},
		},
		{
			name: "UTF-8 byte order mark",
			in:   "\ufeff22, ssh\n",
			want: map[uint16]string{22: "ssh"},
		},
		{
			name: "no final newline",
			in:   "22, ssh\n80, http",
			want: map[uint16]string{22: "ssh", 80: "http"},
		},
		{
			name: "netsniff-ng names with colons, unicode",
			in:   "6001, X11:1\n8080, wéb\n",
			want: map[uint16]string{6001: "X11:1", 8080: "wéb"},
		},
		{
			name: "duplicate with the same name is silent",
			in:   "475, tcpnethaspsrv\n475, tcpnethaspsrv\n",
			want: map[uint16]string{475: "tcpnethaspsrv"},
		},
		{
			name:     "duplicate with another name: first wins",
			in:       "22, ssh\n0x16, other\n",
			want:     map[uint16]string{22: "ssh"},
			wantWarn: []string{`t.conf:2: port 22 already named "ssh", ignoring "other"`},
		},
		{
			name: "bad lines are skipped, the rest loads, line numbers count every line",
			in: "# header\n\n22, ssh\nabc, foo\n70000, big\n80, http\n" +
				"22 ssh\n23,\n24, # nothing\n-1, neg\n+25, plus\n0x, nohex\n0x10000, bighex\n" +
				"99999999999999999999999, huge\n26, two words\n27, a,b\n28, bell\a\n" +
				"1_000, under\n443, https\n",
			want: map[uint16]string{22: "ssh", 80: "http", 443: "https"},
			wantWarn: []string{
				`t.conf:4: port "abc" is not a number`,
				`t.conf:5: port "70000" out of range`,
				`t.conf:7: missing "," between port and name in "22 ssh"`,
				`t.conf:8: missing name for port 23`,
				`t.conf:9: missing name for port 24`,
				`t.conf:10: port "-1" is not a number`,
				`t.conf:11: port "+25" is not a number`,
				`t.conf:12: port "0x" is not a number`,
				`t.conf:13: port "0x10000" out of range`,
				`t.conf:14: port "99999999999999999999999" out of range`,
				`t.conf:15: invalid name "two words" for port 26 (spaces, commas and control characters are not allowed)`,
				`t.conf:16: invalid name "a,b" for port 27 (spaces, commas and control characters are not allowed)`,
				`t.conf:17: invalid name "bell\a" for port 28 (spaces, commas and control characters are not allowed)`,
				`t.conf:18: port "1_000" is not a number`,
			},
		},
		{
			name:     "missing port",
			in:       ", ssh\n",
			wantWarn: []string{`t.conf:1: port "" is not a number`},
		},
		{
			name:     "terminal escapes in a bad line are quoted",
			in:       "\x1b[2J, x\n",
			wantWarn: []string{`t.conf:1: port "\x1b[2J" is not a number`},
		},
		{
			name: "long line is cut in the warning",
			in:   strings.Repeat("9", 50) + "\n",
			wantWarn: []string{
				`t.conf:1: missing "," between port and name in "` + strings.Repeat("9", 40) + `"...`,
			},
		},
		{
			name:     "line longer than maxLine is skipped",
			in:       "22, ssh\n" + strings.Repeat("x", 3*maxLine) + "\n80, http\n",
			want:     map[uint16]string{22: "ssh", 80: "http"},
			wantWarn: []string{"t.conf:2: line longer than 4096 bytes, skipped"},
		},
		{
			name:     "line longer than maxLine at EOF",
			in:       "22, ssh\n" + strings.Repeat("x", 3*maxLine),
			want:     map[uint16]string{22: "ssh"},
			wantWarn: []string{"t.conf:2: line longer than 4096 bytes, skipped"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			warn, warnings := collect()
			got := Parse(strings.NewReader(tt.in), "t.conf", warn)
			if diff := cmp.Diff(tt.want, got, diffOpts); diff != "" {
				t.Errorf("map (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantWarn, *warnings, diffOpts); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseNilWarn(t *testing.T) {
	got := Parse(strings.NewReader("bad\n22, ssh\n"), "t.conf", nil)
	if diff := cmp.Diff(map[uint16]string{22: "ssh"}, got); diff != "" {
		t.Errorf("map (-want +got):\n%s", diff)
	}
}

func TestParseReadError(t *testing.T) {
	r := io.MultiReader(strings.NewReader("22, ssh\n"), iotest.ErrReader(errors.New("disk on fire")))
	warn, warnings := collect()
	got := Parse(r, "t.conf", warn)
	if diff := cmp.Diff(map[uint16]string{22: "ssh"}, got); diff != "" {
		t.Errorf("map (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"t.conf: disk on fire"}, *warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

func TestParseServices(t *testing.T) {
	const services = `# Network services, Internet style

tcpmux		1/tcp				# TCP port service multiplexer
discard		9/tcp		sink null
discard		9/udp		sink null
ssh		22/tcp				# SSH Remote Login Protocol
smtp		25/tcp		mail
domain		53/tcp				# Domain Name Server
domain		53/udp
http		80/tcp		www		# WorldWideWeb HTTP
www-dup		80/tcp				# first one wins
https		443/TCP
https		443/udp				# HTTP/3
amqp		5672/sctp
rtmp		1/ddp			# AppleTalk
dos		22/tcp
`
	tests := []struct {
		name  string
		in    string
		proto string
		want  map[uint16]string
		warn  []string
	}{
		{
			name:  "tcp, aliases ignored, first wins, protocol case ignored",
			in:    services,
			proto: "tcp",
			want: map[uint16]string{
				1: "tcpmux", 9: "discard", 22: "ssh", 25: "smtp", 53: "domain", 80: "http", 443: "https",
			},
		},
		{
			name:  "udp",
			in:    services,
			proto: "udp",
			want:  map[uint16]string{9: "discard", 53: "domain", 443: "https"},
		},
		{
			name:  "sctp, upper-case proto argument",
			in:    services,
			proto: "SCTP",
			want:  map[uint16]string{5672: "amqp"},
		},
		{
			name:  "no entries for dccp",
			in:    services,
			proto: "dccp",
		},
		{
			name:  "CRLF",
			in:    "ssh 22/tcp\r\nhttp 80/tcp www\r\n",
			proto: "tcp",
			want:  map[uint16]string{22: "ssh", 80: "http"},
		},
		{
			name: "bad lines are reported whatever their protocol",
			in: "lonely\nfoo 22\nfoo 22/\nfoo x/udp\nfoo 70000/tcp\nfoo,bar 23/tcp\n" +
				"ok 24/tcp # fine\nbad 0x19/tcp\n",
			proto: "tcp",
			want:  map[uint16]string{24: "ok", 25: "bad"},
			warn: []string{
				`s:1: missing port/protocol after "lonely"`,
				`s:2: "22" is not port/protocol`,
				`s:3: "22/" is not port/protocol`,
				`s:4: port "x" is not a number`,
				`s:5: port "70000" out of range`,
				`s:6: invalid name "foo,bar" for port 23 (commas and control characters are not allowed)`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			warn, warnings := collect()
			got := ParseServices(strings.NewReader(tt.in), "s", tt.proto, warn)
			if got == nil {
				t.Error("ParseServices returned a nil map")
			}
			if diff := cmp.Diff(tt.want, got, diffOpts); diff != "" {
				t.Errorf("map (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.warn, *warnings, diffOpts); diff != "" {
				t.Errorf("warnings (-want +got):\n%s", diff)
			}
		})
	}
}
