package ui

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/rivo/tview"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
)

// Source is where the screen gets its flows. Implementations must be safe
// for concurrent use; none of the methods may block for long, except
// Delete, which the screen calls off the UI goroutine.
type Source interface {
	// Latest returns the newest immutable snapshot, nil before the first.
	Latest() *conntrack.Snapshot
	// SetFilter replaces the table filter; the T U D I S keys change its
	// protocol set. The change shows in a later snapshot.
	SetFilter(f conntrack.Filter)
	// Delete removes the flow's conntrack entry (x / Delete, after
	// confirmation).
	Delete(f *conntrack.Flow) error
}

// Watcher is a Source that can keep chosen flows fresher than the rest
// (the table of a huge conntrack table reads the rows on screen one by one
// between full refreshes). The screen tells it what it shows.
type Watcher interface {
	Watch(flows []*conntrack.Flow)
}

// Config sets up the screen.
type Config struct {
	// Source is required, unless Fleet is set.
	Source Source
	// Fleet, when set, shows nodes read from a broker instead of Source (which must then be nil).
	Fleet Fleet
	// Node is the node shown at start with Fleet: "" opens the Nodes tab, "+" every node in one table (NODE column), else that node's Flows tab.
	Node string
	// Names gives service, host, GeoIP and process names; nil or
	// enrich.None{} shows numbers only. Names must never block: names may
	// appear on a later refresh. With a Fleet they are the screen's own
	// lookups, used where the router sent no name (never for processes).
	Names   enrich.Namer
	Version string
	// Netns names the network namespace shown, "" for flowtop's own.
	Netns string
	// Interval is the screen's refresh tick (default 1s).
	Interval time.Duration
	// Bits, ShowSrc and Numeric are the start values of -b, -s and -n.
	Bits, ShowSrc, Numeric bool
	// Status returns extra text for the status line (exporter counters);
	// may be nil. It is called once per tick off the UI goroutine.
	Status func() string
	// Warnings returns problems to show in the header, e.g. "accounting
	// was off for 12 older flows" or "no GeoIP database"; may be nil. It
	// is called once per tick off the UI goroutine.
	Warnings func() []string

	// For the package's tests: the clock (nil: time.Now), the zone times
	// are shown in (nil: time.Local), and a function called on the UI
	// goroutine after each new view is on screen.
	now       func() time.Time
	loc       *time.Location
	afterSwap func(*view)
}

// mode is what has the keyboard.
type mode int

const (
	modeTable mode = iota
	modeFilter
	modeDetail
	modeHelp
	modeConfirm
)

// selection is the selected row of one tab: its index in the current rows
// and its identity. It starts pinned to the first row and stays there
// while the order changes, as top and htop keep the busiest in view; once
// the user moves to another row it follows that row's flow (or group)
// across refreshes, until the user brings it back to the first row.
type selection struct {
	idx    int
	key    rowKey
	follow bool // false: pinned to the first row
}

// rowKey is the identity of a row: the flow's kernel key on the Flows tab
// (its ID alone can name two entries; flowID only speeds the search), the
// PID on Processes, the address on Hosts and Remote, the name on Nodes.
// Only the fields of its tab are set.
type rowKey struct {
	flow   conntrack.Key
	flowID uint32
	pid    int
	addr   netip.Addr
	node   string
}

// App is the interactive screen. Build it with New, start it with Run;
// Stop (or q, Ctrl-C) ends it.
type App struct {
	cfg   Config
	names enrich.Namer
	// fleet is cfg.Fleet: the screen shows nodes read from a broker.
	fleet Fleet
	// fleetGen counts the Fleet's changes (followChanges).
	fleetGen atomic.Uint64
	app      *tview.Application
	// now is the clock (tests fix it); loc the zone times are shown in.
	now func() time.Time
	loc *time.Location

	root    *tview.Pages
	layout  *tview.Flex
	header  *lineBox
	tabs    *lineBox
	table   *flowTable
	body    *tview.Pages // "table" or "detail"
	bottom  *tview.Pages // "status" or "filter"
	status  *lineBox
	detail  *tview.TextView
	help    *tview.TextView
	filter  *tview.InputField
	confirm *tview.Modal

	// State below belongs to the UI goroutine.
	p        *params // newest params, also in pub
	view     *view   // rows on screen
	mode     mode
	prevMode mode                   // where help and the dialog return to
	sel      [numTabs + 1]selection // the flows' tabs and Nodes
	offset   int                    // first data row shown
	hoff     int                    // columns scrolled off to the left (h, l)
	showSrc  bool
	// tableRows is how many data rows the table has room for, once
	// tableSized (laid out).
	tableRows  int
	tableSized bool
	// watched is what the Watcher was last told is on screen.
	watched struct {
		v          *view
		off, count int
	}
	// detailFlow is the flow the detail view shows, refreshed on every
	// tick while it lives; detailGone is set once it has ended.
	detailFlow conntrack.Flow
	detailGone bool
	detailNode string // the flow's node, with every node in one table
	// pendingFilter is the table filter asked for with T U D I S and not
	// yet seen in a snapshot.
	pendingFilter *conntrack.Filter
	deleting      *conntrack.Flow
	msg           string
	msgErr        bool
	msgAt         time.Time
	// watching is the node the Fleet was last asked to watch
	// (updateWatch), once watchSent.
	watching  string
	watchSent bool

	pub      atomic.Pointer[params]
	kick     chan struct{}
	ctx      context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	stopOnce sync.Once
	running  atomic.Bool
	loopDone chan struct{} // closed when the UI loop has ended

	// openScreen: Run opens the terminal (New was given no screen).
	openScreen bool
}

// msgTTL is how long a status message stays.
const msgTTL = 8 * time.Second

// Run shows the screen on the terminal until q or Ctrl-C is pressed or ctx
// is done.
func Run(ctx context.Context, cfg Config) error {
	a := New(cfg, nil)
	stop := context.AfterFunc(ctx, a.Stop)
	defer stop()
	if err := a.Run(); err != nil {
		return fmt.Errorf("ui: %w", err)
	}
	return nil
}

// New builds the screen on screen: tcell's SimulationScreen in tests, or
// nil for the terminal, which Run opens. Nothing runs until Run.
func New(cfg Config, screen tcell.Screen) *App {
	if cfg.Names == nil {
		cfg.Names = enrich.None{}
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	a := &App{
		cfg:      cfg,
		names:    cfg.Names,
		app:      tview.NewApplication(),
		now:      cfg.now,
		loc:      cmp.Or(cfg.loc, time.Local),
		showSrc:  cfg.ShowSrc,
		kick:     make(chan struct{}, 1),
		loopDone: make(chan struct{}),
	}
	if a.now == nil {
		a.now = time.Now
	}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.p = &params{gen: 1, sort: defaultSort(), nodeSort: defaultNodeSort(), bits: cfg.Bits, numeric: cfg.Numeric}
	if cfg.Fleet != nil {
		a.fleet = cfg.Fleet
		a.p.node = cfg.Node
		if cfg.Node == "" {
			a.p.tab = tabNodes
		}
		all := conntrack.DefaultFilter()
		all.AllProtos()
		a.p.protos = &all.Protos
	}
	a.pub.Store(a.p)
	a.view = &view{p: a.p}
	a.buildLayout()
	if screen != nil {
		a.app.SetScreen(&asciiScreen{Screen: screen})
	} else {
		a.openScreen = true
	}
	a.app.EnableMouse(true)
	a.app.SetInputCapture(a.onKey)
	return a
}

// Run runs the screen until Stop, q or Ctrl-C. It returns the terminal's
// error, if any.
func (a *App) Run() error {
	if !a.running.CompareAndSwap(false, true) {
		return errors.New("ui: Run called twice")
	}
	if a.ctx.Err() != nil {
		close(a.loopDone)
		return nil // stopped before it started
	}
	if a.openScreen {
		s, err := openTerminal()
		if err != nil {
			close(a.loopDone)
			a.cancel()
			return err
		}
		a.app.SetScreen(s)
	}
	if a.fleet != nil {
		a.updateWatch() // the UI loop has not started: this is its goroutine
		a.wg.Add(1)
		go a.followChanges(a.fleet.Changes())
	}
	a.wg.Add(1)
	go a.refresher()
	err := a.app.Run()
	close(a.loopDone)
	a.cancel()
	a.wg.Wait()
	return err
}

// Stop ends Run. It may be called from any goroutine, more than once,
// and before Run (which then returns at once).
func (a *App) Stop() {
	a.stopOnce.Do(func() {
		a.cancel()
		// The refresher may be waiting for the UI loop to take its
		// update: let the loop run until the refresher is gone, then stop
		// it from inside, which also works when the loop has not started
		// yet.
		go func() {
			a.wg.Wait()
			done := make(chan struct{})
			go func() {
				a.app.QueueUpdate(a.app.Stop)
				close(done)
			}()
			select {
			case <-done:
			case <-a.loopDone:
			}
		}()
	})
}

// refresher builds the rows on every tick, or at once when the screen's
// state changed, and hands each new view to the UI goroutine: one redraw
// per tick, and no sorting or filtering on the UI goroutine.
//
// A key that changes the params makes the build in flight stale: the
// build gives up within about a millisecond and the refresher starts over
// with the new params and the newest snapshot, so a key never waits for a
// tick's build of rows it would throw away, and a stale view is never
// handed over (no wasted redraw). Builds never overlap.
func (a *App) refresher() {
	defer a.wg.Done()
	tick := time.NewTicker(a.cfg.Interval)
	defer tick.Stop()
	r := &refreshState{memo: newNameMemo(a.names)}
	r.freshBudget, r.refreshBudget = tickBudgets(a.cfg.Interval)
	ticked := true
	for {
		// Params are published before the kick, so a kick that comes
		// after this drain announces params newer than those loaded
		// below: a kick is never left over for params already built.
		select {
		case <-a.kick:
		default:
		}
		p := a.pub.Load()
		fleetGen := a.fleetGen.Load() // before reading the Fleet: a later change builds again
		snap, fd := p.frozen, p.frozenFleet
		if !p.paused || a.fleet != nil && fd == nil {
			// A pause before the first view froze no fleet data: the
			// Fleet's current data is what it shows.
			snap, fd = a.latest(p)
		}
		news := fleetGen != r.lastFleetGen && !p.paused
		if p.gen != r.lastGen || snap != r.lastSnap || news || ticked && !p.paused {
			stale := func() bool { return a.pub.Load().gen != p.gen }
			if v := a.buildView(r, p, snap, fd, ticked, stale); v != nil && !stale() {
				if !a.deliverFunc(func() { a.swap(v) }) {
					return
				}
				r.lastGen, r.lastSnap, r.lastFleetGen = p.gen, snap, fleetGen
			}
			if stale() {
				// Superseded: build for the new params at once.
				ticked = false
				if a.ctx.Err() != nil {
					return
				}
				continue
			}
		}
		ticked = false
		select {
		case <-a.ctx.Done():
			return
		case <-tick.C:
			ticked = true
		case <-a.kick:
		}
	}
}

// refreshState is what the refresher keeps from one build to the next.
type refreshState struct {
	prev   *conntrack.Snapshot // the last snapshot built unpaused
	evRate float64             // events per second between the last two
	// lastGen and lastSnap are what the view on screen was built from.
	lastGen                    uint64
	lastSnap                   *conntrack.Snapshot
	lastFleetGen               uint64
	prevNode                   string // the node of prev, with a Fleet
	memo                       *nameMemo
	freshBudget, refreshBudget time.Duration // of a tick's build (tickBudgets)
	scratch                    buildScratch  // a build's own memory, reused by the next
}

// buildView builds the view of snap for p, nil when stale said to give
// up. ticked: the build is a tick's, not a key's.
func (a *App) buildView(r *refreshState, p *params, snap *conntrack.Snapshot, fd *fleetData, ticked bool, stale func() bool) *view {
	if fd != nil && fd.node != r.prevNode {
		r.prev, r.prevNode, r.evRate = nil, fd.node, 0 // another node's events
	}
	if snap != nil && snap != r.prev && !p.paused {
		if prev := r.prev; prev != nil && snap.Time.After(prev.Time) && snap.Health.Events >= prev.Health.Events {
			r.evRate = float64(snap.Health.Events-prev.Health.Events) / snap.Time.Sub(prev.Time).Seconds()
		}
		r.prev = snap
	}
	start := time.Now()
	v := &view{p: p, eventsPerS: r.evRate, fd: fd}
	names := a.names
	if fd != nil {
		v.names, v.nodeOf = fd.names, fd.nodeOf()
		if v.names != nil {
			names = v.names
		}
		r.memo.names, r.memo.byRecord = names, true
	}
	if p.tab == tabNodes {
		v.snap = snap
		r.memo.unused()
		buildNodes(v, fd, p, a.now(), a.cfg.Interval, a.fleet.Latest)
	} else {
		nm := r.namesPass(p, ticked, names)
		if !buildRowsUnless(v, snap, p, nm, &r.scratch, snapTime(snap, a.now), stale) {
			return nil
		}
		nm.done()
	}
	if a.cfg.Status != nil {
		v.status = a.cfg.Status()
	}
	if a.cfg.Warnings != nil {
		v.warnings = a.cfg.Warnings()
	}
	v.buildTime = time.Since(start)
	return v
}

// namesPass is how a build for p gets names. One that needs every flow's
// names takes them from the memo and looks up only what it lacks: a key's
// build for a few milliseconds, a tick's for a share of the interval (and
// names that aged). Builds that need none leave the lookups alone: on the
// Flows tab the screen names its rows as drawn.
func (r *refreshState) namesPass(p *params, ticked bool, names enrich.Namer) *namesPass {
	switch {
	case !wantsNames(p):
		r.memo.unused()
		return &namesPass{names: names} // asked nothing
	case ticked && !p.paused && p.gen == r.lastGen:
		return r.memo.pass(r.freshBudget, r.refreshBudget)
	}
	return r.memo.pass(keyBudget, 0)
}

// latest is what a build for p shows: the Source's newest snapshot, or
// what the Fleet has of p's node.
func (a *App) latest(p *params) (*conntrack.Snapshot, *fleetData) {
	if a.fleet == nil {
		return a.cfg.Source.Latest(), nil
	}
	fd := a.readFleet(p)
	return fd.snap, fd
}

// publish makes the changed params current and wakes the refresher.
// UI goroutine only.
func (a *App) publish(change func(p *params)) {
	p := *a.p
	p.gen++
	change(&p)
	a.p = &p
	a.pub.Store(&p)
	select {
	case a.kick <- struct{}{}:
	default:
	}
}

// swap puts a freshly built view on screen. UI goroutine only.
func (a *App) swap(v *view) {
	if v.p.gen != a.p.gen {
		return // built from old params; a newer build is on its way
	}
	a.view = v
	a.restoreSelection()
	if a.mode == modeDetail {
		a.refreshDetail()
	}
	if pf := a.pendingFilter; pf != nil && v.snap != nil && sameProtos(&v.snap.Filter, pf) {
		a.pendingFilter = nil
	}
	a.settleView()
	if a.cfg.afterSwap != nil {
		a.cfg.afterSwap(v)
	}
}

// rowKey is the identity of row i of v.
func (v *view) rowKey(i int) rowKey {
	switch v.p.tab {
	case tabFlows:
		f := v.flow(i)
		k := rowKey{flow: f.Key(), flowID: f.ID}
		if v.nodeOf != nil {
			k.node = v.nodeOf(f) // two routers may have the same flow
		}
		return k
	case tabProcesses:
		return rowKey{pid: v.groups[i].proc.PID}
	case tabNodes:
		return rowKey{node: v.nodes[i].Name}
	}
	return rowKey{addr: v.groups[i].addr()}
}

// find returns the row of v whose identity is key, or -1. It looks at
// row hint first: where the key was in the previous view.
func (v *view) find(key rowKey, hint int) int {
	if hint >= 0 && hint < v.rowCount() && v.rowKey(hint) == key {
		return hint
	}
	switch v.p.tab {
	case tabFlows:
		return v.findFlow(key)
	case tabProcesses:
		for i, g := range v.groups {
			if g.proc.PID == key.pid {
				return i
			}
		}
	case tabNodes:
		for i := range v.nodes {
			if v.nodes[i].Name == key.node {
				return i
			}
		}
	default:
		for i, g := range v.groups {
			if g.addr() == key.addr {
				return i
			}
		}
	}
	return -1
}

// findFlow returns the row of the flow whose kernel key is key.flow, or
// -1. Comparing IDs first is cheap (a key is 46 bytes): while its entry
// lives, the flow is found in one pass at about the cost of matching IDs
// alone. A second pass, comparing every key, finds the connection under a
// new entry (a new ID) or, once, tells that it is gone.
func (v *view) findFlow(key rowKey) int {
	for i, at := range v.rows {
		if f := v.snap.Flows[at]; f.ID == key.flowID && f.Key() == key.flow && v.onNode(f, key.node) {
			return i
		}
	}
	for i, at := range v.rows {
		// The tuple first: comparing it in place is cheaper than
		// building every flow's key.
		if f := v.snap.Flows[at]; f.Orig == key.flow.Orig && f.Key() == key.flow && v.onNode(f, key.node) {
			return i
		}
	}
	return -1
}

// onNode reports whether f is on node, with every node in one table.
func (v *view) onNode(f *conntrack.Flow, node string) bool {
	return v.nodeOf == nil || v.nodeOf(f) == node
}

// restoreSelection puts the selection on the first row while it is pinned
// there, else where its flow (or group) is now. A followed row that is
// gone leaves the selection at its place, on the row that took it.
func (a *App) restoreSelection() {
	v := a.view
	s := &a.sel[v.p.tab]
	n := v.rowCount()
	if !s.follow {
		s.idx = 0
	} else if i := v.find(s.key, s.idx); i >= 0 {
		s.idx = i
	}
	s.idx = max(0, min(s.idx, n-1))
	if n > 0 {
		s.key = v.rowKey(s.idx)
	}
}

// selected returns the selected row of the view on screen, -1 when none.
func (a *App) selected() int {
	v := a.view
	if v.rowCount() == 0 {
		return -1
	}
	return max(0, min(a.sel[v.p.tab].idx, v.rowCount()-1))
}

// selectedFlow returns the selected flow on the Flows tab.
func (a *App) selectedFlow() *conntrack.Flow {
	if a.view.p.tab != tabFlows {
		return nil
	}
	if i := a.selected(); i >= 0 {
		return a.view.flow(i)
	}
	return nil
}

// move moves the selection by delta rows (UI goroutine).
func (a *App) move(delta int) {
	a.moveTo(a.selected() + delta)
}

func (a *App) moveTo(i int) {
	v := a.view
	n := v.rowCount()
	if n == 0 {
		return
	}
	i = max(0, min(i, n-1))
	s := &a.sel[v.p.tab]
	// The first row pins the selection (g, Home, or moving up to it);
	// any other follows its flow.
	s.idx, s.key, s.follow = i, v.rowKey(i), i > 0
}

// setMsg shows text in the status line for a while.
func (a *App) setMsg(text string, isErr bool) {
	a.msg, a.msgErr, a.msgAt = text, isErr, a.now()
}

// currentFilter is the table filter in force or asked for.
func (a *App) currentFilter() conntrack.Filter {
	if a.pendingFilter != nil {
		return *a.pendingFilter
	}
	if s := a.view.snap; s != nil {
		return s.Filter
	}
	if a.fleet != nil {
		// The router's filter is not known before its first document.
		return conntrack.Filter{IPv4: true, IPv6: true, Protos: *a.p.protos}
	}
	if s := a.cfg.Source.Latest(); s != nil {
		return s.Filter
	}
	return conntrack.DefaultFilter()
}

// toggleProtos is T U D I S: flip the protocols in the table filter. U
// also covers UDP-Lite and I both ICMPs, as in flowtop.
func (a *App) toggleProtos(ps ...conntrack.Proto) {
	if a.fleet != nil {
		a.toggleShownProtos(ps...)
		return
	}
	f := a.currentFilter()
	on := !f.Protos.Has(ps[0])
	for _, p := range ps {
		if on {
			f.Protos.Add(p)
		} else {
			f.Protos.Remove(p)
		}
	}
	f.Nets, f.Ports, f.ExcludePorts = slices.Clone(f.Nets), slices.Clone(f.Ports), slices.Clone(f.ExcludePorts)
	a.pendingFilter = &f
	a.cfg.Source.SetFilter(f)
	a.publish(func(*params) {})
}

func sameProtos(a, b *conntrack.Filter) bool {
	return a.Protos == b.Protos && a.IPv4 == b.IPv4 && a.IPv6 == b.IPv6
}

// askDelete asks to confirm deleting f (x / Delete).
func (a *App) askDelete(f *conntrack.Flow) {
	if a.fleet != nil {
		a.setMsg(a.deleteRefusal(), false)
		return
	}
	if f == nil {
		a.setMsg("select a flow on the Flows tab to delete it", false)
		return
	}
	c := *f
	a.deleting = &c
	a.confirm.SetText("Delete this conntrack entry?\n\n" + flowSummary(&c) +
		"\n\n(y: delete, n / Esc: keep)")
	a.confirm.SetFocus(1) // Keep: Enter alone must not delete
	a.root.ShowPage("confirm")
	a.prevMode = a.mode
	a.mode = modeConfirm
	a.app.SetFocus(a.confirm)
}

// endConfirm closes the dialog and, when yes, deletes the entry off the UI
// goroutine; the outcome shows in the status line.
func (a *App) endConfirm(yes bool) {
	a.root.HidePage("confirm")
	a.mode = a.prevMode
	a.focusMode()
	f := a.deleting
	a.deleting = nil
	if !yes || f == nil {
		return
	}
	a.setMsg("deleting "+flowSummary(f)+" …", false)
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		err := a.cfg.Source.Delete(f)
		a.deliverFunc(func() {
			if err != nil {
				a.setMsg("delete failed: "+err.Error(), true)
				return
			}
			a.setMsg("deleted "+flowSummary(f), false)
		})
	}()
}

// deliverFunc runs f on the UI goroutine and redraws; it reports false
// when the app is stopping. Stop keeps the UI loop running until the
// refresher is gone, so f always runs; should the loop die on its own (a
// terminal error), loopDone frees the caller. Never call it from the UI
// goroutine.
func (a *App) deliverFunc(f func()) bool {
	done := make(chan struct{})
	go func() {
		a.app.QueueUpdateDraw(f)
		close(done)
	}()
	select {
	case <-done:
		return a.ctx.Err() == nil
	case <-a.loopDone:
		return false
	}
}
