package services

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/flowtop/flowtop/etc"
)

// IP protocol numbers Name understands.
const (
	protoTCP     = 6
	protoUDP     = 17
	protoDCCP    = 33
	protoSCTP    = 132
	protoUDPLite = 136
)

// table indexes the maps of a Map. UDP-Lite has none of its own: it uses UDP's
// ports, as netsniff-ng's flowtop did and as /etc/services has no udplite.
type table int

const (
	tableTCP table = iota
	tableUDP
	tableSCTP
	tableDCCP
	numTables
)

// tableFiles names, per table, the config file and the /etc/services protocol.
var tableFiles = [numTables]struct{ file, proto string }{
	tableTCP:  {"tcp.conf", "tcp"},
	tableUDP:  {"udp.conf", "udp"},
	tableSCTP: {"sctp.conf", "sctp"},
	tableDCCP: {"dccp.conf", "dccp"},
}

// Map names ports per protocol. It is immutable once loaded, so any number of
// goroutines may call Name. A nil *Map knows no names.
type Map struct {
	tables [numTables]map[uint16]string // a nil map is an empty one
}

// Name returns the service name of port for IP protocol proto (6 TCP,
// 17 UDP, 136 UDP-Lite, 132 SCTP, 33 DCCP), or "" when unknown. It does not
// allocate: it is called for every row drawn.
func (m *Map) Name(proto uint8, port uint16) string {
	if m == nil {
		return ""
	}
	var t map[uint16]string
	switch proto {
	case protoTCP:
		t = m.tables[tableTCP]
	case protoUDP, protoUDPLite:
		t = m.tables[tableUDP]
	case protoSCTP:
		t = m.tables[tableSCTP]
	case protoDCCP:
		t = m.tables[tableDCCP]
	}
	return t[port]
}

// Limits of what the Loader reads from one file. No real map comes near
// them; a file that does is a mistake (a log written to the wrong place, a
// binary), which must cost neither seconds at start nor a screenful of
// warnings.
const (
	// maxFileSize is how much of a file is read; the rest is left out,
	// with one warning.
	maxFileSize = 4 << 20
	// maxWarnings is how many problems of one file are reported; the
	// rest are counted in one last line.
	maxWarnings = 10
)

// Loader says where Load looks for maps. The zero Loader finds nothing and
// loads an empty Map.
type Loader struct {
	// Dirs are searched in order for tcp.conf, udp.conf, sctp.conf and
	// dccp.conf; "" entries are skipped. A port takes its name from the
	// first file that names it, so a file in the config dir that names
	// one port leaves the other ports to the files after it.
	Dirs []string

	// EtcServices is the /etc/services file used for a protocol that has
	// no file in Dirs nor in Embedded; "" means none. It is not merged
	// with them port by port: it names nearly every registered port,
	// ephemeral ones included, which would put misleading names on the
	// client side of flows.
	EtcServices string

	// Embedded holds the built-in *.conf files, tried after Dirs; nil
	// means none.
	Embedded fs.FS
}

// Load loads a Map from flowtop's usual places: configDir ("" for none),
// /etc/flowtop, /etc/netsniff-ng (for compatibility with an existing
// netsniff-ng install), the defaults built into the binary, /etc/services.
// Problems (bad lines, unreadable files) are passed to warn, which may be
// nil; they never stop the load.
func Load(configDir string, warn func(string)) *Map {
	return Loader{
		Dirs:        []string{configDir, "/etc/flowtop", "/etc/netsniff-ng"},
		EtcServices: "/etc/services",
		Embedded:    etc.Files,
	}.Load(warn)
}

// Load loads a Map from l's places; see the Loader fields for the order.
// Problems are passed to warn, which may be nil: at most maxWarnings per
// file, and a file is read up to maxFileSize.
func (l Loader) Load(warn func(string)) *Map {
	if warn == nil {
		warn = func(string) {}
	}
	m := &Map{}
	var (
		etcServices map[string]map[uint16]string
		readEtc     bool
	)
	for i, f := range tableFiles {
		if t, ok := l.loadTable(f.file, warn); ok {
			m.tables[i] = t
			continue
		}
		if !readEtc {
			etcServices, readEtc = l.loadEtcServices(warn), true
		}
		m.tables[i] = etcServices[f.proto]
	}
	return m
}

// loadTable merges every file called name found in l.Dirs and then in
// l.Embedded: each port is named by the first file that names it. ok is
// false when there is no such file anywhere. A file that exists but cannot
// be read is reported and passed over.
func (l Loader) loadTable(name string, warn func(string)) (t map[uint16]string, ok bool) {
	add := func(m map[uint16]string) {
		if t == nil {
			t, ok = m, true
			return
		}
		for port, n := range m {
			if _, named := t[port]; !named {
				t[port] = n
			}
		}
	}
	for _, dir := range l.Dirs {
		if dir == "" {
			continue
		}
		path := filepath.Join(dir, name)
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			warn(err.Error()) // *fs.PathError: names the operation and path
			continue
		}
		m, err := parseFile(f, path, warn, parse)
		f.Close()
		if err != nil {
			warn(err.Error())
			continue
		}
		add(m)
	}
	if l.Embedded != nil {
		f, err := l.Embedded.Open(name)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			warn("built-in " + err.Error())
		default:
			m, err := parseFile(f, "built-in "+name, warn, parse)
			f.Close()
			if err != nil {
				warn("built-in " + err.Error())
			} else {
				add(m)
			}
		}
	}
	return t, ok
}

// parseFile reads r (called file in warnings) up to maxFileSize and parses
// it with parseFn, reporting at most maxWarnings of its problems. A file
// cut at the limit loses its last, partial line too, silently: half a line
// is no line, and the cut was reported.
func parseFile[T any](r io.Reader, file string, warn func(string), parseFn func(io.Reader, *warner) T) (T, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxFileSize+1))
	if err != nil {
		var zero T
		return zero, err
	}
	if len(data) > maxFileSize {
		warn(fmt.Sprintf("%s: larger than %d MiB, only its first %d MiB are read", file, maxFileSize>>20, maxFileSize>>20))
		data = data[:maxFileSize]
		data = data[:bytes.LastIndexByte(data, '\n')+1]
	}
	w := newWarner(file, warn, maxWarnings)
	v := parseFn(bytes.NewReader(data), w)
	w.done()
	return v, nil
}

// loadEtcServices parses l.EtcServices for every protocol; nil when there is
// none. A missing file is normal (minimal containers) and not reported.
func (l Loader) loadEtcServices(warn func(string)) map[string]map[uint16]string {
	if l.EtcServices == "" {
		return nil
	}
	f, err := os.Open(l.EtcServices)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			warn(err.Error())
		}
		return nil
	}
	defer f.Close()
	all, err := parseFile(f, l.EtcServices, warn, parseServices)
	if err != nil {
		warn(err.Error())
		return nil
	}
	return all
}
