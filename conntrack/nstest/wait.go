package nstest

import (
	"fmt"
	"testing"
	"time"
	"unicode/utf8"
)

// Patience is how long a test waits for what takes well under a second on
// an idle machine: a snapshot, a process start, a restored sysctl. CI runs
// on a shared 2-core machine, next to the other packages' tests, where a
// -race refresh of a 30,000-flow table has taken 2.5 s; a deadline short
// enough to notice slowness fails a correct program there. Speed is
// measured by benchmarks, not by these deadlines.
const Patience = time.Minute

// MaxDump is how much of a value a failure message shows: enough to see
// what went wrong, never a 30,000-flow snapshot.
const MaxDump = 400

// Truncate returns s, or when it is longer than MaxDump bytes its head and
// its tail with the number of bytes cut between them.
func Truncate(s string) string {
	if len(s) <= MaxDump {
		return s
	}
	head, tail := MaxDump/2, len(s)-MaxDump/2
	// Cut on character boundaries.
	for head > 0 && !utf8.RuneStart(s[head]) {
		head--
	}
	for tail < len(s) && !utf8.RuneStart(s[tail]) {
		tail++
	}
	return fmt.Sprintf("%s …[%d bytes cut]… %s", s[:head], tail-head, s[tail:])
}

// Dump formats v with %+v for a failure message, truncated to MaxDump.
func Dump(v any) string { return Truncate(fmt.Sprintf("%+v", v)) }

// WaitFor polls cond until it reports done, and fails the test when that
// has not happened within the given time, with what and the state cond
// returned last (truncated). The polls start 10 ms apart and slow down to
// 200 ms, so that a condition that runs a command does not keep a busy
// machine busier.
func WaitFor(t testing.TB, within time.Duration, what string, cond func() (done bool, state string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	step := 10 * time.Millisecond
	for {
		done, state := cond()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last: %s", what, within, Truncate(state))
			return
		}
		time.Sleep(min(step, max(time.Until(deadline), time.Millisecond))) // the poll interval
		step = min(2*step, 200*time.Millisecond)
	}
}
