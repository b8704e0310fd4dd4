package ui

import (
	"math"
	"net/netip"
	"strconv"
	"time"

	"github.com/flowtop/flowtop/conntrack"
)

var (
	byteUnits = [...]string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}
	bitUnits  = [...]string{"bit", "kbit", "Mbit", "Gbit", "Tbit", "Pbit", "Ebit"}
)

// humanize prints v with decimal (SI) prefixes the way flowtop does: whole
// units below 1000 ("512B"), one decimal above ("14.1MB"). It never prints
// "1000.0kB": a value that rounds up moves to the next unit.
func humanize(v float64, units []string) string {
	if v < 0 || math.IsNaN(v) {
		v = 0
	}
	if v < 999.5 {
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64) + units[0]
	}
	v /= 1000
	i := 1
	for v >= 999.95 && i < len(units)-1 {
		v /= 1000
		i++
	}
	return strconv.FormatFloat(v, 'f', 1, 64) + units[i]
}

// fmtBytes prints a byte count ("14.1MB").
func fmtBytes(b uint64) string { return humanize(float64(b), byteUnits[:]) }

// fmtRate prints a rate in bytes/s, or in bit/s when bits is set
// ("20.6kB/s", "164.8kbit/s").
func fmtRate(bytesPerS float64, bits bool) string {
	if bits {
		return humanize(bytesPerS*8, bitUnits[:]) + "/s"
	}
	return humanize(bytesPerS, byteUnits[:]) + "/s"
}

// rateWidth is the widest rate fmtRate prints below the exa range, used as
// the minimum width of rate columns so they do not jitter as values change.
func rateWidth(bits bool) int {
	if bits {
		return len("999.9Mbit/s")
	}
	return len("999.9kB/s")
}

// fmtAge prints a duration in its largest unit only, like flowtop: 8s, 3m,
// 2h, 1d.
func fmtAge(d time.Duration) string {
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	case d < 24*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	}
	return strconv.Itoa(int(d/(24*time.Hour))) + "d"
}

// flowAge prints the age of f at now, "-" when the kernel gave no start.
func flowAge(f *conntrack.Flow, now time.Time) string {
	if age, ok := f.Age(now); ok {
		return fmtAge(age)
	}
	return "-"
}

// addrString prints an address without its IPv4-mapped form; "-" for the
// invalid address.
func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return "-"
	}
	return a.Unmap().String()
}

// endpoint prints address and port, IPv6 in brackets ("[2001:db8::1]:443").
func endpoint(a netip.Addr, port uint16, hasPorts bool) string {
	if !hasPorts {
		return addrString(a)
	}
	if a.IsValid() && a.Unmap().Is6() {
		return "[" + addrString(a) + "]:" + strconv.Itoa(int(port))
	}
	return addrString(a) + ":" + strconv.Itoa(int(port))
}

// fmtCount prints an integer with thousands separators ("12,345").
func fmtCount(n uint64) string {
	s := strconv.FormatUint(n, 10)
	if len(s) <= 3 {
		return s
	}
	out := make([]byte, 0, len(s)+len(s)/3)
	for i := range len(s) {
		if i > 0 && (len(s)-i)%3 == 0 {
			out = append(out, ',')
		}
		out = append(out, s[i])
	}
	return string(out)
}

// fmtDuration prints a short duration for the health line ("12ms", "1.2s").
func fmtDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return strconv.Itoa(int(d/time.Microsecond)) + "µs"
	case d < time.Second:
		return strconv.Itoa(int(d/time.Millisecond)) + "ms"
	}
	return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
}
