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
	if o.update {
		err = runUpdate(ctx, o, stdout)
	} else {
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

// runFlowtop opens the kernel side, starts the table and the exporters,
// and runs the chosen mode until it ends or ctx is cancelled by a signal.
// Every path out restores the sysctls.
func runFlowtop(ctx context.Context, o *options, stdout, stderr io.Writer) error {
	// The first dump allocates the whole table at once, all of it live: a
	// collection before it is in finds nothing to free and only rescans a
	// growing heap. The collector resumes once the first snapshot is in.
	resumeGC := pauseGC()
	defer resumeGC()

	// Before the kernel: a bad address or credential file ends flowtop
	// before anything is changed.
	metricsLn, err := listenMetrics(o)
	if err != nil {
		return err
	}
	defer metricsLn.close()

	log, warns := newLogger(o, stderr)
	k, err := openKernel(o, log, stderr)
	if err != nil {
		return err
	}
	defer k.Close() // last: the sysctls are restored once all else stopped

	if o.streamsOnce() {
		return onceStreamed(ctx, o, k, stdout, log)
	}
	s := newSession(o, k, metricsLn, log, warns, stdout)
	defer s.close()
	first, err := s.start(ctx)
	if first == nil {
		return err // nil when interrupted before the first dump ended
	}
	if !o.once {
		// --once exits after one document: no collection would pay.
		resumeGC()
	}
	k.waitWatchdog()
	if err := s.startExporters(); err != nil {
		return err
	}
	s.startTrackingWatch()
	return s.run(ctx, first)
}

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
