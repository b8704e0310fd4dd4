package remote

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"
	"github.com/flowtop/flowtop/mqttexport"
)

// Client follows every node under a topic prefix. Make one with Open;
// every method is safe for concurrent use and none waits for the broker.
type Client struct {
	s   *settings
	log *slog.Logger

	cancel context.CancelFunc
	wg     sync.WaitGroup
	closed sync.Once

	pub     atomic.Pointer[published]
	changes chan struct{}

	// From paho's goroutines to the owner: messages (bounded in number
	// and in bytes) and connection events.
	inbox   chan inbound
	queued  atomic.Int64 // bytes of the bodies in inbox
	dropped atomic.Uint64
	conns   chan connEvent
	client  atomic.Pointer[clientRef] // while subscribed
	first   chan error                // the first connection's outcome

	syncs chan chan struct{} // sync's requests

	wantMu    sync.Mutex
	want      watchSet
	watchKick chan struct{}

	// cuts are the real sizes of the messages the connection cut at the
	// cap, oldest first, for the handler's one-line refusal.
	cuts cutSizes

	// Tunables, changed by tests only.
	minBackoff, maxBackoff time.Duration
	connectTimeout         time.Duration
	keepAlive              time.Duration
	publishEvery           time.Duration // the most often readers are told of changes
}

type clientRef struct{ mqtt.Client }

// connEvent tells the owner the connection came up or went.
type connEvent struct {
	up  bool
	err error
	at  time.Time
}

// Bounds of the queue from paho to the owner. A node's 100k-flow
// document is some 260 messages of 256 KiB; the bytes bound keeps a
// flood from holding more than a few documents.
const (
	inboxMessages = 4096
	inboxBytes    = 64 << 20
)

// Open checks cfg, reads the files it names and starts following the
// broker in the background: it returns at once, connected or not (Conn
// tells). Everything stops when ctx is done or at Close.
func Open(ctx context.Context, cfg Config) (*Client, error) {
	s, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	return open(ctx, s, nil), nil
}

// open starts a Client; tune, when not nil, changes its tunables first.
func open(ctx context.Context, s *settings, tune func(*Client)) *Client {
	ctx, cancel := context.WithCancel(ctx)
	c := &Client{
		s: s, log: s.Logger.With("remote", s.broker), cancel: cancel,
		changes:        make(chan struct{}, 1),
		inbox:          make(chan inbound, inboxMessages),
		conns:          make(chan connEvent, 8),
		first:          make(chan error, 1),
		watchKick:      make(chan struct{}, 1),
		syncs:          make(chan chan struct{}),
		minBackoff:     500 * time.Millisecond,
		maxBackoff:     30 * time.Second,
		connectTimeout: 10 * time.Second,
		keepAlive:      30 * time.Second,
		publishEvery:   200 * time.Millisecond,
	}
	if tune != nil {
		tune(c)
	}
	t := newTracker(s)
	c.pub.Store(t.publish())
	c.wg.Go(func() { c.manage(ctx) })
	c.wg.Go(func() { c.own(ctx, t) })
	context.AfterFunc(ctx, func() { c.Close() })
	return c
}

// Nodes returns every node tracked, by name.
func (c *Client) Nodes() []NodeInfo { return slices.Clone(c.pub.Load().nodes) }

// Latest returns the node's latest view, nil before its first document.
func (c *Client) Latest(node string) *View { return c.pub.Load().views[node] }

// Fleet returns the views of every node merged; it is made at the first
// call after a change.
func (c *Client) Fleet() *FleetView { return c.pub.Load().fleet() }

// Conn describes the connection to the broker.
func (c *Client) Conn() ConnInfo { return c.pub.Load().conn }

// Changes receives a value after Nodes, Latest, Fleet or Conn changed
// (at most every 200 ms). It is closed when the Client stops.
func (c *Client) Changes() <-chan struct{} { return c.changes }

// Watch holds watch leases on the nodes named (the node on screen),
// ending those on the nodes no longer named; Watch() ends them all. A
// lease makes the router publish its busiest flows every Config.Interval
// while it holds.
func (c *Client) Watch(nodes ...string) { c.setWant(watchSet{nodes: slices.Clone(nodes)}) }

// WatchAll holds a lease on every node under the prefix (the fleet
// view), with one message on the broadcast topic per renewal.
func (c *Client) WatchAll() { c.setWant(watchSet{all: true}) }

// WatchSummary holds a lease on every node for its totals only, every
// NodesInterval (and one flow: a lease lists at least one): what a list of
// the nodes shows, fresher than their --mqtt-interval at little cost.
// Watch and WatchAll replace it.
func (c *Client) WatchSummary() { c.setWant(watchSet{all: true, summary: true}) }

func (c *Client) setWant(w watchSet) {
	c.wantMu.Lock()
	c.want = w
	c.wantMu.Unlock()
	notify(c.watchKick)
}

// Close ends the leases held (when connected), disconnects and waits for
// the Client's goroutines. It may be called more than once.
func (c *Client) Close() error {
	c.closed.Do(func() {
		c.cancel()
		c.wg.Wait()
		close(c.changes)
	})
	return nil
}

// subscriptions are the topic filters of a Client.
func (s *settings) subscriptions() map[string]byte {
	subs := map[string]byte{}
	for suffix := range kinds {
		subs[s.Topic+"/+/"+suffix] = s.QoS
	}
	return subs
}

func (c *Client) clientOptions(lost chan<- error) *mqtt.ClientOptions {
	o := mqtt.NewClientOptions().
		AddBroker(c.s.broker).
		SetClientID(c.s.ClientID).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(c.keepAlive).
		SetPingTimeout(10 * time.Second).
		SetConnectTimeout(c.connectTimeout).
		SetWriteTimeout(10 * time.Second).
		// In order: the parts of a document, a status after the one before.
		// The handler never blocks, so paho's pings are not held up.
		SetOrderMatters(true).
		SetDefaultPublishHandler(c.onMessage).
		SetCustomOpenConnectionFn(cappedConnection(c.s.MaxMessage, &c.cuts)).
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			select {
			case lost <- err:
			default:
			}
		})
	if c.s.User != "" {
		o.SetUsername(c.s.User)
		o.SetPassword(c.s.password)
	}
	if c.s.tls != nil {
		o.SetTLSConfig(c.s.tls.Clone())
	}
	return o
}

// manage connects and subscribes, again with backoff after a failure or a
// loss, until ctx is done.
func (c *Client) manage(ctx context.Context) {
	backoff := c.minBackoff
	for ctx.Err() == nil {
		lost := make(chan error, 1)
		mc := mqtt.NewClient(c.clientOptions(lost))
		err := c.connect(ctx, mc)
		if ctx.Err() != nil {
			mc.Disconnect(0)
			return
		}
		if err != nil {
			c.event(ctx, connEvent{err: err, at: time.Now()})
			mc.Disconnect(0)
			if !sleep(ctx, jitter(backoff)) {
				return
			}
			backoff = min(2*backoff, c.maxBackoff)
			continue
		}
		backoff = c.minBackoff
		c.client.Store(&clientRef{mc})
		c.event(ctx, connEvent{up: true, at: time.Now()})
		select {
		case <-ctx.Done():
			c.client.Store(nil)
			c.goodbye(mc)
			return
		case err := <-lost:
			c.client.Store(nil)
			c.event(ctx, connEvent{err: fmt.Errorf("connection to %s lost: %w", c.s.broker, err), at: time.Now()})
			mc.Disconnect(0)
			if !sleep(ctx, jitter(backoff)) {
				return
			}
		}
	}
}

// connect connects mc and subscribes, within the connect timeout.
func (c *Client) connect(ctx context.Context, mc mqtt.Client) error {
	if err := await(ctx, mc.Connect(), c.connectTimeout+5*time.Second); err != nil {
		if errors.Is(err, packets.ErrorRefusedNotAuthorised) || errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) {
			return fmt.Errorf("connect to %s: %w (check --mqtt-user and the password file or $FLOWTOP_MQTT_PASSWORD)", c.s.broker, err)
		}
		return fmt.Errorf("connect to %s: %w", c.s.broker, mqttexport.NetworkCause(err))
	}
	tok := mc.SubscribeMultiple(c.s.subscriptions(), nil)
	if err := await(ctx, tok, c.connectTimeout); err != nil {
		return fmt.Errorf("subscribe on %s: %w", c.s.broker, err)
	}
	for topic, code := range tok.(*mqtt.SubscribeToken).Result() {
		if code >= 0x80 {
			return fmt.Errorf("broker %s refused the subscription to %s (an ACL?)", c.s.broker, topic)
		}
	}
	return nil
}

// goodbye ends this viewer's leases, so that the routers go back to their
// interval at once rather than when the leases run out, and disconnects.
func (c *Client) goodbye(mc mqtt.Client) {
	c.wantMu.Lock()
	w := c.want
	c.wantMu.Unlock()
	var toks []mqtt.Token
	if w.all {
		toks = append(toks, mc.Publish(c.s.requestTopic(""), c.s.QoS, false, c.s.lease(false, false)))
	}
	for _, n := range w.nodes {
		if checkNodeName(n) == nil {
			toks = append(toks, mc.Publish(c.s.requestTopic(n), c.s.QoS, false, c.s.lease(false, false)))
		}
	}
	deadline := time.Now().Add(time.Second)
	for _, tok := range toks {
		tok.WaitTimeout(max(time.Until(deadline), 0))
	}
	mc.Disconnect(250)
}

func (c *Client) event(ctx context.Context, ev connEvent) {
	select {
	case c.first <- ev.err: // the first outcome only: the buffer holds one
	default:
	}
	if ev.err != nil {
		c.log.Warn("mqtt", "err", ev.err)
	}
	select {
	case c.conns <- ev:
	case <-ctx.Done():
	}
}

// onMessage is paho's handler for every message. It runs on paho's
// router goroutine and must not block: it measures the body, keeps it
// when under the cap and queues it for the owner, or counts a drop.
// The connection passes on at most MaxMessage+1 bytes of a body
// (mqttexport.CappedConnection), so a message over the cap costs no more
// memory than one at the cap; its real size comes from the connection.
func (c *Client) onMessage(_ mqtt.Client, m mqtt.Message) {
	body := m.Payload() // paho makes a new slice per packet: no copy needed
	in := inbound{topic: m.Topic(), size: len(body)}
	if len(body) > c.s.MaxMessage {
		in.over = true
		in.size = c.cuts.pop(len(body))
	} else {
		if c.queued.Add(int64(len(body))) > inboxBytes {
			c.queued.Add(-int64(len(body)))
			c.dropped.Add(1)
			return
		}
		in.body = body
	}
	select {
	case c.inbox <- in:
	default:
		c.queued.Add(-int64(len(in.body)))
		c.dropped.Add(1)
	}
}

// own is the owner goroutine: it alone changes the tracker, and publishes
// what readers see.
func (c *Client) own(ctx context.Context, t *tracker) {
	o := &owner{c: c, t: t}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case m := <-c.inbox:
			o.message(m)
		case ev := <-c.conns:
			o.conn(ev)
		case <-c.watchKick:
			o.watchChanged()
		case done := <-c.syncs:
			o.sync(done)
		case <-timer.C:
		}
		timer.Reset(max(time.Until(o.settle(time.Now())), 0))
	}
}

// owner is the state of own besides the tracker: one method per event of
// its loop. It is owned by the one goroutine that runs own, as the
// tracker is; nothing else reads or writes its fields.
type owner struct {
	c           *Client
	t           *tracker
	renewAt     time.Time // next lease renewal, zero when none
	lastPublish time.Time
	dropped     uint64       // c.dropped when last reported
	pending     []mqtt.Token // the last renewal's publishes
}

// message applies a message taken from the inbox.
func (o *owner) message(m inbound) {
	o.c.queued.Add(-int64(len(m.body)))
	o.t.message(m, time.Now())
}

// conn notes that the connection came up (the leases are renewed at
// once) or went.
func (o *owner) conn(ev connEvent) {
	o.t.conn.Connected = ev.up
	o.t.conn.Since = ev.at
	if ev.err != nil {
		o.t.connError(ev.at, ev.err.Error())
	}
	o.t.changed = true
	if ev.up {
		o.renewAt = time.Now()
	}
}

// watchChanged follows Watch: it ends the leases no longer wanted and
// takes the new ones at once.
func (o *owner) watchChanged() {
	c := o.c
	c.wantMu.Lock()
	w := c.want
	c.wantMu.Unlock()
	for _, topic := range o.t.setWatch(w) {
		c.send(topic, c.s.lease(false, false))
	}
	o.renewAt = time.Now()
}

// sync applies the messages queued and publishes them to readers, then
// closes done.
func (o *owner) sync(done chan struct{}) {
	for len(o.c.inbox) > 0 {
		o.message(<-o.c.inbox)
	}
	o.c.pub.Store(o.t.publish())
	o.lastPublish = time.Now()
	close(done)
}

// settle runs after every event: it expires what is due, reports drops,
// renews the leases when due and publishes changes. It returns when to
// run again.
func (o *owner) settle(now time.Time) time.Time {
	next := o.t.expire(now)
	o.reportDrops(now)
	if !o.renewAt.IsZero() && !now.Before(o.renewAt) {
		o.renew(now)
	}
	next = o.publishChanges(now, next)
	next = earliest(next, o.renewAt)
	if next.IsZero() {
		next = now.Add(time.Hour)
	}
	return next
}

// reportDrops shows the messages dropped since the last look.
func (o *owner) reportDrops(now time.Time) {
	if d := o.c.dropped.Load(); d != o.dropped {
		o.t.conn.Dropped = d
		o.t.connError(now, fmt.Sprintf("%d messages dropped: the viewer could not keep up", d-o.dropped))
		o.dropped = d
	}
}

// renew shows the first failure of the last renewal, renews the leases
// held and sets the next renewal.
func (o *owner) renew(now time.Time) {
	c, t := o.c, o.t
	for _, tok := range o.pending {
		if tok.Error() != nil {
			t.connError(now, "watch lease: "+tok.Error().Error())
			break
		}
	}
	o.pending = o.pending[:0]
	for _, topic := range t.leaseTopics() {
		if tok := c.send(topic, c.s.lease(true, t.summary)); tok != nil {
			o.pending = append(o.pending, tok)
		}
	}
	o.renewAt = time.Time{}
	if t.watchAll || len(t.watching) > 0 {
		o.renewAt = now.Add(c.s.renewEvery())
	}
}

// publishChanges publishes the tracker to readers when it changed, and
// returns next, or sooner when a publish waits.
func (o *owner) publishChanges(now, next time.Time) time.Time {
	if !o.t.changed {
		return next
	}
	// A burst of parts is published once it is read, or every
	// publishEvery while it lasts.
	if len(o.c.inbox) == 0 || now.Sub(o.lastPublish) >= o.c.publishEvery {
		o.c.pub.Store(o.t.publish())
		o.lastPublish = now
		notify(o.c.changes)
		return next
	}
	return earliest(next, o.lastPublish.Add(o.c.publishEvery))
}

// sync returns once the messages queued when it was called are applied
// and published to readers.
func (c *Client) sync(ctx context.Context) error {
	done := make(chan struct{})
	select {
	case c.syncs <- done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// send publishes a request without waiting; nil when not connected.
func (c *Client) send(topic string, body []byte) mqtt.Token {
	ref := c.client.Load()
	if ref == nil {
		return nil
	}
	return ref.Publish(topic, c.s.QoS, false, body)
}

// earliest returns the earlier of two times, a zero one being none.
func earliest(a, b time.Time) time.Time {
	switch {
	case a.IsZero():
		return b
	case b.IsZero() || a.Before(b):
		return a
	}
	return b
}

// await waits for tok, at most d, and not past ctx.
func await(ctx context.Context, tok mqtt.Token, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-tok.Done():
		return tok.Error()
	case <-t.C:
		return fmt.Errorf("no answer from the broker within %v", d)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// jitter spreads d by ±20% so that viewers do not reconnect in step.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// cappedConnection dials as mqttexport.CappedConnection does, the real
// sizes of the bodies it cuts going to cuts. A new connection empties
// cuts: the sizes of a connection that died before paho delivered its
// messages would otherwise be taken for later ones.
func cappedConnection(max int, cuts *cutSizes) mqtt.OpenConnectionFunc {
	dial := mqttexport.CappedConnection(max, cuts.push)
	return func(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
		cuts.reset()
		return dial(uri, o)
	}
}

// cutSizes is a queue of the sizes of the messages cut at the cap, from
// the connection's reader to paho's handler (in the same order). It keeps
// the newest maxCuts: a size lost is only a less precise error message.
type cutSizes struct {
	mu    sync.Mutex
	sizes []int
}

const maxCuts = 64

func (q *cutSizes) push(size int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.sizes) == maxCuts {
		q.sizes = q.sizes[1:]
	}
	q.sizes = append(q.sizes, size)
}

// reset forgets every size.
func (q *cutSizes) reset() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.sizes = nil
}

// pop returns the oldest size, or seen (what the handler got, one byte
// over the cap) when none is queued.
func (q *cutSizes) pop(seen int) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.sizes) == 0 {
		return seen
	}
	size := q.sizes[0]
	q.sizes = q.sizes[1:]
	return size
}
