// Package services names the port of a flow ("22" -> "ssh") from small
// per-protocol maps.
//
// Maps come from flowtop's own format, one "port, name" per line:
//
//	# comment
//	22, ssh
//	0x50, http   # hex is accepted; a # starts a comment anywhere
//
// For each protocol file (tcp.conf, udp.conf, sctp.conf, dccp.conf) the
// copies in the --config-dir, /etc/flowtop, /etc/netsniff-ng and the one
// built into the binary are merged port by port: a port is named by the
// first of them that names it, so a tcp.conf that names one port of its own
// keeps the default names of the others. A protocol with no such file
// anywhere takes its entries of /etc/services. UDP-Lite shares the UDP map.
//
// Parsing is separate from reading files: Parse and ParseServices take an
// io.Reader, and a Loader holds the directories it searches, so tests use
// temporary directories and in-memory files. A bad line never stops a load;
// it is reported as "file:line: problem" to a warn callback and skipped.
// The Loader reads at most 4 MiB of a file and reports at most 10 problems
// per file, then one line with the number of the others.
package services
