package main

import (
	"context"
	"io"

	"github.com/flowtop/flowtop/conntrack/kernel"
)

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

// defaultStateDir is where --state-dir points by default.
const defaultStateDir = kernel.DefaultStateDir
