package services

import (
	"bytes"
	"errors"
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

// Loader says where Load looks for maps. The zero Loader finds nothing and
// loads an empty Map.
type Loader struct {
	// Dirs are searched in order for tcp.conf, udp.conf, sctp.conf and
	// dccp.conf; "" entries are skipped. The first file found for a
	// protocol is its whole map, even when empty, so an empty file in the
	// config dir turns that protocol's names off.
	Dirs []string

	// EtcServices is the /etc/services file used for a protocol that has
	// no file in Dirs nor in Embedded; "" means none.
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
// Problems are passed to warn, which may be nil.
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
		if t, ok := l.loadFile(f.file, warn); ok {
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

// loadFile parses the first file called name found in l.Dirs, then in
// l.Embedded. A file that exists but cannot be read is reported and passed
// over, so a broken file in one place does not hide a good one in the next.
func (l Loader) loadFile(name string, warn func(string)) (map[uint16]string, bool) {
	for _, dir := range l.Dirs {
		if dir == "" {
			continue
		}
		path := filepath.Join(dir, name)
		data, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			warn(err.Error()) // *fs.PathError: names the operation and path
			continue
		}
		return Parse(bytes.NewReader(data), path, warn), true
	}
	if l.Embedded == nil {
		return nil, false
	}
	data, err := fs.ReadFile(l.Embedded, name)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			warn("built-in " + err.Error())
		}
		return nil, false
	}
	return Parse(bytes.NewReader(data), "built-in "+name, warn), true
}

// loadEtcServices parses l.EtcServices for every protocol; nil when there is
// none. A missing file is normal (minimal containers) and not reported.
func (l Loader) loadEtcServices(warn func(string)) map[string]map[uint16]string {
	if l.EtcServices == "" {
		return nil
	}
	data, err := os.ReadFile(l.EtcServices)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			warn(err.Error())
		}
		return nil
	}
	return parseServices(bytes.NewReader(data), l.EtcServices, warn)
}
