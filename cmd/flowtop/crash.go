package main

import (
	"os"

	"github.com/flowtop/flowtop/conntrack"
)

// crashHook lets the tests prove that a panic in a goroutine other than
// main still gets the sysctls restored (by the watchdog): with
// FLOWTOP_TEST_PANIC=1 in the environment flowtop panics in a goroutine
// once the sysctls are set. It does nothing otherwise.
func crashHook(_ *conntrack.SysctlGuard) {
	if os.Getenv("FLOWTOP_TEST_PANIC") != "1" {
		return
	}
	go func() { panic("FLOWTOP_TEST_PANIC: deliberate panic in a goroutine") }()
}
