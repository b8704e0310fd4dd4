// Package procs finds the local process that owns a flow: the socket by
// the flow's full tuple (sock_diag), then the PID through an index of
// /proc/*/fd.
package procs

import "github.com/flowtop/flowtop/enrich"

// Info describes the process owning a local socket: enrich.Process, which
// the portable packages (the screen, the document) use without linking
// this package's Linux side.
type Info = enrich.Process
