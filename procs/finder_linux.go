package procs

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"golang.org/x/sys/unix"
)

// Config tunes a Finder. The zero value watches the caller's own network
// namespace with the defaults below.
type Config struct {
	// NetNS is the network namespace whose sockets are looked up: "" for
	// flowtop's own, else a path such as /var/run/netns/NAME or
	// /proc/PID/ns/net.
	NetNS string
	// ProcRoot is where /proc is mounted (default /proc). PIDs in it must
	// belong to flowtop's PID namespace.
	ProcRoot string
	// MaxRetries is how many more times a flow without an owner is looked
	// up after the first miss before it is remembered as unowned (default
	// 5; negative: never retried).
	MaxRetries int
	// RetryEvery is the least time between two lookups of the same flow
	// (default 1s). A flow is retried only when it is asked about again.
	RetryEvery time.Duration
	// Workers is how many lookups run at once (default 2), each with its
	// own sock_diag socket.
	Workers int
}

// Defaults and bounds.
const (
	defaultRetries    = 5
	defaultRetryEvery = time.Second
	defaultWorkers    = 2
	// scanEvery bounds how often /proc is walked, however many unknown
	// sockets turn up.
	scanEvery = 500 * time.Millisecond
	// addrsEvery is how long the list of local addresses is trusted.
	addrsEvery = 2 * time.Second
	// defaultMaxEntries bounds the cache; idleTTL drops flows nobody asked
	// about for that long (they have usually ended).
	defaultMaxEntries = 1 << 16
	idleTTL           = 2 * time.Minute
)

// Stats counts a Finder's work, for the status line and for tests.
type Stats struct {
	Cached   int    // flows in the cache (any state)
	Queued   int    // flows waiting for a worker
	Inodes   int    // sockets in the inode -> PID index
	Resolved uint64 // lookups that found an owner
	Unowned  uint64 // flows given up on after their retries
	Retries  uint64 // lookups repeated after a miss
	Queries  uint64 // sock_diag requests sent
	Errors   uint64 // sock_diag, address-list or /proc failures ("no socket" is not one)
	Scans    uint64 // walks of /proc/*/fd
	Evicted  uint64 // cache entries dropped for size or idleness
	// Deferred counts lookups not queued because the queue was full; the
	// flow is queued again the next time it is asked about.
	Deferred uint64
	// LastScan is how long the latest walk of /proc took.
	LastScan time.Duration
}

// sockLooker is the seam to the kernel: one exact sock_diag lookup.
// Tests fake it.
type sockLooker interface {
	lookup(q sockQuery) (sockInfo, bool, error)
	Close() error
}

// Finder maps flows to the local processes owning their sockets. Owner
// never blocks: lookups run on a few worker goroutines, and their answers
// are cached per flow.
//
// Each lookup is an exact-tuple sock_diag query rather than a dump of all
// sockets per refresh: its cost follows the flows somebody asks about
// (only what is on screen or exported), not the host's socket count, and
// the kernel applies its own delivery rules (listener after connected
// socket, unconnected UDP, dual-stack sockets for IPv4 peers,
// SO_REUSEPORT), which a matcher over a dump would have to copy. A burst
// of 20,000 flows is one to two round trips per flow spread over the
// workers, and one walk of /proc; see BenchmarkBurst.
type Finder struct {
	cfg        Config
	maxEntries int
	now        func() time.Time
	index      *inodeIndex
	addrs      *localAddrs
	closers    []interface{ Close() error }

	mu        sync.Mutex
	cond      *sync.Cond    // signals queue or closed changes
	changed   chan struct{} // closed when an entry is answered while waiters > 0
	waiters   int           // Await calls waiting
	cache     map[flowKey]*entry
	queue     []*entry
	closed    bool
	lastSweep time.Time

	wg      sync.WaitGroup
	closeMu sync.Once

	resolved, unowned, retries, queries, errors, evicted, dropped atomic.Uint64
}

// flowKey identifies a flow across lookups: its connection as
// conntrack.Key defines it, in one kernel entry (the ID: the same tuples
// seen again later are a new connection, perhaps of another process),
// with what the socket lookup reads besides the key (the family and the
// reply tuple, which an entry keeps for its life).
type flowKey struct {
	conn   conntrack.Key
	id     uint32
	family conntrack.Family
	reply  conntrack.Tuple
}

type entryState uint8

const (
	statePending entryState = iota // queued or being looked up
	stateRetry                     // missed; may be queued again after retryAt
	stateDone                      // info is final (zero: unowned)
)

// entry is one flow's cache slot. Fields other than key are guarded by
// Finder.mu.
type entry struct {
	key       flowKey
	state     entryState
	info      Info
	attempts  int
	retryAt   time.Time
	lastAsked time.Time
	gone      bool // evicted; a worker skips it
	// sock is the socket found while the inode index had not caught up
	// (indexLater); the retry goes straight to the index with it.
	sock *pendingSock
}

// pendingSock is a socket inode and the index generation when it was
// learnt.
type pendingSock struct {
	inode, gen uint64
}

// New starts a Finder. It fails when sock_diag cannot be dialled in the
// namespace: entering another namespace needs CAP_SYS_ADMIN. Reading the
// fds of other users' processes needs CAP_SYS_PTRACE (or root); without
// it their flows just stay unowned.
func New(cfg Config) (*Finder, error) {
	cfg = withDefaults(cfg)
	nsFD := 0
	if cfg.NetNS != "" {
		ns, err := os.Open(cfg.NetNS)
		if err != nil {
			return nil, fmt.Errorf("procs: open network namespace: %w", err)
		}
		// The sockets keep the namespace once created.
		defer ns.Close()
		nsFD = int(ns.Fd())
	}
	lookers := make([]sockLooker, 0, cfg.Workers)
	closeAll := func() {
		for _, l := range lookers {
			l.Close()
		}
	}
	for range cfg.Workers {
		d, err := dialDiag(nsFD)
		if err != nil {
			closeAll()
			return nil, dialError("sock_diag", cfg.NetNS, err)
		}
		lookers = append(lookers, d)
	}
	rc, err := dialRoute(nsFD)
	if err != nil {
		closeAll()
		return nil, dialError("rtnetlink", cfg.NetNS, err)
	}
	f := newFinder(cfg, lookers, rc.addrs)
	f.closers = append(f.closers, rc)
	return f, nil
}

// dialError names what a failed dial needs.
func dialError(what, ns string, err error) error {
	if ns == "" {
		return fmt.Errorf("procs: dial %s: %w (is the kernel built with CONFIG_INET_DIAG?)", what, err)
	}
	return fmt.Errorf("procs: dial %s in %s: %w (entering a network namespace needs CAP_SYS_ADMIN)", what, ns, err)
}

func withDefaults(cfg Config) Config {
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	switch {
	case cfg.MaxRetries == 0:
		cfg.MaxRetries = defaultRetries
	case cfg.MaxRetries < 0:
		cfg.MaxRetries = 0
	}
	if cfg.RetryEvery <= 0 {
		cfg.RetryEvery = defaultRetryEvery
	}
	if cfg.Workers <= 0 {
		cfg.Workers = defaultWorkers
	}
	return cfg
}

// newFinder starts one worker per looker. cfg must have its defaults.
func newFinder(cfg Config, lookers []sockLooker, fetchAddrs func() (map[netip.Addr]bool, error)) *Finder {
	f := &Finder{
		cfg:        cfg,
		maxEntries: defaultMaxEntries,
		now:        time.Now,
		index:      newInodeIndex(cfg.ProcRoot, scanEvery),
		addrs:      &localAddrs{every: addrsEvery, now: time.Now, fetch: fetchAddrs},
		cache:      map[flowKey]*entry{},
		changed:    make(chan struct{}),
	}
	f.cond = sync.NewCond(&f.mu)
	for _, l := range lookers {
		f.closers = append(f.closers, l)
		f.wg.Add(1)
		go f.work(l)
	}
	return f
}

// Owner returns the process owning fl's local socket if it is known, and
// otherwise the zero Info, queuing a lookup whose answer a later call
// returns. Flows of protocols without sockets sock_diag can find (ICMP,
// SCTP, ...) have no owner.
func (f *Finder) Owner(fl *conntrack.Flow) Info {
	if fl == nil || !lookupable(fl) {
		return Info{}
	}
	// A flow the host forwards has no owner, and a router forwards most
	// of its flows: once the address list is known they take no cache
	// entry (which, with more flows than entries, made every lookup an
	// insertion and an eviction).
	if f.addrs.remote(fl.Orig.Src.IP(), fl.Reply.Src.IP()) {
		return Info{}
	}
	now := f.now()
	f.mu.Lock()
	defer f.mu.Unlock()
	if e := f.askLocked(keyOf(fl), now); e != nil && e.state == stateDone {
		return e.info
	}
	return Info{}
}

func keyOf(fl *conntrack.Flow) flowKey {
	return flowKey{conn: fl.Key(), id: fl.ID, family: fl.Family, reply: fl.Reply}
}

// askLocked is Owner's bookkeeping: it returns k's entry, made and queued
// if new, queued again if its retry is due; nil once closed for a flow
// not cached.
func (f *Finder) askLocked(k flowKey, now time.Time) *entry {
	f.maybeSweep(now)
	e, ok := f.cache[k]
	if !ok {
		if f.closed {
			return nil
		}
		if len(f.cache) >= f.maxEntries {
			f.evictLocked(now)
		}
		e = &entry{key: k}
		f.cache[k] = e
		f.enqueueLocked(e)
	}
	e.lastAsked = now
	if e.state == stateRetry && !now.Before(e.retryAt) && !f.closed {
		f.enqueueLocked(e)
	}
	return e
}

// Await asks for the owners of flows, as Owner does, and waits until each
// is answered or ctx ends; Owner then answers from the cache. It is for a
// one-shot reader (flowtop --once), which prints once and cannot show an
// answer that comes later. A flow counts as answered once its socket was
// looked for: owned, found unowned, or missed (a missed flow is not
// waited for through its retries, a socket the /proc index has yet to
// catch up with is).
func (f *Finder) Await(ctx context.Context, flows []*conntrack.Flow) {
	keys := make([]flowKey, 0, len(flows))
	for _, fl := range flows {
		if fl != nil && lookupable(fl) && !f.addrs.remote(fl.Orig.Src.IP(), fl.Reply.Src.IP()) {
			keys = append(keys, keyOf(fl))
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.waiters++
	defer func() { f.waiters-- }()
	for {
		now := f.now()
		var pending int
		var wake time.Time // the earliest due retry of a socket the index has yet to see
		for _, k := range keys {
			e := f.askLocked(k, now)
			switch {
			case e == nil:
			case e.state == statePending:
				pending++
			case e.state == stateRetry && e.sock != nil:
				pending++
				if wake.IsZero() || e.retryAt.Before(wake) {
					wake = e.retryAt
				}
			}
		}
		if pending == 0 || f.closed {
			return
		}
		changed := f.changed
		f.mu.Unlock()
		var due <-chan time.Time
		var timer *time.Timer
		if !wake.IsZero() {
			timer = time.NewTimer(max(wake.Sub(now), time.Millisecond))
			due = timer.C
		}
		select {
		case <-changed:
		case <-due:
		case <-ctx.Done():
		}
		if timer != nil {
			timer.Stop()
		}
		f.mu.Lock()
		if ctx.Err() != nil {
			return
		}
	}
}

// changedLocked wakes the Await calls: an entry was answered or the
// Finder closed.
func (f *Finder) changedLocked() {
	if f.waiters > 0 {
		close(f.changed)
		f.changed = make(chan struct{})
	}
}

func lookupable(fl *conntrack.Flow) bool {
	switch fl.Proto {
	case conntrack.ProtoTCP, conntrack.ProtoUDP, conntrack.ProtoUDPLite:
	default:
		return false
	}
	return fl.Family == conntrack.IPv4 || fl.Family == conntrack.IPv6
}

// enqueueLocked queues e for a worker. The queue is bounded like the
// cache (it may hold evicted entries): when it is full the entry waits
// for the next time it is asked about.
func (f *Finder) enqueueLocked(e *entry) {
	if len(f.queue) >= f.maxEntries {
		e.state, e.retryAt = stateRetry, time.Time{}
		f.dropped.Add(1)
		return
	}
	e.state = statePending
	f.queue = append(f.queue, e)
	f.cond.Signal()
}

// dropLocked removes e from the cache; a worker that finds it in the
// queue skips it.
func (f *Finder) dropLocked(e *entry) {
	delete(f.cache, e.key)
	e.gone = true
	f.evicted.Add(1)
}

// maybeSweep drops entries not asked about for idleTTL, at most every
// idleTTL/4, so the cost is spread thin.
func (f *Finder) maybeSweep(now time.Time) {
	if now.Sub(f.lastSweep) < idleTTL/4 {
		return
	}
	f.lastSweep = now
	for _, e := range f.cache {
		if now.Sub(e.lastAsked) >= idleTTL && e.state != statePending {
			f.dropLocked(e)
		}
	}
}

// evictLocked makes room in a full cache: it drops the idle entries, and
// if that is not enough the eighth least recently asked about, so the
// cost of sorting is paid once per many inserts.
func (f *Finder) evictLocked(now time.Time) {
	f.lastSweep = time.Time{}
	f.maybeSweep(now)
	if len(f.cache) < f.maxEntries {
		return
	}
	all := make([]*entry, 0, len(f.cache))
	for _, e := range f.cache {
		all = append(all, e)
	}
	slices.SortFunc(all, func(a, b *entry) int { return a.lastAsked.Compare(b.lastAsked) })
	n := max(1, len(all)/8)
	for _, e := range all[:n] {
		f.dropLocked(e)
	}
}

// work runs lookups until Close.
func (f *Finder) work(l sockLooker) {
	defer f.wg.Done()
	for {
		f.mu.Lock()
		for len(f.queue) == 0 && !f.closed {
			f.cond.Wait()
		}
		if f.closed {
			f.mu.Unlock()
			return
		}
		e := f.queue[0]
		f.queue[0] = nil
		f.queue = f.queue[1:]
		if len(f.queue) == 0 {
			f.queue = nil // let a burst's backing array go
		}
		if e.gone {
			f.mu.Unlock()
			continue
		}
		k, ps := e.key, e.sock
		e.sock = nil
		f.mu.Unlock()

		info, res, retryAt, ps := f.resolve(l, k, ps)

		f.mu.Lock()
		switch res {
		case indexFound:
			e.state, e.info = stateDone, info
			f.resolved.Add(1)
		case indexForwarded:
			// Neither end is local: no process can own it; asking the
			// kernel again would only cost (a router forwards most flows).
			e.state = stateDone
			f.unowned.Add(1)
		case indexLater:
			// Not a miss: the index may not have seen the socket yet.
			e.state, e.retryAt, e.sock = stateRetry, retryAt, ps
		case indexGone:
			e.attempts++
			if e.attempts > f.cfg.MaxRetries {
				e.state = stateDone
				f.unowned.Add(1)
			} else {
				e.state, e.retryAt = stateRetry, f.now().Add(f.cfg.RetryEvery)
				f.retries.Add(1)
			}
		}
		f.changedLocked()
		f.mu.Unlock()
	}
}

// resolve finds the socket of a flow, unless a previous attempt did
// (ps), then its process. When the index has yet to be rebuilt it returns
// indexLater with the socket to try again with.
func (f *Finder) resolve(l sockLooker, k flowKey, ps *pendingSock) (Info, indexResult, time.Time, *pendingSock) {
	if ps == nil && f.forwarded(k) {
		return Info{}, indexForwarded, time.Time{}, nil
	}
	if ps == nil {
		s, ok := f.findSocket(l, k)
		if !ok {
			return Info{}, indexGone, time.Time{}, nil
		}
		ps = &pendingSock{inode: s.Inode, gen: f.index.generation()}
	}
	pid, res, retryAt := f.index.pid(ps.inode, ps.gen)
	if res != indexFound {
		return Info{}, res, retryAt, ps
	}
	info, err := f.index.info(pid)
	if err != nil {
		return Info{}, indexGone, time.Time{}, nil
	}
	return info, indexFound, time.Time{}, nil
}

// forwarded reports a flow neither of whose local-side addresses (the
// original source, the reply source after DNAT) belongs to the namespace:
// a flow the host routes for others. An unreadable address list counts as
// local, so that lookups go on.
func (f *Finder) forwarded(k flowKey) bool {
	for _, a := range [2]netip.Addr{k.conn.Orig.Src.IP(), k.reply.Src.IP()} {
		if local, err := f.addrs.isLocal(a); err != nil || local {
			return false
		}
	}
	return true
}

// findSocket tries both orientations of the flow: the original direction
// seen from its source (an outbound flow: local orig.src:sport, remote
// orig.dst:dport) and the reply direction seen from its source (an
// inbound flow to a local server: local reply.src:sport, remote
// reply.dst:dport, after any DNAT). A connected socket matching the full
// tuple wins. Otherwise a listener (TCP) or unconnected socket (UDP) on
// the local port is taken, server view first, when its address is
// local.
func (f *Finder) findSocket(l sockLooker, k flowKey) (sockInfo, bool) {
	fam := uint8(unix.AF_INET)
	if k.family == conntrack.IPv6 {
		fam = unix.AF_INET6
	}
	proto := uint8(k.conn.Proto)
	views := [2]sockQuery{
		{Family: fam, Proto: proto,
			Local:  netip.AddrPortFrom(k.conn.Orig.Src.IP(), k.conn.Orig.SrcPort),
			Remote: netip.AddrPortFrom(k.conn.Orig.Dst.IP(), k.conn.Orig.DstPort)},
		{Family: fam, Proto: proto,
			Local:  netip.AddrPortFrom(k.reply.Src.IP(), k.reply.SrcPort),
			Remote: netip.AddrPortFrom(k.reply.Dst.IP(), k.reply.DstPort)},
	}
	var wild [2]sockInfo
	var haveWild, needWild [2]bool
	for i, q := range views {
		s, ok := f.query(l, q)
		switch {
		case !ok:
		case s.Inode == 0:
			// TIME_WAIT or SYN_RECV: no process holds it; a listener may.
			needWild[i] = true
		case s.connected():
			return s, true
		default:
			wild[i], haveWild[i] = s, true
		}
	}
	for _, i := range [2]int{1, 0} {
		q := views[i]
		s, ok := wild[i], haveWild[i]
		if !ok && needWild[i] && k.conn.Proto == conntrack.ProtoTCP {
			wq := q
			wq.Remote = netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
			if fam == unix.AF_INET {
				wq.Remote = netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
			}
			s, ok = f.query(l, wq)
			ok = ok && s.Inode != 0 && !s.connected()
		}
		if !ok {
			continue
		}
		// A socket bound to a specific address matched it exactly, so the
		// address is local; one bound to the wildcard matches any.
		if !s.Local.Addr().IsUnspecified() {
			return s, true
		}
		local, err := f.addrs.isLocal(q.Local.Addr())
		if err != nil {
			f.errors.Add(1)
			continue
		}
		if local {
			return s, true
		}
	}
	return sockInfo{}, false
}

func (f *Finder) query(l sockLooker, q sockQuery) (sockInfo, bool) {
	f.queries.Add(1)
	s, ok, err := l.lookup(q)
	if err != nil {
		f.errors.Add(1)
		return sockInfo{}, false
	}
	return s, ok
}

// Stats returns the counters so far.
func (f *Finder) Stats() Stats {
	f.mu.Lock()
	st := Stats{Cached: len(f.cache), Queued: len(f.queue)}
	f.mu.Unlock()
	f.index.mu.Lock()
	st.Inodes = len(f.index.pids)
	st.Scans = f.index.started
	st.LastScan = f.index.lastTook
	scanErrors := f.index.scanErrors
	f.index.mu.Unlock()
	st.Resolved = f.resolved.Load()
	st.Unowned = f.unowned.Load()
	st.Retries = f.retries.Load()
	st.Queries = f.queries.Load()
	st.Errors = f.errors.Load() + scanErrors
	st.Evicted = f.evicted.Load()
	st.Deferred = f.dropped.Load()
	return st
}

// Close stops the workers, waiting for lookups in progress, and closes
// the netlink sockets. Owner keeps answering from the cache afterwards.
func (f *Finder) Close() error {
	var err error
	f.closeMu.Do(func() {
		f.mu.Lock()
		f.closed = true
		f.queue = nil
		f.cond.Broadcast()
		f.changedLocked()
		f.mu.Unlock()
		f.wg.Wait()
		for _, c := range f.closers {
			if cerr := c.Close(); cerr != nil && err == nil {
				err = fmt.Errorf("procs: close: %w", cerr)
			}
		}
	})
	return err
}
