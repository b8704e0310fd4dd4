// Command flowtop is a top-like, live view of every connection the Linux
// kernel's netfilter connection tracking knows, with JSON, file and MQTT
// exports. See README.md and flowtop(8).
package main

import (
	"os"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	if len(os.Args) > 1 && os.Args[1] == watchdogArg {
		os.Exit(runWatchdog(os.Args[2:]))
	}
	if os.Getenv("GOGC") == "" {
		// The table's big allocations (flow records, snapshots' pointer
		// slices) are cheap to collect: records hold no pointers. A heap
		// allowed to grow by 25 % instead of 100 % keeps a million-flow
		// table near 450 MB instead of 600 MB for little CPU.
		debug.SetGCPercent(25)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
