// Package etc embeds flowtop's default configuration files (tcp.conf,
// udp.conf, geoip.conf, ...) so that the binary works with nothing
// installed. The same files are installed under /etc/flowtop.
package etc

import "embed"

// Files holds every *.conf file of this directory.
//
//go:embed *.conf
var Files embed.FS
