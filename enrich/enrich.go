// Package enrich attaches what can be known about a flow beyond the kernel's
// tuple: service names, reverse DNS, GeoIP and the owning process. Lookups
// are cached and run off the event path; a Names call never blocks.
package enrich

import (
	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/geo"
)

// Names is what is known about one flow right now. Empty fields are not
// known (yet): a reverse DNS answer, for one, may arrive later.
type Names struct {
	Service    string // service of the original destination port ("https")
	SrcService string // service of the original source port, when known
	SrcName    string // reverse DNS of the original source
	DstName    string // reverse DNS of the original destination
	SrcGeo     geo.Info
	DstGeo     geo.Info
	Process    Process
}

// Namer gives the names of a flow. Implementations must be safe for
// concurrent use and must not block.
type Namer interface {
	Names(f *conntrack.Flow) Names
}

// None is a Namer that knows nothing (flowtop -n -G without services).
type None struct{}

// Names returns the zero Names.
func (None) Names(*conntrack.Flow) Names { return Names{} }

// Process describes the process owning a local socket (procs.Finder
// finds it on Linux; a router's document carries it). The zero value
// means no owner is known.
type Process struct {
	PID     int
	Name    string // executable's base name (comm)
	User    string // user name, or the uid when it has no name
	Cmdline string // arguments joined by spaces
}

// Known reports whether an owner was found.
func (p Process) Known() bool { return p.PID != 0 }
