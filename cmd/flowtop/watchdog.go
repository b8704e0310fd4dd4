package main

import (
	"fmt"
	"io"
	"log/slog"
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

// startWatchdog starts the watchdog for the current process in the
// background (an exec of the binary costs ~10 ms, which overlaps the first
// dump instead of delaying it); ready closes once it runs or failed to
// start. The returned stop closes the pipe, and the watchdog then exits.
func startWatchdog(netns, stateDir string, log *slog.Logger) (stop func(), ready <-chan struct{}, err error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("sysctl watchdog: %w", err)
	}
	started := make(chan struct{})
	cmd := exec.Command("/proc/self/exe", watchdogArg, strconv.Itoa(os.Getpid()), netns, stateDir)
	cmd.Stdin = r
	// Its own process group: a Ctrl-C at the terminal must not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	go func() {
		err := cmd.Start()
		r.Close()
		close(started)
		if err != nil {
			log.Warn("no sysctl watchdog: after a crash the next start restores the sysctls", "err", err)
			return
		}
		cmd.Wait() // reap it; it exits when w closes
	}()
	return func() { w.Close() }, started, nil
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
