package conntrack

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// prefault maps in the pages of a fresh allocation with one system call
// (MADV_POPULATE_WRITE, Linux 5.14) instead of one page fault per 4 KiB
// page on first write. A 100k-flow first dump takes some 5,000 faults for
// its records alone, and under a hypervisor each costs microseconds. On
// kernels without it nothing happens and the pages fault in as before.
func prefault[T any](s []T) { populate(s, false) }

// prefaultHuge is prefault for a big, long-lived allocation that will be
// written in full (the table's entries, the records of a one-shot dump):
// it asks for transparent huge pages first (MADV_HUGEPAGE, for the
// "madvise" THP mode most distributions default to), which cut the CPU of a
// 100k-flow --once by a fifth. Never for memory that is freed and reused
// piecemeal: a huge page half in use would count whole in the RSS.
func prefaultHuge[T any](s []T) { populate(s, true) }

func populate[T any](s []T, huge bool) {
	if cap(s) == 0 {
		return
	}
	const page = 4096
	base := unsafe.Pointer(unsafe.SliceData(s[:1]))
	size := uintptr(cap(s)) * unsafe.Sizeof(s[0])
	// Whole pages inside the allocation only: the pages at its edges may
	// be shared with other objects, which already touched them.
	skip := (page - uintptr(base)%page) % page
	if size < skip+page {
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Add(base, skip)), (size-skip)&^(page-1))
	if huge && len(b) >= 4<<20 {
		unix.Madvise(b, unix.MADV_HUGEPAGE)
	}
	unix.Madvise(b, unix.MADV_POPULATE_WRITE)
}
