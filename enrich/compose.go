package enrich

import (
	"net/netip"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/geo"
)

// Services names a port of a protocol (services.Map).
type Services interface {
	Name(proto uint8, port uint16) string
}

// Resolver gives the cached reverse DNS name of an address, "" while
// unknown, without blocking (rdns.Cache).
type Resolver interface {
	Name(a netip.Addr) string
}

// GeoIP looks up an address (geo.DB).
type GeoIP interface {
	Lookup(a netip.Addr) geo.Info
}

// Owners finds the local process of a flow without blocking
// (procs.Finder).
type Owners interface {
	Owner(f *conntrack.Flow) Process
}

// Lookups combines the enrichment sources; any of them may be nil (turned
// off with -n, -G, or unavailable).
type Lookups struct {
	Services Services
	DNS      Resolver
	Geo      GeoIP
	Procs    Owners
}

// Names implements Namer.
func (l *Lookups) Names(f *conntrack.Flow) Names {
	var n Names
	t := &f.Orig
	if l.Services != nil && f.Proto.HasPorts() {
		n.Service = l.Services.Name(uint8(f.Proto), t.DstPort)
		n.SrcService = l.Services.Name(uint8(f.Proto), t.SrcPort)
	}
	if l.DNS != nil {
		n.SrcName = l.DNS.Name(t.Src.IP())
		n.DstName = l.DNS.Name(t.Dst.IP())
	}
	if l.Geo != nil {
		n.SrcGeo = l.Geo.Lookup(t.Src.IP())
		n.DstGeo = l.Geo.Lookup(t.Dst.IP())
	}
	if l.Procs != nil {
		n.Process = l.Procs.Owner(f)
	}
	return n
}
