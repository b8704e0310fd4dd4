//go:build linux

package main

import (
	"bufio"
	"fmt"
	"github.com/flowtop/flowtop/conntrack/kernel"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
)

// watchdogArg starts flowtop as its own sysctl watchdog. The watchdog is a
// child that waits for its parent to die: a panic in any goroutine, a
// SIGKILL or any other end closes the pipe it reads, and if the parent did
// not restore the sysctls itself (its state file is still there), the
// watchdog restores them. A clean exit removes the state file first, so the
// watchdog then has nothing to do.
const watchdogArg = "__sysctl-watchdog"

// watchdogScript is the watchdog while flowtop runs: a shell waiting on
// the pipe, a small fraction of the memory and start-up CPU of a second
// Go process (which a --once run would share its cores with). When the
// pipe closes without "done", flowtop ended
// without restoring: the shell then execs flowtop's own binary (fd 3, so
// an upgrade that replaced the file changes nothing) as the watchdog
// proper. $0 is watchdogArg, $1.. are runWatchdog's arguments.
const watchdogScript = `trap '' INT TERM HUP QUIT
read -r line
[ "$line" = done ] && exit 0
exec /proc/self/fd/3 "$0" "$@"`

// startWatchdog starts the watchdog for the current process in the
// background (it overlaps the first dump instead of delaying it); ready
// closes once it runs or failed to start. The returned stop tells it that
// flowtop restored the sysctls itself, and it exits.
//
// With keep (--keep-accounting) the watchdog leaves the sysctls on, as
// flowtop would have.
func startWatchdog(netns, stateDir string, keep bool, log *slog.Logger) (stop func(), ready <-chan struct{}, err error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nil, fmt.Errorf("sysctl watchdog: %w", err)
	}
	self, err := os.Open("/proc/self/exe")
	if err != nil {
		r.Close()
		w.Close()
		return nil, nil, fmt.Errorf("sysctl watchdog: %w", err)
	}
	mode := watchdogRestore
	if keep {
		mode = watchdogKeep
	}
	args := []string{watchdogArg, strconv.Itoa(os.Getpid()), netns, stateDir, mode}
	cmd := exec.Command("/bin/sh", append([]string{"-c", watchdogScript}, args...)...)
	if _, err := os.Stat("/bin/sh"); err != nil {
		// No shell (a minimal container): the Go watchdog from the start.
		cmd = exec.Command("/proc/self/exe", args...)
	}
	cmd.Stdin = r
	cmd.ExtraFiles = []*os.File{self}
	// Its own process group: a Ctrl-C at the terminal must not reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	started := make(chan struct{})
	go func() {
		err := cmd.Start()
		r.Close()
		self.Close()
		close(started)
		if err != nil {
			log.Warn("no sysctl watchdog: after a crash the next start restores the sysctls", "err", err)
			return
		}
		cmd.Wait() // reap it; it exits when w closes
	}()
	return func() {
		w.WriteString("done\n")
		w.Close()
	}, started, nil
}

// What the watchdog does with the sysctls flowtop left on: put back the
// values recorded, or (--keep-accounting) leave them on.
const (
	watchdogRestore = "restore"
	watchdogKeep    = "keep"
)

func runWatchdog(args []string) int {
	signal.Ignore(syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGQUIT)
	if len(args) != 4 || (args[3] != watchdogRestore && args[3] != watchdogKeep) {
		return 2
	}
	pid, err := strconv.Atoi(args[0])
	if err != nil {
		return 2
	}
	// Started through watchdogScript the pipe is already closed; started
	// directly, this returns when the parent is gone.
	if line, _ := bufio.NewReader(os.Stdin).ReadString('\n'); line == "done\n" {
		return 0
	}
	var ns *os.File
	if path := kernel.NetnsPath(args[1]); path != "" {
		if ns, err = os.Open(path); err != nil {
			return 1
		}
		defer ns.Close()
	}
	leave := kernel.RestoreLeftover
	if args[3] == watchdogKeep {
		leave = kernel.KeepLeftover
	}
	if err := leave(ns, args[2], pid); err != nil {
		fmt.Fprintln(os.Stderr, "flowtop watchdog:", err)
		return 1
	}
	return 0
}
