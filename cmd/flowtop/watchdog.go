package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/flowtop/flowtop/conntrack"
)

// watchdogArg starts flowtop as its own sysctl watchdog. The watchdog is a
// child that waits for its parent to die: a panic in any goroutine, a
// SIGKILL or any other end closes the pipe it reads, and if the parent did
// not restore the sysctls itself (its state file is still there), the
// watchdog restores them. A clean exit removes the state file first, so the
// watchdog then has nothing to do.
const watchdogArg = "__sysctl-watchdog"

// startWatchdog starts the watchdog for the current process. The returned
// function closes the pipe (the watchdog then exits).
func startWatchdog(netns, stateDir string) (stop func(), err error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("sysctl watchdog: %w", err)
	}
	defer r.Close()
	cmd := exec.Command("/proc/self/exe", watchdogArg, strconv.Itoa(os.Getpid()), netns, stateDir)
	cmd.Stdin = r
	// Its own process group: a Ctrl-C at the terminal must not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		w.Close()
		return nil, fmt.Errorf("start sysctl watchdog: %w", err)
	}
	go cmd.Wait() // reap it; it exits when w closes
	return func() { w.Close() }, nil
}

func runWatchdog(args []string) int {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	if len(args) != 3 {
		return 2
	}
	pid, err := strconv.Atoi(args[0])
	if err != nil {
		return 2
	}
	io.Copy(io.Discard, os.Stdin) // returns when the parent is gone
	var ns *os.File
	if path := conntrack.NetnsPath(args[1]); path != "" {
		if ns, err = os.Open(path); err != nil {
			return 1
		}
		defer ns.Close()
	}
	if err := conntrack.RestoreLeftover(ns, args[2], pid); err != nil {
		fmt.Fprintln(os.Stderr, "flowtop watchdog:", err)
		return 1
	}
	return 0
}
