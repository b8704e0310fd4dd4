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
		// Most of the heap is the table's flow records, which hold no
		// pointers: a collection only scans the entries and snapshots, and
		// in steady state the heap grows by about a snapshot (8 bytes per
		// flow) per interval. So a heap allowed to grow by 10 % instead of
		// 100 % costs a collection every few seconds and little CPU, and
		// keeps the memory used close to the live table
		// (docs/BENCHMARKS.md has the figures).
		debug.SetGCPercent(10)
	}
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}
