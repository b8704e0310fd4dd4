package main

import "os"

// crashHook lets the tests prove that a panic in a goroutine other than
// main still gets the sysctls restored (by the watchdog): with
// FLOWTOP_TEST_PANIC=1 in the environment flowtop panics in a goroutine
// once it runs (sysctls set, first dump done). It does nothing otherwise.
func crashHook() {
	if os.Getenv("FLOWTOP_TEST_PANIC") != "1" {
		return
	}
	go func() { panic("FLOWTOP_TEST_PANIC: deliberate panic in a goroutine") }()
}
