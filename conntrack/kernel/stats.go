package kernel

import (
	"fmt"
	"github.com/flowtop/flowtop/conntrack"
	"os"
	"strconv"
	"sync"

	"github.com/mdlayher/netlink"
	tconntrack "github.com/ti-mo/conntrack"
)

// SysctlMax is the size limit of the conntrack table.
const SysctlMax = "net/netfilter/nf_conntrack_max"

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
func (r *StatsReader) Read() (conntrack.KernelStats, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	perCPU, err := r.conn.Stats()
	if err != nil {
		return conntrack.KernelStats{}, fmt.Errorf("read conntrack statistics: %w", permission(err))
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
func sumStats(perCPU []tconntrack.Stats) conntrack.KernelStats {
	s := conntrack.KernelStats{CPUs: len(perCPU)}
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

// Close closes the socket and the sysctl file. It does not take the lock:
// a Read stuck in the kernel holds it, and closing the socket is what ends
// that read (netlink's Close interrupts a blocked receive). Waiting for it
// could keep flowtop from exiting and restoring its sysctls.
func (r *StatsReader) Close() error {
	if r == nil {
		return nil
	}
	if r.max != nil {
		r.max.Close()
	}
	return r.conn.Close()
}
