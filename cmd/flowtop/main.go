// Command flowtop is a top-like, live view of every connection the Linux
// kernel's netfilter connection tracking knows, with JSON, file and MQTT
// exports. See README.md and flowtop(8).
package main

import (
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	if len(os.Args) > 1 && os.Args[1] == watchdogArg {
		os.Exit(runWatchdog(os.Args[2:]))
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
