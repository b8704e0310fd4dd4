package conntrack

import (
	"fmt"
	"os"
	"strconv"
	"sync"

	"github.com/mdlayher/netlink"
	tconntrack "github.com/ti-mo/conntrack"
)

// SysctlMax is the size limit of the conntrack table.
const SysctlMax = "net/netfilter/nf_conntrack_max"

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

// StatsReader reads the kernel's conntrack statistics of one namespace.
// It is safe for concurrent use.
type StatsReader struct {
	mu   sync.Mutex
	conn *tconntrack.Conn
	max  *os.File // nil when nf_conntrack_max could not be opened
}

// OpenStats opens a ctnetlink socket for statistics in the namespace ns
// (nil for flowtop's own), and nf_conntrack_max as seen from there.
func OpenStats(ns *os.File) (*StatsReader, error) {
	cfg := &netlink.Config{}
	if ns != nil {
		cfg.NetNS = int(ns.Fd())
	}
	// ti-mo's Stats is a plain dump (IPCTNL_MSG_CT_GET_STATS_CPU) that ends
	// with NLMSG_DONE, which mdlayher/netlink waits for; StatsGlobal is not
	// used: its answer has no DONE and the read never returns.
	c, err := tconntrack.Dial(cfg)
	if err != nil {
		return nil, fmt.Errorf("dial ctnetlink for statistics: %w", permission(err))
	}
	r := &StatsReader{conn: c}
	if files, err := openSysctls(ns, os.O_RDONLY, SysctlMax); err == nil {
		r.max = files[0]
	}
	return r, nil
}

// Read asks the kernel for its per-CPU statistics and sums them.
func (r *StatsReader) Read() (KernelStats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	perCPU, err := r.conn.Stats()
	if err != nil {
		return KernelStats{}, fmt.Errorf("read conntrack statistics: %w", permission(err))
	}
	s := sumStats(perCPU)
	s.Max = -1
	if r.max != nil {
		if v, err := readSysctl(r.max); err == nil {
			if n, err := strconv.Atoi(v); err == nil {
				s.Max = n
			}
		}
	}
	return s, nil
}

// sumStats adds up the per-CPU records.
func sumStats(perCPU []tconntrack.Stats) KernelStats {
	s := KernelStats{CPUs: len(perCPU)}
	for _, c := range perCPU {
		s.Found += uint64(c.Found)
		s.Invalid += uint64(c.Invalid)
		s.Insert += uint64(c.Insert)
		s.InsertFailed += uint64(c.InsertFailed)
		s.Drop += uint64(c.Drop)
		s.EarlyDrop += uint64(c.EarlyDrop)
		s.Error += uint64(c.Error)
		s.SearchRestart += uint64(c.SearchRestart)
	}
	return s
}

// Close closes the socket and the sysctl file.
func (r *StatsReader) Close() error {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.max != nil {
		r.max.Close()
	}
	return r.conn.Close()
}
