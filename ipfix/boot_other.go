//go:build !linux

package ipfix

import "time"

// bootTime stands in for the system's start with the exporter's: only
// Linux has conntrack flows to export.
func bootTime(now time.Time) int64 { return now.UnixMilli() }
