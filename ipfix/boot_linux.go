package ipfix

import (
	"time"

	"golang.org/x/sys/unix"
)

// bootTime is when the system started, in Unix milliseconds: NetFlow v9's
// uptime clock. CLOCK_BOOTTIME counts suspended time too, as the kernel's
// flow timestamps do.
func bootTime(now time.Time) int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		return now.UnixMilli()
	}
	return now.UnixMilli() - ts.Nano()/int64(time.Millisecond)
}
