//go:build crashhook && linux

package main

import "os"

// crashHook lets TestSysctlsRestoredAfterPanicInGoroutine prove that a
// panic in a goroutine other than main still gets the sysctls restored (by
// the watchdog). Only a binary built with -tags crashhook has it: with
// FLOWTOP_TEST_PANIC=1 in the environment, that flowtop panics in a
// goroutine once it runs (sysctls set, first dump done).
func crashHook() {
	if os.Getenv("FLOWTOP_TEST_PANIC") != "1" {
		return
	}
	go func() { panic("FLOWTOP_TEST_PANIC: deliberate panic in a goroutine") }()
}
