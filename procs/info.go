// Package procs finds the local process that owns a flow: the socket by
// the flow's full tuple (sock_diag), then the PID through an index of
// /proc/*/fd.
package procs

// Info describes the process owning a local socket. The zero value means
// no owner is known.
type Info struct {
	PID     int
	Name    string // executable's base name (comm)
	User    string // user name, or the uid when it has no name
	Cmdline string // arguments joined by spaces
}

// Known reports whether an owner was found.
func (i Info) Known() bool { return i.PID != 0 }
