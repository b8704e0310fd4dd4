package remote

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
)

// Status is a node's presence, as its retained status topic says.
type Status uint8

// Node presences.
const (
	// StatusUnknown: no status message yet (a node that never said, or
	// whose retained status was cleared).
	StatusUnknown Status = iota
	// StatusOnline: the router is connected to the broker.
	StatusOnline
	// StatusOffline: the router said goodbye, or the broker sent its last
	// will (crash, power or network loss).
	StatusOffline
)

func (s Status) String() string {
	switch s {
	case StatusOnline:
		return "online"
	case StatusOffline:
		return "offline"
	}
	return "unknown"
}

// NodeInfo describes one node as of when it was published: immutable.
type NodeInfo struct {
	// Name is the node's name in the topics, as sent: show it escaped.
	Name string
	// Status and StatusAt: the presence and when this viewer learnt it (a
	// retained status arrives when the viewer subscribes).
	Status   Status
	StatusAt time.Time
	// Host is the host name in the node's last document.
	Host string
	// Time is the router's time of its last document or state summary,
	// Received when that arrived here.
	Time, Received time.Time
	// PublishEvery is the router's --mqtt-interval (0 until a document
	// said): a node whose data is much older than that has gone quiet
	// (see Stale).
	PublishEvery time.Duration
	// Flows passed the router's filters; Listed were in its last
	// document; TableFlows is the router's table size.
	Flows, Listed, TableFlows int
	// OrigBytesPerS and ReplyBytesPerS are the rates each way: orig is
	// the direction of whoever opened the flow (upload, on a router),
	// reply the answer (download).
	OrigBytesPerS, ReplyBytesPerS float64
	// Overruns and Resyncs are the router's netlink overruns and the
	// dumps that repaired them; Dropped and ExportErrors its MQTT
	// exporter's counters.
	Overruns, Resyncs     uint64
	Dropped, ExportErrors uint64
	// Complete, Parts and PartsReceived describe the last document shown
	// (see View).
	Complete             bool
	Parts, PartsReceived int
	// Live is true while the node's watch stream is what is shown.
	Live bool
	// Watched is true while this viewer holds a watch lease on the node;
	// WatchEvery is then how often the lease asks it to publish.
	Watched    bool
	WatchEvery time.Duration
	// Documents counts the documents shown; Rejected the messages refused
	// (too big, unreadable, another version).
	Documents, Rejected uint64
	// Err is the last problem with this node's messages, one line, and
	// ErrAt when it happened; "" when none.
	Err   string
	ErrAt time.Time
}

// Age is how old the node's data is at now, by the router's clock; 0
// before any.
func (n *NodeInfo) Age(now time.Time) time.Duration {
	if n.Time.IsZero() {
		return 0
	}
	return now.Sub(n.Time)
}

// Stale reports whether the node's data is older at now than two of its
// periods and 10 s: it should have published by then. Its period is the
// lease's while watched, else its --mqtt-interval. False while the period
// is unknown, before any data, and for a node that is offline (its status
// says so).
func (n *NodeInfo) Stale(now time.Time) bool {
	period := n.PublishEvery
	if n.Watched && n.WatchEvery > 0 && (period <= 0 || n.WatchEvery < period) {
		period = n.WatchEvery
	}
	if period <= 0 || n.Time.IsZero() || n.Status == StatusOffline {
		return false
	}
	return n.Age(now) > 2*period+10*time.Second
}

// ConnInfo describes the viewer's connection to the broker.
type ConnInfo struct {
	// Broker is the URL connected to.
	Broker string
	// Connected tells whether the subscriptions are in place; Since when
	// that last changed.
	Connected bool
	Since     time.Time
	// Err is the last connection-level problem (a refused login, a lost
	// connection, messages dropped or ignored), ErrAt when it happened.
	Err   string
	ErrAt time.Time
	// Dropped counts messages dropped because the viewer was behind;
	// Ignored the messages of node names not tracked (too many nodes, a
	// name with control characters).
	Dropped, Ignored uint64
}

// maxNodeName bounds a node's name.
const maxNodeName = 255

// checkNodeName refuses names no router could have chosen on purpose:
// flowtop's own (--mqtt-node) are host names.
func checkNodeName(name string) error {
	switch {
	case name == "":
		return errors.New("empty node name")
	case len(name) > maxNodeName:
		return fmt.Errorf("node name of %d bytes (at most %d)", len(name), maxNodeName)
	case !utf8.ValidString(name):
		return errors.New("node name is not UTF-8")
	case strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r >= 0x7f && r < 0xa0 }):
		return errors.New("control character in node name")
	}
	return nil
}

// CheckNode checks a node name as a viewer asks for it (--mqtt-node): a
// name a router can have, that is also one topic level a request can be
// published to (no / + #) and not the broadcast one.
func CheckNode(name string) error {
	if err := checkNodeName(name); err != nil {
		return err
	}
	switch {
	case strings.ContainsAny(name, "/+#"):
		return fmt.Errorf("node name %q holds / + or #, which no topic level can", oneLine(name, 40))
	case name == broadcastNode:
		return fmt.Errorf("%q is the topic level of requests to every node, no node's name", broadcastNode)
	}
	return nil
}

// broadcastNode is the request topic level for every node.
const broadcastNode = "broadcast"

// node is what the tracker knows of one node.
type node struct {
	name     string
	status   Status
	statusAt time.Time
	view     *View
	// asm holds the parts of a document being joined, one per stream
	// (0 periodic, 1 live): a live document and a periodic one never
	// end each other's.
	asm      [2]*assembly
	liveAt   time.Time // arrival of the last live document
	summary  summary   // from the last document or state message, the newest
	watched  bool
	docs     uint64
	rejected uint64
	err      string
	errAt    time.Time
}

// summary is what NodeInfo shows of the newest document or state.
type summary struct {
	host                          string
	time, received                time.Time
	flows, listed, tableFlows     int
	origBytesPerS, replyBytesPerS float64
	overruns, resyncs             uint64
	dropped, exportErrors         uint64
	publishEvery                  time.Duration // kept from the last document that said
}

func (n *node) fail(now time.Time, format string, args ...any) {
	n.err = oneLine(fmt.Sprintf(format, args...), 300)
	n.errAt = now
}

// info is the node as readers see it; watchEvery is the period of the
// leases this viewer holds (0 when it holds none on n).
func (n *node) info(watchEvery time.Duration) NodeInfo {
	if !n.watched {
		watchEvery = 0
	}
	s := &n.summary
	ni := NodeInfo{
		Name: n.name, Status: n.status, StatusAt: n.statusAt,
		Host: s.host, Time: s.time, Received: s.received,
		Flows: s.flows, Listed: s.listed, TableFlows: s.tableFlows,
		OrigBytesPerS: s.origBytesPerS, ReplyBytesPerS: s.replyBytesPerS,
		Overruns: s.overruns, Resyncs: s.resyncs, Dropped: s.dropped, ExportErrors: s.exportErrors,
		PublishEvery: s.publishEvery,
		Watched:      n.watched, WatchEvery: watchEvery, Documents: n.docs, Rejected: n.rejected, Err: n.err, ErrAt: n.errAt,
	}
	if v := n.view; v != nil {
		ni.Complete, ni.Parts, ni.PartsReceived, ni.Live = v.Complete, v.Parts, v.PartsReceived, v.Live
	}
	return ni
}

// assembly gathers the parts of one document.
type assembly struct {
	key      asmKey
	head     header // of the first part to arrive
	got      []bool
	received int
	flows    []conntrack.Flow
	names    []enrich.Names // nil while no part had names
	skipped  int
	last     time.Time // arrival of the newest part
}

// asmKey joins the parts of a document: they share time and request_id.
type asmKey struct {
	time      int64
	requestID string
}

// add puts a part's flows in; false for a part already there (a QoS 1
// message delivered twice).
func (a *assembly) add(p *part, now time.Time) bool {
	if a.got[p.Part-1] {
		return false
	}
	a.got[p.Part-1] = true
	a.received++
	a.last = now
	a.skipped += p.skipped
	if p.names != nil && a.names == nil {
		a.names = make([]enrich.Names, len(a.flows), len(a.flows)+len(p.flows))
	}
	a.flows = append(a.flows, p.flows...)
	if a.names != nil {
		if p.names != nil {
			a.names = append(a.names, p.names...)
		} else {
			a.names = append(a.names, make([]enrich.Names, len(p.flows))...)
		}
	}
	return true
}

// stateDoc is the retained summary on <node>/state.
type stateDoc struct {
	Time        time.Time `json:"time"`
	RxBytesPerS float64   `json:"rx_bytes_per_s"`
	TxBytesPerS float64   `json:"tx_bytes_per_s"`
	Flows       int       `json:"flows"`
	TableFlows  int       `json:"table_flows"`
}

// maxState bounds a state message: it is a few keys.
const maxState = 64 << 10

// tracker is the state of every node. Only the owner goroutine touches
// it; readers get what publish makes.
type tracker struct {
	s     *settings
	nodes map[string]*node
	// held counts the flow records of every view and assembly, against
	// MaxFlows.
	held int
	conn ConnInfo
	// watchAll leases every node (the fleet view) through the broadcast
	// topic; watching names the nodes leased one by one.
	watchAll bool
	// summary: the broadcast lease asks for totals only (WatchSummary).
	summary  bool
	watching map[string]bool
	changed  bool
}

func newTracker(s *settings) *tracker {
	return &tracker{s: s, nodes: map[string]*node{}, watching: map[string]bool{},
		conn: ConnInfo{Broker: s.broker}}
}

// topic kinds under <prefix>/<node>/.
const (
	kindStatus = iota
	kindSnapshot
	kindSnapshotGz
	kindLive
	kindLiveGz
	kindState
)

var kinds = map[string]int{
	"status": kindStatus, "snapshot": kindSnapshot, "snapshot/gz": kindSnapshotGz,
	"live": kindLive, "live/gz": kindLiveGz, "state": kindState,
}

// splitTopic returns the node and the kind of a topic under the prefix.
func (t *tracker) splitTopic(topic string) (name string, kind int, ok bool) {
	rest, ok := strings.CutPrefix(topic, t.s.Topic+"/")
	if !ok {
		return "", 0, false
	}
	name, suffix, ok := strings.Cut(rest, "/")
	if !ok {
		return "", 0, false
	}
	kind, ok = kinds[suffix]
	return name, kind, ok
}

// inbound is a message from the broker. size is the body's length;
// over says it was over the cap, and the body was not kept.
type inbound struct {
	topic string
	body  []byte
	size  int
	over  bool
}

// message applies one message from the broker.
func (t *tracker) message(m inbound, now time.Time) {
	name, kind, ok := t.splitTopic(m.topic)
	if !ok || name == broadcastNode {
		return
	}
	n := t.node(name, kind, m, now)
	if n == nil {
		return
	}
	t.changed = true
	if m.over {
		n.rejected++
		n.fail(now, "%s: message of %s over the %s limit, ignored", kindName(kind), sizeString(m.size), sizeString(t.s.MaxMessage))
		return
	}
	switch kind {
	case kindStatus:
		t.status(n, m, now)
	case kindState:
		t.state(n, m.body, now)
	case kindSnapshot, kindSnapshotGz, kindLive, kindLiveGz:
		body := m.body
		if kind == kindSnapshotGz || kind == kindLiveGz {
			var err error
			if body, err = gunzip(body, t.s.MaxMessage); err != nil {
				n.rejected++
				n.fail(now, "%s: %v", kindName(kind), err)
				return
			}
		}
		t.document(n, body, kind == kindLive || kind == kindLiveGz, now)
	}
}

func kindName(kind int) string {
	for k, v := range kinds {
		if v == kind {
			return k
		}
	}
	return "message"
}

// node finds or makes the node of a message; nil when its name is
// refused or too many nodes are tracked.
func (t *tracker) node(name string, kind int, m inbound, now time.Time) *node {
	if n := t.nodes[name]; n != nil {
		return n
	}
	if kind == kindStatus && len(m.body) == 0 {
		return nil // a cleared status of a node not tracked
	}
	if err := checkNodeName(name); err != nil {
		t.ignore(now, "ignored a node: %v (%q)", err, oneLine(name, 40))
		return nil
	}
	if len(t.nodes) >= t.s.MaxNodes {
		t.ignore(now, "ignored node %q: %d nodes are tracked already", oneLine(name, 40), t.s.MaxNodes)
		return nil
	}
	n := &node{name: name, watched: t.watchAll || t.watching[name]}
	t.nodes[name] = n
	return n
}

func (t *tracker) ignore(now time.Time, format string, args ...any) {
	t.conn.Ignored++
	t.connError(now, fmt.Sprintf(format, args...))
}

func (t *tracker) connError(now time.Time, msg string) {
	t.conn.Err, t.conn.ErrAt = oneLine(msg, 300), now
	t.changed = true
}

func (t *tracker) status(n *node, m inbound, now time.Time) {
	switch string(m.body) {
	case "online":
		n.status = StatusOnline
	case "offline":
		n.status = StatusOffline
	case "":
		// A retained status cleared by hand (mosquitto_pub -r -n): the
		// node is retired. Forget it.
		t.forget(n)
		return
	default:
		n.rejected++
		n.fail(now, "status: unexpected payload %q", oneLine(string(m.body), 40))
		return
	}
	n.statusAt = now
}

func (t *tracker) forget(n *node) {
	t.held -= n.heldFlows()
	delete(t.nodes, n.name)
}

// heldFlows is the number of flow records n holds.
func (n *node) heldFlows() int {
	h := 0
	if n.view != nil {
		h += len(n.view.records)
	}
	for _, a := range n.asm {
		if a != nil {
			h += len(a.flows)
		}
	}
	return h
}

func (t *tracker) state(n *node, body []byte, now time.Time) {
	if len(body) > maxState {
		n.rejected++
		n.fail(now, "state: message of %s, want a few keys", sizeString(len(body)))
		return
	}
	var st stateDoc
	if err := json.Unmarshal(body, &st); err != nil {
		n.rejected++
		n.fail(now, "state: %v", jsonError(err))
		return
	}
	s := &n.summary
	if st.Time.IsZero() || st.Time.Before(s.time) {
		return // older than the document shown
	}
	s.time, s.received = st.Time, now
	s.flows, s.tableFlows = st.Flows, st.TableFlows
	s.origBytesPerS, s.replyBytesPerS = st.TxBytesPerS, st.RxBytesPerS
}

// document applies a snapshot message: a whole document, or one part.
func (t *tracker) document(n *node, body []byte, live bool, now time.Time) {
	stream := 0
	if live {
		stream = 1
	}
	// n's shown flows are replaced by what this document brings, so they
	// do not count against it; the other nodes' and its parts so far do.
	budget := t.s.MaxFlows - t.held
	if n.view != nil {
		budget += len(n.view.records)
	}
	p, err := decodeDocument(body, max(budget, 0))
	if err != nil {
		n.rejected++
		if errors.Is(err, errBudget) {
			if a := n.asm[stream]; a != nil {
				t.held -= len(a.flows)
				n.asm[stream] = nil
			}
			n.fail(now, "%s: %v (MaxFlows %d for all nodes)", streamName(live), err, t.s.MaxFlows)
			return
		}
		n.fail(now, "%s: %v", streamName(live), err)
		return
	}
	if p.skipped > 0 {
		n.fail(now, "%s: %d flows skipped: %s", streamName(live), p.skipped, p.skipNote)
	}
	if p.RequestID != "" && p.RequestID != t.s.ClientID {
		// Someone else's poll, perhaps filtered: not the node's table.
		return
	}
	if !live && now.Sub(n.liveAt) < t.s.Lease {
		// While the watch stream runs, a periodic document (all flows,
		// or the router's --limit) would replace the live top flows for
		// a moment and flicker.
		return
	}
	if live {
		n.liveAt = now
	}
	t.summarize(n, &p.header, now)
	if p.Parts == 0 {
		// Whole: it ends any document still being joined on this stream.
		t.finish(n, stream, now)
		t.held += len(p.flows)
		t.show(n, newView(n.name, &p.header, p.flows, p.names, true, 1, live, now, p.skipped))
		return
	}
	key := asmKey{p.Time.UnixNano(), p.RequestID}
	if a := n.asm[stream]; a != nil && (a.key != key || len(a.got) != p.Parts) {
		t.finish(n, stream, now) // a new document: the old one lost parts
	}
	a := n.asm[stream]
	if a == nil {
		a = &assembly{key: key, head: p.header, got: make([]bool, p.Parts)}
		n.asm[stream] = a
	}
	if a.add(p, now) {
		t.held += len(p.flows)
	}
	if a.received == len(a.got) {
		t.finish(n, stream, now)
	}
}

func streamName(live bool) string {
	if live {
		return "live"
	}
	return "snapshot"
}

// summarize takes a document's header into the node's summary, unless a
// newer state message is there already.
func (t *tracker) summarize(n *node, h *header, now time.Time) {
	s := &n.summary
	if h.Time.Before(s.time) {
		return
	}
	publishEvery := s.publishEvery
	if h.PublishIntervalS > 0 {
		publishEvery = time.Duration(h.PublishIntervalS * float64(time.Second))
	}
	*s = summary{host: h.Host, time: h.Time, received: now, publishEvery: publishEvery,
		flows: h.Totals.Flows, listed: h.Totals.Listed, tableFlows: h.Totals.TableFlows,
		origBytesPerS: h.Totals.OrigBytesPerS, replyBytesPerS: h.Totals.ReplyBytesPerS,
		overruns: h.Health.Overruns, resyncs: h.Health.Resyncs}
	if e, ok := h.Health.Exporters["mqtt"]; ok {
		s.dropped, s.exportErrors = e.Dropped, e.Errors
	}
}

// finish ends the document being joined on a stream: shown complete when
// every part came, else flagged with the parts that did.
func (t *tracker) finish(n *node, stream int, now time.Time) {
	a := n.asm[stream]
	if a == nil {
		return
	}
	n.asm[stream] = nil
	complete := a.received == len(a.got)
	if !complete {
		n.fail(now, "%s: %d of %d parts arrived; shown incomplete (the missing flows are not known, not ended)",
			streamName(stream == 1), a.received, len(a.got))
	}
	t.show(n, newView(n.name, &a.head, a.flows, a.names, complete, a.received, stream == 1, a.last, a.skipped))
}

// show makes v the node's view unless a newer one is shown; the flows of
// the view it replaces (or of v, when refused) are no longer held.
func (t *tracker) show(n *node, v *View) {
	if old := n.view; old != nil && old.Snapshot.Time.After(v.Snapshot.Time) {
		t.held -= len(v.records)
		return
	}
	if n.view != nil {
		t.held -= len(n.view.records)
	}
	n.view = v
	n.docs++
}

// expire ends the documents whose parts stopped coming; it returns when
// it next has something to do (zero: nothing pending).
func (t *tracker) expire(now time.Time) (next time.Time) {
	for _, n := range t.nodes {
		for stream, a := range n.asm {
			if a == nil {
				continue
			}
			due := a.last.Add(t.s.PartTimeout)
			if !now.Before(due) {
				t.finish(n, stream, now)
				t.changed = true
				continue
			}
			if next.IsZero() || due.Before(next) {
				next = due
			}
		}
	}
	return next
}

// published is what readers see: made by the owner, never modified.
type published struct {
	nodes []NodeInfo
	views map[string]*View
	conn  ConnInfo
	fleet func() *FleetView
}

// publish makes the readers' copy of the state.
func (t *tracker) publish() *published {
	p := &published{nodes: make([]NodeInfo, 0, len(t.nodes)), views: map[string]*View{}, conn: t.conn}
	for _, n := range t.nodes {
		p.nodes = append(p.nodes, n.info(t.watchEvery()))
		if n.view != nil {
			p.views[n.name] = n.view
		}
	}
	slices.SortFunc(p.nodes, func(a, b NodeInfo) int { return strings.Compare(a.Name, b.Name) })
	views := p.views
	p.fleet = sync.OnceValue(func() *FleetView { return newFleet(sortedViews(views)) })
	t.changed = false
	return p
}

// watchEvery is how often this viewer's leases ask their nodes to
// publish.
func (t *tracker) watchEvery() time.Duration {
	if t.summary {
		return t.s.NodesInterval
	}
	return t.s.Interval
}
