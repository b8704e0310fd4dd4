package services

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// maxLine bounds a line. Longer lines are skipped with a warning rather than
// read into memory: no real map needs them, and a stray binary file should
// not cost megabytes.
const maxLine = 4096

// Parse reads flowtop's "port, name" format (the format of netsniff-ng's
// tcp.conf and udp.conf): a decimal or 0x-prefixed hex port, a comma,
// optional spaces and a name without spaces or commas. A # starts a comment
// anywhere on a line; blank lines and CRLF line ends are fine.
//
// A malformed line is reported to warn as "file:line: problem" and skipped;
// the rest of r is still read. When a port appears twice the first line wins,
// as in /etc/services, so a map reads top-down; a second line giving it a
// different name is reported. warn may be nil.
func Parse(r io.Reader, file string, warn func(string)) map[uint16]string {
	return parse(r, newWarner(file, warn, 0))
}

// parse is Parse with its warnings going through w.
func parse(r io.Reader, w *warner) map[uint16]string {
	m := make(map[uint16]string)
	eachLine(r, w, func(warnf func(string, ...any), line string) {
		portText, name, ok := strings.Cut(line, ",")
		if !ok {
			warnf("missing \",\" between port and name in %s", quote(line))
			return
		}
		port, ok := parsePort(strings.TrimSpace(portText), warnf)
		if !ok {
			return
		}
		name = strings.TrimSpace(name)
		if name == "" {
			warnf("missing name for port %d", port)
			return
		}
		if !validName(name) {
			warnf("invalid name %s for port %d (spaces, commas and control characters are not allowed)", quote(name), port)
			return
		}
		if old, dup := m[port]; dup {
			if old != name {
				warnf("port %d already named %s, ignoring %s", port, quote(old), quote(name))
			}
			return
		}
		m[port] = name
	})
	return m
}

// ParseServices reads the /etc/services format ("ssh 22/tcp ssh-alias #
// comment") and returns the official names of the entries for proto ("tcp",
// "udp", "sctp", "dccp"; case does not matter). Aliases are ignored. The
// first entry for a port wins, as with getservbyport(3), silently: the file
// belongs to the system, not to flowtop's user.
//
// Malformed lines are reported to warn as "file:line: problem", whatever
// their protocol, and skipped. warn may be nil.
func ParseServices(r io.Reader, file string, proto string, warn func(string)) map[uint16]string {
	m := parseServices(r, newWarner(file, warn, 0))[strings.ToLower(proto)]
	if m == nil {
		m = make(map[uint16]string)
	}
	return m
}

// parseServices reads every protocol of an /etc/services file at once, so the
// Loader reads and warns about the file once however many protocols need it.
func parseServices(r io.Reader, w *warner) map[string]map[uint16]string {
	all := make(map[string]map[uint16]string)
	eachLine(r, w, func(warnf func(string, ...any), line string) {
		fields := strings.Fields(line)
		if len(fields) < 2 {
			warnf("missing port/protocol after %s", quote(fields[0]))
			return
		}
		name := fields[0]
		portText, proto, ok := strings.Cut(fields[1], "/")
		if !ok || proto == "" {
			warnf("%s is not port/protocol", quote(fields[1]))
			return
		}
		port, ok := parsePort(portText, warnf)
		if !ok {
			return
		}
		if !validName(name) {
			warnf("invalid name %s for port %d (commas and control characters are not allowed)", quote(name), port)
			return
		}
		proto = strings.ToLower(proto)
		m := all[proto]
		if m == nil {
			m = make(map[uint16]string)
			all[proto] = m
		}
		if _, dup := m[port]; !dup {
			m[port] = name
		}
	})
	return all
}

// warner passes a file's warnings on to warn, at most max of them (0: no
// limit), and counts the rest: a big file of garbage must not print a line
// for each of its lines (a 115 MB tcp.conf printed 2.9 million). Warnings
// past the limit are not even formatted.
type warner struct {
	file       string
	warn       func(string)
	max, count int
}

func newWarner(file string, warn func(string), max int) *warner {
	if warn == nil {
		warn = func(string) {}
	}
	return &warner{file: file, warn: warn, max: max}
}

// warnf reports a problem of the file, prefixed "file:" and, when line > 0,
// "line:".
func (w *warner) warnf(line int, format string, args ...any) {
	w.count++
	if w.max > 0 && w.count > w.max {
		return
	}
	prefix := w.file + ": "
	if line > 0 {
		prefix = fmt.Sprintf("%s:%d: ", w.file, line)
	}
	w.warn(prefix + fmt.Sprintf(format, args...))
}

// done reports how many warnings the limit held back, if any.
func (w *warner) done() {
	if w.max <= 0 || w.count <= w.max {
		return
	}
	n := w.count - w.max
	s := "s"
	if n == 1 {
		s = ""
	}
	w.warn(fmt.Sprintf("%d more warning%s suppressed in %s", n, s, w.file))
}

// eachLine calls fn with every non-blank line of r, comment and surrounding
// white space removed, and a warnf that reports a problem of that line
// through w.
func eachLine(r io.Reader, w *warner, fn func(warnf func(string, ...any), line string)) {
	n := 0
	warnf := func(format string, args ...any) { w.warnf(n, format, args...) }
	br := bufio.NewReaderSize(r, maxLine)
	for {
		raw, long, err := br.ReadLine()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				w.warnf(0, "%v", err)
			}
			return
		}
		n++
		if long {
			warnf("line longer than %d bytes, skipped", maxLine)
			for long && err == nil {
				_, long, err = br.ReadLine()
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					w.warnf(0, "%v", err)
				}
				return
			}
			continue
		}
		line := string(raw)
		if n == 1 {
			line = strings.TrimPrefix(line, "\ufeff") // a BOM from a Windows editor
		}
		if i := strings.IndexByte(line, '#'); i >= 0 {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		fn(warnf, line)
	}
}

// parsePort reads a decimal or 0x-prefixed hexadecimal port. Unlike
// netsniff-ng's strtol(..., 0), a leading zero does not mean octal: "080" is
// 80, which is what anyone writing it means.
func parsePort(s string, warnf func(string, ...any)) (uint16, bool) {
	digits, base := s, 10
	if len(s) > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X') {
		digits, base = s[2:], 16
	}
	// ParseUint would accept "_" separators only with base 0, which we do
	// not use; it never accepts signs. So a syntax error is a bad port.
	v, err := strconv.ParseUint(digits, base, 16)
	switch {
	case errors.Is(err, strconv.ErrRange):
		warnf("port %s out of range", quote(s))
		return 0, false
	case err != nil:
		warnf("port %s is not a number", quote(s))
		return 0, false
	}
	return uint16(v), true
}

// validName reports whether s can be drawn as one cell of a table: valid
// UTF-8, printable, no spaces (they would split the name in /etc/services
// and make columns ambiguous) and no commas (the field separator).
func validName(s string) bool {
	if s == "" || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r == ' ' || r == ',' || r == '#' || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// quote quotes s for a warning: escaped, so a hostile file cannot write
// terminal control sequences to the status line, and cut short, so a long
// line does not fill it.
func quote(s string) string {
	const limit = 40
	if utf8.RuneCountInString(s) <= limit {
		return strconv.Quote(s)
	}
	r := []rune(s)
	return strconv.Quote(string(r[:limit])) + "..."
}
