//go:build linux

package main

import (
	"fmt"
	"github.com/flowtop/flowtop/conntrack/kernel"
	"io"
	"log/slog"
	"sync"

	"github.com/flowtop/flowtop/conntrack"
)

// endAccounting puts the sysctls back at exit, or with --keep-accounting
// leaves them on and says so in one line on stderr (the screen has
// released the terminal by then).
func endAccounting(guard *kernel.SysctlGuard, keep bool, stderr io.Writer) {
	if !keep {
		if err := guard.Restore(); err != nil {
			fmt.Fprintf(stderr, "flowtop: restoring sysctls: %v\n", err)
		}
		return
	}
	acct, stamps := guard.Enabled()
	if err := guard.Keep(); err != nil {
		fmt.Fprintf(stderr, "flowtop: --keep-accounting: %v\n", err)
		return
	}
	if acct || stamps {
		fmt.Fprintf(stderr, "flowtop: --keep-accounting: leaving nf_conntrack_acct=%s and nf_conntrack_timestamp=%s as they are\n",
			onOff(acct), onOff(stamps))
	}
}

func onOff(on bool) string {
	if on {
		return "1"
	}
	return "0"
}

// uncountedWarning is the warning about n flows whose counters are
// unknown, "" when there are none. The phrase is the one flowtop(8)
// promises.
func uncountedWarning(n int) string {
	if n <= 0 {
		return ""
	}
	return fmt.Sprintf("flows whose counters are unknown: %d (created while nf_conntrack_acct was off; "+
		"flowtop turns it off again at exit unless --keep-accounting)", n)
}

// warnUncounted logs the warning about n flows whose counters are unknown,
// for the modes without a screen.
func warnUncounted(log *slog.Logger, n int) {
	if w := uncountedWarning(n); w != "" {
		log.Warn(w)
	}
}

// countUncounted counts the flows without counters.
func countUncounted(flows []*conntrack.Flow) int {
	n := 0
	for _, f := range flows {
		if !f.HasCounters {
			n++
		}
	}
	return n
}

// uncountedNote is the screen's warning about flows whose counters are
// unknown. The screen asks for its warnings at every build: the flows of
// a snapshot are counted once.
type uncountedNote struct {
	latest func() *conntrack.Snapshot

	mu   sync.Mutex
	snap *conntrack.Snapshot
	n    int
}

func (u *uncountedNote) warnings() []string {
	s := u.latest()
	if s == nil {
		return nil
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if s != u.snap {
		u.snap, u.n = s, countUncounted(s.Flows)
	}
	if w := uncountedWarning(u.n); w != "" {
		return []string{w}
	}
	return nil
}
