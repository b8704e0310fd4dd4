package ui

import (
	"cmp"
	"encoding/binary"
	"math"
	"math/bits"
	"net/netip"
	"slices"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
)

// params is what the row builder needs from the screen's state. A value is
// immutable once published: the UI goroutine makes a new one on every
// change and the builder reads whichever is newest.
type params struct {
	gen      uint64 // bumped on every change; a view built from an older one is stale
	tab      tabID
	sort     [numTabs]sortSpec
	nodeSort sortSpec     // of the Nodes tab
	terms    enrich.Query // the / filter: words that must all match
	active   bool         // a: only flows with a non-zero rate
	numeric  bool
	bits     bool
	paused   bool
	frozen   *conntrack.Snapshot // the snapshot shown while paused

	// With a Fleet: the node shown ("" none chosen, allNodes every one),
	// what was read of the Fleet when paused, and the protocols the
	// T U D I S keys leave shown (the router's filter is its own); nil
	// protos without a Fleet.
	node        string
	frozenFleet *fleetData
	protos      *conntrack.ProtoSet
}

// sortOf is the sort of tab t, to read or (in publish's change) to set.
func (p *params) sortOf(t tabID) *sortSpec {
	if t == tabNodes {
		return &p.nodeSort
	}
	return &p.sort[t]
}

// group is one row of the Processes, Hosts or Remote tab: the sum of the
// flows that share a process or an address. It is kept small (a tick may
// make 100k of them on the Hosts and Remote tabs): the process is a
// pointer, set on the Processes tab only, and the address is read from
// the representative flow.
type group struct {
	proc *enrich.Process // Processes tab
	// names are those of rep when the build looked them up, else nil.
	names *enrich.Names
	// rep is one flow of the group and side the end of it that the
	// group's address is (Hosts and Remote tabs), for the address, names
	// and GeoIP of the group, read when drawn.
	rep     *conntrack.Flow
	flows   int32
	side    side
	counted bool // at least one flow has counters
	// up and down are, on the Processes tab, what the original source and
	// destination sent; on Hosts and Remote, what the local end sent and
	// received.
	up, down         uint64
	upRate, downRate float64
}

// addr is the address of a group of the Hosts or Remote tab.
func (g *group) addr() netip.Addr {
	if g.rep == nil {
		return netip.Addr{}
	}
	return sideAddr(g.rep, g.side)
}

func (g *group) rate() float64 { return g.upRate + g.downRate }

// view is one built row set: the rows of the current tab in display order
// and the totals of the header. Views are immutable once built.
type view struct {
	p    *params
	snap *conntrack.Snapshot // nil before the first snapshot
	// rows of the Flows tab: positions in snap.Flows, in display order:
	// four bytes a row, and no pointers for the collector to scan.
	rows   []int32
	groups []*group  // other tabs
	nodes  []nodeRow // Nodes tab
	// With a Fleet: what the build read of it, the names of its flows
	// (router first) and, for every node in one table, their nodes.
	fd     *fleetData
	names  enrich.Namer
	nodeOf func(*conntrack.Flow) string
	// shown counts the flows that pass the screen's filters; total the
	// flows of the snapshot.
	shown, total     int
	srcRate, dstRate float64 // sums over shown flows, each direction
	eventsPerS       float64
	status           string
	warnings         []string
	buildTime        time.Duration
}

func (v *view) rowCount() int {
	switch v.p.tab {
	case tabFlows:
		return len(v.rows)
	case tabNodes:
		return len(v.nodes)
	}
	return len(v.groups)
}

// namer is what names v's flows: the Config's, or with a Fleet the
// router's first.
func (v *view) namer(local enrich.Namer) enrich.Namer {
	if v.names != nil {
		return v.names
	}
	return local
}

// flow returns the flow of row i of the Flows tab.
func (v *view) flow(i int) *conntrack.Flow { return v.snap.Flows[v.rows[i]] }

// snapTime is the time ages are measured at: the snapshot's.
func snapTime(s *conntrack.Snapshot, now func() time.Time) time.Time {
	if s != nil && !s.Time.IsZero() {
		return s.Time
	}
	return now()
}

// wantsNames reports whether a build for p needs the names of every flow:
// for the / filter, the Processes tab or a sort by a name.
func wantsNames(p *params) bool {
	return p.tab != tabNodes && (len(p.terms) > 0 || p.tab == tabProcesses || p.sort[p.tab].col.needsNames(p.numeric))
}

// buildRows filters, aggregates and sorts the flows of snap for p. It runs
// off the UI goroutine and does not modify snap.
func buildRows(v *view, snap *conntrack.Snapshot, p *params, names enrich.Namer, now time.Time) {
	buildRowsUnless(v, snap, p, &namesPass{names: names}, nil, now, nil)
}

// staleEvery is how many flows (or groups) a build handles between two
// looks at whether it is still wanted: well under a millisecond of work.
const staleEvery = 4096

// buildRowsUnless is buildRows that gives up as soon as stale (when not
// nil) reports true, which it asks every staleEvery rows and between the
// steps: a key that changes the params supersedes the build in flight
// instead of waiting for it. It reports whether v was built; an abandoned
// v is garbage. The names of flows come from nm, which the caller ends
// with done when the build completed.
func buildRowsUnless(v *view, snap *conntrack.Snapshot, p *params, nm *namesPass, scratch *buildScratch, now time.Time, stale func() bool) bool {
	v.snap = snap
	if snap == nil {
		return true
	}
	if stale == nil {
		stale = func() bool { return false }
	}
	v.total = len(snap.Flows)
	o := fmtOpts{now: now, bits: p.bits, numeric: p.numeric, nodeOf: v.nodeOf}
	rs := newRowSet(p, &o, len(snap.Flows), scratch)
	if !gather(v, snap, p, nm, rs, stale) || stale() {
		return false
	}
	if p.tab == tabFlows {
		v.rows = rs.flows.positions()
		return true
	}
	v.groups = rs.byPID.list()
	if p.tab != tabProcesses {
		v.groups = rs.hosts.all
	}
	if !sortGroups(v, p, nm.names, &o, scratch, stale) {
		return false
	}
	if scratch != nil && rs.hosts.table != nil {
		scratch.hostTable, scratch.hostKeys = rs.hosts.table, rs.hosts.keys
	}
	return true
}

// gather puts the flows of snap that pass p's filters in rs, and counts
// them and their rates in v. It reports false when stale said to give up.
func gather(v *view, snap *conntrack.Snapshot, p *params, nm *namesPass, rs *rowSet, stale func() bool) bool {
	wantNames := wantsNames(p)
	var m enrich.Matcher
	nodeTerms := nodeQuery{nodeOf: v.nodeOf}
	// work counts rows, and lookups as lookupWork rows, for the looks at
	// stale.
	work, check := 0, staleEvery
	for i, f := range snap.Flows {
		if work >= check {
			if stale() {
				return false
			}
			check = work + staleEvery
		}
		work++
		if p.active && f.TotalRate() == 0 || p.protos != nil && !p.protos.Has(f.Proto) {
			continue
		}
		n := &noNames
		if wantNames {
			before := nm.lookups
			n = nm.get(f)
			work += (nm.lookups - before) * lookupWork
		}
		if len(p.terms) > 0 && !m.Match(f, n, nodeTerms.rest(f, p.terms)) {
			continue
		}
		v.shown++
		v.srcRate += float64(f.OrigRate.Bytes)
		v.dstRate += float64(f.ReplyRate.Bytes)
		rs.add(uint32(i), f, n)
	}
	return true
}

// rowSet holds the rows of one tab while a build gathers them: the Flows
// tab's in a sorter, the others' as groups.
type rowSet struct {
	tab tabID
	col *column // the sort column
	o   *fmtOpts
	// keepNames: the groups of the Hosts and Remote tabs keep the names
	// of their representative flow (the build looked them up).
	keepNames bool
	flows     sorter
	byPID     groupSet[int]
	infos     []enrich.Process // of the Processes tab's groups, in chunks
	hosts     hostSet
}

// newRowSet readies a rowSet for the n flows of a build for p.
func newRowSet(p *params, o *fmtOpts, n int, scratch *buildScratch) *rowSet {
	sc := p.sort[p.tab]
	rs := &rowSet{tab: p.tab, col: sc.col, o: o, keepNames: wantsNames(p)}
	switch p.tab {
	case tabFlows:
		rs.flows.init(n, sc, sc.col.numeric(), scratch)
	case tabHosts, tabRemote:
		rs.hosts.init(n, scratch)
	}
	return rs
}

// add adds flow f, the seq-th of the snapshot, whose names are n.
func (rs *rowSet) add(seq uint32, f *conntrack.Flow, n *enrich.Names) {
	switch rs.tab {
	case tabFlows:
		rs.flows.pushRow(seq, rs.col, row{f: f, n: n, o: rs.o})
	case tabProcesses:
		g := rs.byPID.get(n.Process.PID, f)
		if g.rep == f {
			g.names = n
			if len(rs.infos) == cap(rs.infos) {
				rs.infos = make([]enrich.Process, 0, groupChunk)
			}
			rs.infos = append(rs.infos, n.Process)
			g.proc = &rs.infos[len(rs.infos)-1]
		}
		g.add(f, f.OrigCount, f.ReplyCount, float64(f.OrigRate.Bytes), float64(f.ReplyRate.Bytes))
	default:
		local, ls := localEnd(f)
		up, down, upR, downR := upDown(f, ls)
		addr, s := local, ls
		if rs.tab == tabRemote {
			addr, s = remoteEnd(f, ls)
		}
		g := rs.hosts.get(addr, f, s)
		if g.rep == f && rs.keepNames {
			g.names = n
		}
		g.add(f, up, down, upR, downR)
	}
}

// sortGroups puts v's groups in the order of p's sort column. Groups come
// in the snapshot order of their first flow (their representative), the
// order ties keep: stable across refreshes while that flow lives and
// keeps its place. It reports false when stale said to give up.
func sortGroups(v *view, p *params, names enrich.Namer, o *fmtOpts, scratch *buildScratch, stale func() bool) bool {
	sc := p.sort[p.tab]
	var gs sorter
	gs.init(len(v.groups), sc, sc.col.numeric(), scratch)
	needNames := sc.col.needsNames(p.numeric)
	for i, g := range v.groups {
		if i%staleEvery == staleEvery-1 && stale() {
			return false
		}
		r := row{g: g, n: &noNames, o: o}
		if needNames {
			r.n = g.names
			if r.n == nil {
				r.n = lookupGroupNames(g, names)
			}
		}
		gs.pushRow(gs.n, sc.col, r)
	}
	if stale() {
		return false
	}
	gs.sort()
	sorted := make([]*group, 0, len(v.groups))
	for seq := range gs.seqs {
		sorted = append(sorted, v.groups[seq])
	}
	gs.release()
	v.groups = sorted
	return true
}

// hostSet collects the groups of the Hosts or Remote tab by address. A
// tick may make 100k of them: the index is a flat open-addressing table
// of group numbers, without pointers, sized once for the flows of the
// snapshot, and the groups come in chunks, so a build makes a few
// allocations and no map of 100k entries.
type hostSet struct {
	keys   []hostKey // of all[i]
	all    []*group
	chunks groupChunks
	table  []int32 // 1 + an index in all, 0 for an empty slot
	shift  uint    // 64 - log2(len(table))
}

// hostKey is an address as 16 bytes (of the unmapped address), in
// big-endian halves.
type hostKey struct{ hi, lo uint64 }

func (k hostKey) hash(shift uint) uint64 {
	h := (k.hi*0x9e3779b97f4a7c15 ^ k.lo) * 0xbf58476d1ce4e5b9
	return (h ^ h>>29) * 0x94d049bb133111eb >> shift
}

// init makes room for n flows: the table stays at most half full. The
// index comes from scratch when it has one (the groups themselves belong
// to the view).
func (s *hostSet) init(n int, scratch *buildScratch) {
	size := 1024
	for size < 2*n {
		size *= 2
	}
	if scratch == nil {
		scratch = &buildScratch{}
	}
	if cap(scratch.hostTable) >= size {
		s.table = scratch.hostTable[:size]
		clear(s.table)
	} else {
		s.table = make([]int32, size)
	}
	s.shift = uint(64 - bits.TrailingZeros(uint(size)))
	s.keys = reuse(scratch.hostKeys, n)
	s.all = make([]*group, 0, n)
}

// get returns the group of addr, new ones with f as representative and sd
// as the end of f that addr is. Groups are made in the order of their
// first flow in the snapshot, so names come from the same flow on every
// tick while it keeps its place. At most the n flows of init may come.
func (s *hostSet) get(addr netip.Addr, f *conntrack.Flow, sd side) *group {
	b := addr.As16()
	k := hostKey{binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])}
	mask := uint64(len(s.table) - 1)
	for i := k.hash(s.shift); ; i = (i + 1) & mask {
		j := s.table[i]
		if j == 0 {
			g := s.chunks.add(group{rep: f, side: sd})
			s.keys = append(s.keys, k)
			s.all = append(s.all, g)
			s.table[i] = int32(len(s.all))
			return g
		}
		if s.keys[j-1] == k {
			return s.all[j-1]
		}
	}
}

// groupSet collects the groups of one tab by key. Groups are allocated in
// chunks, so a tick makes a few allocations, not one per key, and a
// growing set never copies its groups.
type groupSet[K comparable] struct {
	idx    map[K]*group
	chunks groupChunks
	all    []*group
}

// groupChunks makes groups in chunks of groupChunk: a few allocations a
// build instead of one a group, and a group never moves.
type groupChunks struct{ chunk []group }

const groupChunk = 1024

// add returns a new group, a copy of g.
func (c *groupChunks) add(g group) *group {
	if len(c.chunk) == cap(c.chunk) {
		c.chunk = make([]group, 0, groupChunk)
	}
	c.chunk = append(c.chunk, g)
	return &c.chunk[len(c.chunk)-1]
}

// get returns the group of key, new ones with f as representative: the
// group's first flow in the snapshot, so names come from the same flow on
// every tick while it keeps its place.
func (s *groupSet[K]) get(key K, f *conntrack.Flow) *group {
	if s.idx == nil {
		s.idx = make(map[K]*group)
	}
	g := s.idx[key]
	if g == nil {
		g = s.chunks.add(group{rep: f})
		s.idx[key] = g
		s.all = append(s.all, g)
	}
	return g
}

func (s *groupSet[K]) list() []*group { return s.all }

func (g *group) add(f *conntrack.Flow, up, down conntrack.Counter, upRate, downRate float64) {
	g.flows++
	if f.HasCounters {
		g.counted = true
		g.up += up.Bytes
		g.down += down.Bytes
	}
	g.upRate += upRate
	g.downRate += downRate
}

// sorter orders rows by a sort key, ties by their sequence number: a
// flow's position in the snapshot or a group's in the list. Snapshots
// list flows in the table's order, the order they were first seen, which
// holds from one refresh to the next except that the table fills the
// place of a flow that ended with its newest one: ties are stable but for
// that (the ID would be a steadier tie-breaker, at 8 more bytes a row).
// Numeric keys, and addresses shown as numbers, sort as small records,
// which is several times faster than comparing sortKey values; names sort
// as strings and come before the addresses.
type sorter struct {
	desc, numeric bool
	n             uint32 // rows pushed
	nums          []numRow
	addrs         []addrRow
	keyed         []keyedRow
	scratch       *buildScratch // nil: allocate
}

// numRow is a row of a numeric sort: the top 40 bits of its key (as
// orderedBits) and, in the low seqBits, the row's sequence number: eight
// bytes a row, half of a key and a sequence number apart, for the memory
// of a million rows and the bytes the radix sort moves. Keys equal in
// their top 40 bits (a
// relative difference under 4e-9, never visible in a column) are ties,
// which keep the order rows were added in.
type numRow uint64

// seqBits is room for 16.7M rows; a bigger sort compares keys instead.
const seqBits = 24

func makeNumRow(key uint64, seq uint32) numRow {
	return numRow(key&^(1<<seqBits-1) | uint64(seq))
}

func (r numRow) key() uint64 { return uint64(r) >> seqBits }
func (r numRow) seq() uint32 { return uint32(r & (1<<seqBits - 1)) }

type addrRow struct {
	hi, lo uint64 // the address as 16 bytes, big-endian halves
	seq    uint32
}

type keyedRow struct {
	k   sortKey
	seq uint32
}

// buildScratch is memory a build takes over from the last one (the
// refresher keeps one): the sorter's rows, the host index of the Hosts and
// Remote tabs. Kept, they are not megabytes of garbage a tick at 100k
// flows, which at flowtop's low GOGC would make the collector run about
// once a build. Nothing in it is part of a view.
type buildScratch struct {
	nums      []numRow
	hostTable []int32
	hostKeys  []hostKey
}

// init readies s for at most n rows, numbered below n.
func (s *sorter) init(n int, sc sortSpec, numeric bool, scratch *buildScratch) {
	if n >= 1<<seqBits {
		numeric = false // too many rows for a numRow: compared as sortKeys
	}
	s.desc, s.numeric, s.scratch = sc.desc, numeric, scratch
	if numeric {
		if scratch != nil {
			s.nums = reuse(scratch.nums, n)
		} else {
			s.nums = make([]numRow, 0, n)
		}
	}
}

// release hands the sorter's memory, grown as it was, to the next build.
func (s *sorter) release() {
	if sc := s.scratch; sc != nil && s.numeric {
		sc.nums = s.nums
	}
}

// reuse returns b emptied, or a new slice when b cannot hold n. The old
// rows stay in b's spare room until overwritten: for rows without
// pointers (numRow, hostKey), which keep nothing alive.
func reuse[T any](b []T, n int) []T {
	if cap(b) < n {
		return make([]T, 0, n)
	}
	return b[:0]
}

// sortNums sorts numeric rows by key, ties in the order of their sequence
// numbers. A row's sequence number is its low bits and no two rows share
// one, so sorting the whole words is that stable sort, and it can be done
// in place: an MSD radix sort that moves rows between its 256 buckets by
// swapping (American flag sort), which needs no buffer beside the rows (a
// buffer would add to the screen's peak memory) and takes about half the
// time of slices.Sort (BenchmarkSortNums).
func sortNums(rows []numRow) { flagSort(rows, 56) }

// flagSort sorts rows that agree in the bits above shift+8 by the byte at
// shift and then, bucket by bucket, by the bits below.
func flagSort(rows []numRow, shift uint) {
	var count [256]int
	for {
		if len(rows) <= 32 {
			slices.Sort(rows)
			return
		}
		// Runs of ties (idle flows: rate 0) are added, and so already
		// are, in sequence order.
		if slices.IsSorted(rows) {
			return
		}
		count = [256]int{}
		for _, r := range rows {
			count[byte(r>>shift)]++
		}
		if count[byte(rows[0]>>shift)] < len(rows) {
			break
		}
		if shift == 0 {
			return // equal rows (sequence numbers are not)
		}
		shift -= 8 // every row has the same byte here
	}
	var next [256]int
	end := 0
	for b := range 256 {
		next[b] = end
		end += count[b]
	}
	// Walk each bucket's unfilled part; a row that belongs elsewhere is
	// swapped into the next free place of its bucket until the row in
	// hand belongs here.
	start := 0
	for b := range 256 {
		end := start + count[b]
		for next[b] < end {
			v := rows[next[b]]
			for d := byte(v >> shift); int(d) != b; d = byte(v >> shift) {
				rows[next[d]], v = v, rows[next[d]]
				next[d]++
			}
			rows[next[b]] = v
			next[b]++
		}
		start = end
	}
	if shift == 0 {
		return
	}
	start = 0
	for b := range 256 {
		if count[b] > 1 {
			flagSort(rows[start:start+count[b]], shift-8)
		}
		start += count[b]
	}
}

// radixPasses sorts rows stably by the key key returns, LSD first, with
// buf as its buffer when large enough; it returns the buffer used, for
// the next call.
func radixPasses[T any](rows, buf []T, key func(*T) uint64) []T {
	var counts [8][256]int
	for i := range rows {
		k := key(&rows[i])
		for d := range 8 {
			counts[d][byte(k>>(8*d))]++
		}
	}
	if cap(buf) < len(rows) {
		buf = make([]T, len(rows))
	}
	buf = buf[:len(rows)]
	src, dst := rows, buf
	first := key(&rows[0])
	for d := range 8 {
		c := &counts[d]
		if c[byte(first>>(8*d))] == len(rows) {
			continue // every row has the same byte here
		}
		pos := 0
		for b := range 256 {
			n := c[b]
			c[b] = pos
			pos += n
		}
		shift := 8 * d
		for i := range src {
			b := byte(key(&src[i]) >> shift)
			dst[c[b]] = src[i]
			c[b]++
		}
		src, dst = dst, src
	}
	if &src[0] != &rows[0] {
		copy(rows, src)
	}
	return buf
}

// sortAddrs sorts by address (hi, then lo), stably: radix passes by lo,
// then by hi. For 100k rows they take a third to a half of the time of
// slices.SortFunc (BenchmarkSortAddrs), some 10 ms of a key's build.
func sortAddrs(rows []addrRow) {
	if len(rows) < 64 {
		slices.SortStableFunc(rows, func(a, b addrRow) int {
			if c := cmp.Compare(a.hi, b.hi); c != 0 {
				return c
			}
			return cmp.Compare(a.lo, b.lo)
		})
		return
	}
	buf := radixPasses(rows, nil, func(r *addrRow) uint64 { return r.lo })
	radixPasses(rows, buf, func(r *addrRow) uint64 { return r.hi })
}

// orderedBits maps a float64 to a uint64 in the same order.
func orderedBits(f float64) uint64 {
	b := math.Float64bits(f)
	if b>>63 != 0 {
		return ^b
	}
	return b | 1<<63
}

// push adds a row numbered in the order rows are pushed.
func (s *sorter) push(k *sortKey) { s.pushAt(s.n, k) }

// pushRow adds row seq, r, sorted by column c.
func (s *sorter) pushRow(seq uint32, c *column, r row) {
	if s.numeric {
		s.pushNumAt(seq, c.num(r))
		return
	}
	k := c.sortKey(r)
	s.pushAt(seq, &k)
}

// pushNumAt adds row seq of a numeric sort, whose key is num.
func (s *sorter) pushNumAt(seq uint32, num float64) {
	s.n++
	o := orderedBits(num)
	if s.desc {
		o = ^o
	}
	s.nums = append(s.nums, makeNumRow(o, seq))
}

// pushAt adds row seq; rows come in increasing seq, below init's n.
func (s *sorter) pushAt(seq uint32, k *sortKey) {
	if s.numeric {
		s.pushNumAt(seq, k.num)
		return
	}
	s.n++
	switch {
	case k.str == addrMarker && k.num == 0:
		b := k.addr.As16()
		hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
		if s.desc {
			hi, lo = ^hi, ^lo
		}
		s.addrs = append(s.addrs, addrRow{hi, lo, seq})
	default:
		s.keyed = append(s.keyed, keyedRow{*k, seq})
	}
}

// sort puts the rows in order.
func (s *sorter) sort() {
	if s.numeric {
		sortNums(s.nums)
		return
	}
	slices.SortFunc(s.keyed, func(a, b keyedRow) int {
		c := compareKeys(&a.k, &b.k)
		if s.desc {
			c = -c
		}
		if c != 0 {
			return c
		}
		return cmp.Compare(a.seq, b.seq)
	})
	sortAddrs(s.addrs)
}

// seqs yields the sequence numbers of the sorted rows, in order.
func (s *sorter) seqs(yield func(uint32) bool) {
	if s.numeric {
		for _, r := range s.nums {
			if !yield(r.seq()) {
				return
			}
		}
		return
	}
	// Names sort before addresses (addrMarker is the largest string).
	if !s.desc {
		for i := range s.keyed {
			if !yield(s.keyed[i].seq) {
				return
			}
		}
	}
	for i := range s.addrs {
		if !yield(s.addrs[i].seq) {
			return
		}
	}
	if s.desc {
		for i := range s.keyed {
			if !yield(s.keyed[i].seq) {
				return
			}
		}
	}
}

// positions sorts the rows and returns their sequence numbers in order,
// in a slice of their own (a view's rows).
func (s *sorter) positions() []int32 {
	s.sort()
	out := make([]int32, 0, s.n)
	for seq := range s.seqs {
		out = append(out, int32(seq))
	}
	s.release()
	return out
}

// lookupGroupNames looks up the names of a group's representative flow.
func lookupGroupNames(g *group, names enrich.Namer) *enrich.Names {
	if g.rep == nil {
		return &noNames
	}
	n := names.Names(g.rep)
	return &n
}
