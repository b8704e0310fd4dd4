package nstest

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestTruncate(t *testing.T) {
	if s := strings.Repeat("a", MaxDump); Truncate(s) != s {
		t.Errorf("a string of MaxDump bytes was cut")
	}
	long := strings.Repeat("x", 100) + strings.Repeat("é", 5_000) + "END"
	got := Truncate(long)
	if len(got) > MaxDump+40 || !strings.HasPrefix(got, "xxx") || !strings.HasSuffix(got, "END") ||
		!strings.Contains(got, "bytes cut") || !utf8.ValidString(got) {
		t.Errorf("Truncate of %d bytes: %d bytes, %q", len(long), len(got), got)
	}
	if d := Dump(struct{ Flows []int }{make([]int, 5_000)}); len(d) > MaxDump+40 {
		t.Errorf("Dump of 5,000 ints: %d bytes", len(d))
	}
}

// fatalRecorder is a testing.TB whose Fatalf records instead of ending the
// goroutine.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}
func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
}

func TestWaitFor(t *testing.T) {
	start, polls := time.Now(), 0
	WaitFor(t, Patience, "a condition true after 50 ms", func() (bool, string) {
		polls++
		return time.Since(start) > 50*time.Millisecond, ""
	})
	if polls < 2 {
		t.Errorf("%d polls", polls)
	}

	r := &fatalRecorder{TB: t}
	WaitFor(r, 30*time.Millisecond, "never", func() (bool, string) { return false, strings.Repeat("y", 1<<20) })
	if !strings.HasPrefix(r.msg, "never: not within 30ms; last: yyy") || len(r.msg) > 2*MaxDump {
		t.Errorf("failure message of %d bytes: %.100q", len(r.msg), r.msg)
	}
}
