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
// first one found in the --config-dir, /etc/flowtop and /etc/netsniff-ng
// wins; without one the copy built into the binary is used, and without that
// the protocol's entries of /etc/services. UDP-Lite shares the UDP map.
//
// Parsing is separate from reading files: Parse and ParseServices take an
// io.Reader, and a Loader holds the directories it searches, so tests use
// temporary directories and in-memory files. A bad line never stops a load;
// it is reported as "file:line: problem" to a warn callback and skipped.
package services
