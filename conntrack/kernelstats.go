package conntrack

// KernelStats are the kernel's conntrack statistics of one namespace,
// summed over its CPUs: what `conntrack -S` prints per CPU and what
// /proc/net/stat/nf_conntrack holds on kernels built with
// NF_CONNTRACK_PROCFS (no longer the default since 5.15.65, which is why
// they are read over ctnetlink here). Each counter is a 32-bit per-CPU
// count in the kernel: it wraps.
type KernelStats struct {
	// CPUs is how many per-CPU records the kernel sent.
	CPUs int
	// Found: lookups that found an entry. Invalid: packets conntrack could
	// not track. Insert: entries inserted (0 on recent kernels, which no
	// longer count them). InsertFailed: entries that lost a race to the
	// hash table. Drop: packets dropped because an entry could not be
	// made (table full or a failed insert). EarlyDrop: entries evicted to
	// make room in a full table. Error: ICMP(v6) errors that matched no
	// entry. SearchRestart: lookups restarted because the table was
	// resized under them.
	Found, Invalid, Insert, InsertFailed, Drop, EarlyDrop, Error, SearchRestart uint64
	// Max is nf_conntrack_max, -1 when unknown.
	Max int
}
