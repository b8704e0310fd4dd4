package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"syscall"
)

// run is flowtop without os.Exit: it returns the exit status.
func run(args []string, stdout, stderr io.Writer) int {
	o, err := parseOptions(args, stdout)
	if errors.Is(err, errHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "flowtop: %v (see flowtop --help)\n", err)
		return 2
	}
	if o.version {
		fmt.Fprintf(stdout, "flowtop %s\n", version)
		return 0
	}
	if o.interactive() && !haveScreen && !o.update {
		fmt.Fprintln(stderr, "flowtop: this build has no screen (-tags headless): use --no-ui, --once or --batch (see flowtop --help)")
		return 2
	}
	if err := trackingAvailable(o); err != nil {
		fmt.Fprintln(stderr, "flowtop:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	switch {
	case o.update:
		err = runUpdate(ctx, o, stdout)
	case o.remote != "" || o.given["remote"]:
		err = runRemote(ctx, o, stdout, stderr)
	default:
		err = runFlowtop(ctx, o, stdout, stderr)
	}
	if err != nil {
		fmt.Fprintf(stderr, "flowtop: %v\n", err)
		return exitStatus(err)
	}
	return 0
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// interactive reports whether flowtop runs its screen.
func (o *options) interactive() bool { return !o.once && !o.batch && !o.noUI }

// newLogger is flowtop's logger: text on stderr, or, while the screen owns
// the terminal, the warnings shown in its header.
func newLogger(o *options, stderr io.Writer) (*slog.Logger, *warnings) {
	warns := &warnings{}
	if o.interactive() {
		return slog.New(warns.handler()), warns
	}
	return slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo})), warns
}

// pauseGC turns the garbage collector off; the returned resume turns it
// back on at its old setting (calls after the first do nothing).
func pauseGC() (resume func()) {
	old := debug.SetGCPercent(-1)
	return sync.OnceFunc(func() { debug.SetGCPercent(old) })
}
