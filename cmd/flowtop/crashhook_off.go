//go:build !crashhook && linux

package main

// crashHook does nothing: the test hook that panics on purpose is built
// only with -tags crashhook (crashhook.go).
func crashHook() {}
