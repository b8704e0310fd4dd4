package mqttexport

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/export"
	"github.com/flowtop/flowtop/report"
)

// Payloads of the status topic.
const (
	statusOnline  = "online"
	statusOffline = "offline"
)

// statusQoS is used for the status topic and the last will whatever
// Config.QoS says: "offline" must reach the broker before DISCONNECT.
const statusQoS = 1

// topics are the full topic names of one node.
type topics struct {
	status, snapshot, ended, state, request, broadcast, live string
}

func newTopics(prefix, node string, gz bool) topics {
	base := prefix + "/" + node
	t := topics{
		status:    base + "/status",
		snapshot:  base + "/snapshot",
		ended:     base + "/ended",
		state:     base + "/state",
		request:   base + "/request",
		broadcast: prefix + "/broadcast/request",
		live:      liveTopic(prefix, node, gz),
	}
	if gz {
		t.snapshot += "/gz"
		t.ended += "/gz"
	}
	return t
}

// Exporter publishes snapshots and ended flows to an MQTT broker. Make one
// with New and start it with Run.
type Exporter struct {
	s   *settings
	t   topics
	enc encoder
	log *slog.Logger
	out *outbox

	published, dropped, errs atomic.Uint64
	// Ended records dropped (also in dropped), and those of them dropped
	// for the queue bound.
	endedLost, endedFull atomic.Uint64
	// Requests received, rejected (oversized, malformed, retained, or a
	// watch lease refused for the viewer bound) and
	// coalesced by the rate limit; rejected and coalesced are also in
	// dropped.
	requests, rejected, coalesced atomic.Uint64
	connected                     atomic.Bool
	inbound                       inboundStats // what the connection kept from paho

	client atomic.Pointer[clientRef] // set while a connection is up
	connUp chan struct{}             // wakes the sender after a connect
	fresh  chan struct{}             // asks schedule for a snapshot after a connect
	lost   chan lostEvent            // from paho's connection-lost handler
	reqs   chan inbound              // from paho's message handler
	checks chan check                // tokens made in the OnConnect handler
	// subscribed hands the request subscription of a connection from
	// the OnConnect handler to manage, which holds the connect snapshot
	// until the broker acknowledged it.
	subscribed chan subscription
	running    atomic.Bool

	// Home Assistant: the device config topic, the per-entity topics of
	// earlier versions, and Home Assistant's own status topic (its birth
	// message asks for the discovery again).
	haTopic, haStatus string
	haLegacy          []string
	// haMigrated is set once the per-entity topics were handed over
	// (owned by the sender, the only goroutine that publishes jobs).
	haMigrated bool
	// haLastBirth is when the last birth message queued the discovery
	// (UnixNano): births closer than haEvery are ignored, so that a
	// flood of them cannot keep the sender from everything else.
	haLastBirth atomic.Int64

	// Tunables, changed by tests only.
	minBackoff, maxBackoff time.Duration
	stableAfter            time.Duration // a connection this old resets the backoff
	endedWait              time.Duration // longest wait to reconnect while ended records are queued
	retryPause             time.Duration // before a failed job is tried again on the same connection
	connectTimeout         time.Duration
	publishTimeout         time.Duration
	keepAlive              time.Duration
	reqEvery               time.Duration // minimum gap between request replies
	endedEvery             time.Duration // ended batch period
	haEvery                time.Duration // minimum gap between discoveries asked for by births
	maxEnded               int           // ended records held while disconnected
	// At shutdown: the Ended channel is read until it is quiet for
	// endedQuiet (at most endedDrain in all), and the ended records still
	// queued are published for at most flushTimeout.
	endedQuiet, endedDrain time.Duration
	flushTimeout           time.Duration
}

type clientRef struct{ mqtt.Client }

type lostEvent struct {
	c   mqtt.Client
	err error
}

type inbound struct {
	topic string
	body  []byte
}

// check is a token to watch, made where waiting is not allowed.
type check struct {
	tok     mqtt.Token
	what    string
	publish bool
}

// New checks cfg and reads the files it names (password, CA, certificate,
// key). env is what the exporter reads of the table: Latest (required),
// its own Ended subscription, the Names of flows, the Health hook that
// completes its documents' health, the Logger, and the Host and Netns of
// its documents. Errors are one line and name the file or value at
// fault. Nothing connects until Run.
func New(cfg Config, env export.Env) (*Exporter, error) {
	s, err := cfg.validate(env)
	if err != nil {
		return nil, err
	}
	e := &Exporter{
		s:              s,
		t:              newTopics(s.Topic, s.Node, s.Gzip),
		enc:            encoder{max: s.MaxPayload, gz: s.Gzip},
		log:            s.Logger.With("exporter", "mqtt"),
		connUp:         make(chan struct{}, 1),
		fresh:          make(chan struct{}, 1),
		lost:           make(chan lostEvent, 4),
		reqs:           make(chan inbound, 64),
		checks:         make(chan check, 32),
		subscribed:     make(chan subscription, 1),
		minBackoff:     time.Second,
		maxBackoff:     2 * time.Minute,
		stableAfter:    5 * time.Second,
		endedWait:      5 * time.Second,
		retryPause:     time.Second,
		connectTimeout: 15 * time.Second,
		publishTimeout: 20 * time.Second,
		keepAlive:      30 * time.Second,
		reqEvery:       time.Second,
		endedEvery:     time.Second,
		haEvery:        10 * time.Second,
		haTopic:        haDiscoveryTopic(s.HomeAssistantPrefix, s.Node),
		haStatus:       s.HomeAssistantPrefix + "/status",
		haLegacy:       haLegacyTopics(s.HomeAssistantPrefix, s.Node),
		maxEnded:       defaultMaxEnded,
		endedQuiet:     50 * time.Millisecond,
		endedDrain:     500 * time.Millisecond,
		flushTimeout:   2 * time.Second,
	}
	e.out = newOutbox(e.maxEnded, e.losses())
	return e, nil
}

// New makes the exporter of c on env: New as flowtop's exporter seam
// calls it (export.Spec.New).
func (c Config) New(env export.Env) (export.Exporter, error) {
	e, err := New(c, env)
	if err != nil {
		return nil, err
	}
	return e, nil
}

// Name is the exporter's key in health.exporters.
func (e *Exporter) Name() string { return "mqtt" }

// Health returns the exporter's counters. It is safe for concurrent use.
// Published counts messages the broker acknowledged (each part of a split
// snapshot counts); Dropped counts snapshots and live documents replaced
// before they could be sent, ended records beyond the queue bound, and
// rejected (or refused watch) or coalesced requests; Errors counts failed
// connects, lost connections and failed publishes.
func (e *Exporter) Health() report.ExporterHealth {
	c := e.connected.Load()
	return report.ExporterHealth{
		Published: e.published.Load(),
		Dropped:   e.dropped.Load(),
		Errors:    e.errs.Load(),
		Connected: &c,
	}
}

// Run connects to the broker, retrying with backoff, and publishes until
// ctx is done. It then takes the flows that ended in the last moments,
// publishes the ended records still queued while the connection is up (for
// about two seconds at most; what it cannot send is counted as dropped),
// publishes "offline" on the status topic, disconnects, and returns once
// its goroutines have stopped. Run may be called once.
func (e *Exporter) Run(ctx context.Context) error {
	if !e.running.CompareAndSwap(false, true) {
		return errors.New("mqtt: exporter already run")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// pub outlives ctx by flushTimeout at most: a publish in flight at
	// shutdown, and the final flush of ended records, wait on it instead.
	pub, endPub := context.WithCancel(context.WithoutCancel(ctx))
	defer endPub()
	queued := make(chan struct{}) // closed once schedule queued its last batch

	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(queued)
		e.schedule(ctx)
	})
	wg.Go(func() {
		defer endPub()
		e.sendLoop(ctx, pub, queued)
	})
	var flushBy time.Time // read after wg.Wait
	wg.Go(func() {
		<-ctx.Done()
		flushBy = time.Now().Add(e.flushTimeout)
		sleep(pub, e.flushTimeout)
		endPub()
	})
	wg.Go(func() { e.watch(ctx) })
	last := e.manage(ctx)
	wg.Wait()
	e.shutdown(last, flushBy)
	return nil
}

// manage makes connections until ctx is done and returns the last client.
func (e *Exporter) manage(ctx context.Context) mqtt.Client {
	backoff := e.minBackoff
	for {
		c := mqtt.NewClient(e.clientOptions())
		tok := c.Connect()
		err := e.await(ctx, tok, e.connectTimeout+5*time.Second)
		if ctx.Err() != nil {
			// A connect in flight may still succeed: give it a moment so
			// that shutdown can say "offline" instead of leaving "online".
			waitDone(tok, time.Second)
			return c
		}
		if err != nil {
			e.errs.Add(1)
			wait := e.backoffWait(backoff)
			attrs := []any{"broker", e.s.broker, "err", NetworkCause(err), "retry_in", wait.Round(time.Millisecond)}
			if errors.Is(err, packets.ErrorRefusedNotAuthorised) || errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) {
				attrs = append(attrs, "hint", "the broker refused the login: check --mqtt-user and the password file or "+PasswordEnv)
			}
			e.log.Error("mqtt connect failed", attrs...)
			c.Disconnect(0)
			if !e.pause(ctx, wait) {
				return nil
			}
			backoff = min(2*backoff, e.maxBackoff)
			continue
		}

		since := time.Now()
		e.client.Store(&clientRef{c})
		e.connected.Store(true)
		notify(e.connUp)
		e.log.Info("mqtt connected", "broker", e.s.broker, "client_id", e.s.ClientID,
			"status_topic", e.t.status)
		// Publish the current state right away rather than an interval
		// later, once requests are heard: a client that polls as soon as
		// it sees that snapshot gets an answer.
		e.awaitSubscribed(ctx, c)
		notify(e.fresh)

		var why error
	wait:
		for {
			select {
			case <-ctx.Done():
				return c
			case ev := <-e.lost:
				if ev.c == c {
					why = ev.err
					break wait
				}
			}
		}
		e.client.Store(nil)
		e.connected.Store(false)
		e.errs.Add(1)
		// A connection that stayed up resets the backoff: a broker that
		// restarts now and then is reconnected to within about a second
		// each time. One that drops us at once (another client with our
		// id, say) is not reconnected to in a tight loop.
		up := time.Since(since)
		if up >= e.stableAfter {
			backoff = e.minBackoff
		} else {
			backoff = min(2*backoff, e.maxBackoff)
		}
		wait := e.backoffWait(backoff)
		e.log.Warn("mqtt connection lost", "broker", e.s.broker, "err", why, "was_up", up.Round(time.Millisecond),
			"retry_in", wait.Round(time.Millisecond))
		if !e.pause(ctx, wait) {
			return nil
		}
	}
}

// backoffWait is the wait before the next connect: backoff with jitter,
// at most endedWait while ended records are queued.
func (e *Exporter) backoffWait(backoff time.Duration) time.Duration {
	wait := jitter(backoff)
	if _, n := e.out.size(); n > 0 {
		wait = min(wait, e.endedWait)
	}
	return wait
}

// pause waits d before the next connect, or less: once endedWait has
// passed, ended records queued end it. It reports false when ctx ended it.
func (e *Exporter) pause(ctx context.Context, d time.Duration) bool {
	full := time.NewTimer(d)
	defer full.Stop()
	capped := time.NewTimer(e.endedWait)
	defer capped.Stop()
	var endedIn <-chan struct{} // watched once endedWait has passed
	for {
		select {
		case <-ctx.Done():
			return false
		case <-full.C:
			return true
		case <-capped.C:
			endedIn = e.out.endedIn
			if _, n := e.out.size(); n > 0 {
				return true
			}
		case <-endedIn:
			if _, n := e.out.size(); n > 0 {
				return true
			}
		}
	}
}

// shutdown says "offline" and disconnects c, when it is connected. The
// offline status may wait until flushBy, and at least a second.
func (e *Exporter) shutdown(c mqtt.Client, flushBy time.Time) {
	e.client.Store(nil)
	defer e.connected.Store(false)
	if c == nil {
		return
	}
	if !c.IsConnectionOpen() {
		// A connect still in flight is abandoned when it completes.
		c.Disconnect(0)
		return
	}
	tok := c.Publish(e.t.status, statusQoS, true, statusOffline)
	switch {
	case !tok.WaitTimeout(max(time.Until(flushBy), time.Second)):
		e.errs.Add(1)
		e.log.Warn("mqtt: publishing offline status timed out")
	case tok.Error() != nil:
		e.errs.Add(1)
		e.log.Warn("mqtt: publishing offline status failed", "err", tok.Error())
	default:
		e.published.Add(1)
	}
	c.Disconnect(250)
	e.log.Info("mqtt disconnected", "broker", e.s.broker)
}

func (e *Exporter) clientOptions() *mqtt.ClientOptions {
	o := mqtt.NewClientOptions().
		AddBroker(e.s.broker).
		SetClientID(e.s.ClientID).
		SetProtocolVersion(4).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetResumeSubs(false).
		SetKeepAlive(e.keepAlive).
		SetPingTimeout(10*time.Second).
		SetConnectTimeout(e.connectTimeout).
		SetWriteTimeout(e.publishTimeout).
		SetOrderMatters(true).
		SetCustomOpenConnectionFn(e.openConnection).
		SetWill(e.t.status, statusOffline, statusQoS, true).
		SetOnConnectHandler(e.onConnect).
		SetConnectionLostHandler(func(c mqtt.Client, err error) {
			select {
			case e.lost <- lostEvent{c, err}:
			default:
			}
		})
	if e.s.User != "" {
		o.SetUsername(e.s.User)
		o.SetPassword(e.s.password)
	}
	if e.s.tls != nil {
		o.SetTLSConfig(e.s.tls.Clone())
	}
	return o
}

// onConnect runs in a goroutine of paho's after every connect: it
// subscribes (a clean session forgets subscriptions), says "online" and
// queues the Home Assistant discovery config for the sender. It must not
// wait; the tokens go to the watcher.
func (e *Exporter) onConnect(c mqtt.Client) {
	sub := c.SubscribeMultiple(map[string]byte{e.t.request: e.s.QoS, e.t.broadcast: e.s.QoS}, e.onRequest)
	select {
	case <-e.subscribed: // an earlier connection's, never taken
	default:
	}
	select {
	case e.subscribed <- subscription{c, sub}:
	default:
	}
	tokens := []check{
		{tok: sub, what: "subscribe " + e.t.request + ", " + e.t.broadcast},
		{tok: c.Publish(e.t.status, statusQoS, true, statusOnline), what: "publish " + e.t.status, publish: true},
	}
	if e.s.HomeAssistant {
		tokens = append(tokens, check{tok: c.Subscribe(e.haStatus, e.s.QoS, e.onHAStatus),
			what: "subscribe " + e.haStatus})
		e.out.put(&job{kind: jobDiscovery})
	}
	for _, ch := range tokens {
		select {
		case e.checks <- ch:
		default:
		}
	}
}

// subscription is a connection's subscription to the request topics.
type subscription struct {
	c   mqtt.Client
	tok mqtt.Token
}

// awaitSubscribed waits, at most the connect timeout, until the broker
// acknowledged c's subscription to the request topics (or said no: the
// checks log that).
func (e *Exporter) awaitSubscribed(ctx context.Context, c mqtt.Client) {
	timer := time.NewTimer(e.connectTimeout)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
			return
		case s := <-e.subscribed:
			if s.c != c {
				continue // an earlier connection's
			}
			select {
			case <-s.tok.Done():
			case <-ctx.Done():
			case <-timer.C:
			}
			return
		}
	}
}

// onRequest is paho's message handler for polls. It runs on paho's router
// goroutine, so it only checks the size and hands the body on without
// blocking. A body over MaxRequest was cut to MaxRequest+1 bytes by the
// connection (limitedConn) before paho read it.
func (e *Exporter) onRequest(_ mqtt.Client, m mqtt.Message) {
	e.requests.Add(1)
	if len(m.Payload()) > MaxRequest || m.Retained() {
		// A retained poll is not a live request: it would fire on
		// every reconnect.
		e.rejected.Add(1)
		e.dropped.Add(1)
		return
	}
	select {
	case e.reqs <- inbound{topic: m.Topic(), body: bytes.Clone(m.Payload())}:
	default:
		e.coalesced.Add(1)
		e.dropped.Add(1)
	}
}

// onHAStatus is paho's message handler for Home Assistant's status topic:
// its birth message ("online", not retained: a retained one only tells
// what was, and comes at every subscribe) queues the discovery config
// again, for a Home Assistant whose broker lost the retained one. It runs
// on paho's router goroutine and does not block.
func (e *Exporter) onHAStatus(_ mqtt.Client, m mqtt.Message) {
	if m.Retained() || string(m.Payload()) != statusOnline {
		return
	}
	now := time.Now().UnixNano()
	last := e.haLastBirth.Load()
	if now-last < int64(e.haEvery) || !e.haLastBirth.CompareAndSwap(last, now) {
		return
	}
	e.out.put(&job{kind: jobDiscovery})
}

// watch waits on the tokens made in onConnect and counts their outcome.
// At shutdown, while the connection is still open, it gives the pending
// ones a second in all to complete.
func (e *Exporter) watch(ctx context.Context) {
	var deadline time.Time
	settle := func(ch check) {
		if deadline.IsZero() {
			deadline = time.Now().Add(time.Second)
		}
		waitDone(ch.tok, time.Until(deadline))
		select {
		case <-ch.tok.Done():
			e.record(ch, ch.tok.Error())
		default:
		}
	}
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case ch := <-e.checks:
					settle(ch)
				default:
					return
				}
			}
		case ch := <-e.checks:
			if err := e.await(ctx, ch.tok, e.publishTimeout); ctx.Err() == nil {
				e.record(ch, err)
			} else {
				settle(ch)
			}
		}
	}
}

func (e *Exporter) record(ch check, err error) {
	if err == nil {
		if st, ok := ch.tok.(*mqtt.SubscribeToken); ok {
			for topic, code := range st.Result() {
				if code >= 0x80 {
					err = fmt.Errorf("broker refused the subscription to %s", topic)
				}
			}
		}
	}
	switch {
	case err != nil:
		e.errs.Add(1)
		e.log.Warn("mqtt "+ch.what+" failed", "err", err)
	case ch.publish:
		e.published.Add(1)
	}
}

// sendLoop publishes the outbox while a connection is up. Publishes wait on
// pub, which outlives ctx by a grace period: once ctx is done, sendLoop
// flushes the ended records and returns.
//
// A job whose publishing failed goes back to the outbox and is tried again
// on the next connection, or on the same one after retryPause if it is
// still up (a broker that was slow to answer): never at once on the
// connection that just failed, which paho may not have reported lost yet.
func (e *Exporter) sendLoop(ctx, pub context.Context, queued <-chan struct{}) {
	var (
		failedOn *clientRef // the connection of the last failure
		retryT   = time.NewTimer(time.Hour)
		retryC   <-chan time.Time
	)
	retryT.Stop()
	defer retryT.Stop()
	for ctx.Err() == nil {
		if c := e.client.Load(); c != nil && c != failedOn {
			if j := e.out.next(); j != nil {
				if err := e.publish(pub, c.Client, j); err != nil {
					e.retryLater(pub, j, err)
					failedOn = c
					retryT.Reset(e.retryPause)
					retryC = retryT.C
				} else if j.kind == jobDiscovery {
					e.haMigrated = true
				}
				continue
			}
		}
		select {
		case <-ctx.Done():
		case <-e.out.notify:
		case <-e.connUp:
		case <-retryC:
			retryC, failedOn = nil, nil
		}
	}
	e.flush(pub, queued)
}

// retryLater puts j back after a failed publish, or drops it (counted and
// logged) once it failed maxTries times or the grace period at shutdown is
// over. An ended batch holds only the records not yet acknowledged.
func (e *Exporter) retryLater(pub context.Context, j *job, failed error) {
	if pub.Err() != nil {
		e.lose(j, "publishing stopped at shutdown", failed)
		return
	}
	e.errs.Add(1)
	j.tries++
	if j.tries < maxTries(j) && e.out.requeue(j) {
		e.log.Warn("mqtt publish failed, will retry", "err", failed, "records", len(j.ended))
		return
	}
	if j.kind == jobEnded {
		e.lose(j, fmt.Sprintf("publish failed %d times", j.tries), failed)
		return
	}
	// A snapshot, reply or live document replaced by a newer one, or
	// failed thrice.
	e.dropped.Add(1)
	e.log.Warn("mqtt publish failed, dropped", "err", failed)
}

// lose counts j as dropped and logs why.
func (e *Exporter) lose(j *job, why string, err error) {
	if j.kind == jobEnded {
		e.losses().endedRecords(len(j.ended))
		e.log.Warn("mqtt: ended records dropped: "+why, "records", len(j.ended), "err", err)
		return
	}
	e.dropped.Add(1)
	what := "snapshot"
	switch j.kind {
	case jobDiscovery:
		what = "Home Assistant discovery"
	case jobLive:
		what = "live document"
	}
	e.log.Warn("mqtt: "+what+" dropped: "+why, "err", err)
}

func (e *Exporter) losses() lossCounters {
	return lossCounters{dropped: &e.dropped, ended: &e.endedLost, full: &e.endedFull}
}

// maxTries bounds how often a job is published and fails: an ended batch
// that fails that often on connections that work for the rest (one the
// broker refuses, say) must not block the records behind it for ever.
// Failures because the connection was lost count too: a broker that drops
// a client for what it published looks like that.
func maxTries(j *job) int {
	if j.kind == jobEnded {
		return 5
	}
	return 3
}

// flush runs at shutdown. Once schedule has queued its last batch, it
// publishes the ended records still queued while the connection is up and
// pub lasts; snapshots and replies are left. Records it cannot send are
// counted as dropped; it never waits for a connection.
func (e *Exporter) flush(pub context.Context, queued <-chan struct{}) {
	select {
	case <-queued:
	case <-pub.Done():
	}
	var lost int
	var why error
	for {
		j := e.out.nextEnded()
		if j == nil {
			break
		}
		c := e.client.Load()
		if why != nil || c == nil || !c.IsConnectionOpen() || pub.Err() != nil {
			lost += len(j.ended)
			continue
		}
		if why = e.publish(pub, c.Client, j); why != nil {
			e.errs.Add(1)
			lost += len(j.ended) // what was not acknowledged
		}
	}
	if lost > 0 {
		e.losses().endedRecords(lost)
		e.log.Warn("mqtt: ended records dropped at shutdown: not connected or out of time", "records", lost, "err", why)
	}
}

// message is one MQTT publish.
type message struct {
	topic    string
	payload  []byte
	retained bool
	qos      byte
}

// outgoing are the messages of a job, made one at a time as they are
// published: a snapshot's parts are encoded when their turn comes, so
// that only the few in flight are held.
type outgoing struct {
	n    int
	make func(i int) (message, error)
	// records are, for an ended batch, the records [from, to) of the
	// job's batch in each message.
	records [][2]int
}

// inFlight is how many of a job's messages may await the broker at once.
const inFlight = 4

// publish sends the messages of j on c and waits for the broker to
// acknowledge them. It returns the first failure; an ended batch then
// keeps only the records of the messages not acknowledged. Ended batches
// queued meanwhile go out between the parts of a snapshot, so that a big
// snapshot never holds them back.
func (e *Exporter) publish(ctx context.Context, c mqtt.Client, j *job) error {
	out, err := e.messages(j)
	if err != nil {
		e.encodingFailed(j, err)
		return nil
	}
	type sent struct {
		i     int
		topic string
		tok   mqtt.Token
	}
	var (
		pending []sent
		failed  error
		acked   = make([]bool, out.n)
	)
	await := func(s sent) {
		if err := e.await(ctx, s.tok, e.publishTimeout); err != nil {
			if failed == nil {
				failed = fmt.Errorf("%s: %w", s.topic, err)
			}
			return
		}
		acked[s.i] = true
		e.published.Add(1)
	}
	for i := range out.n {
		if err := ctx.Err(); err != nil {
			failed = err // shutdown: the rest is not even made
			break
		}
		if j.kind != jobEnded && i > 0 {
			if failed = e.publishEnded(ctx, c); failed != nil {
				break
			}
		}
		m, err := out.make(i)
		if err != nil {
			// Not seen in practice (the flows are appended from
			// records): the parts already sent stay, the job is dropped.
			e.encodingFailed(j, err)
			return nil
		}
		pending = append(pending, sent{i, m.topic, c.Publish(m.topic, m.qos, m.retained, m.payload)})
		if len(pending) == inFlight {
			await(pending[0])
			pending = pending[1:]
		}
	}
	for _, s := range pending {
		await(s)
	}
	if failed != nil && out.records != nil {
		var left []conntrack.Ended
		for i, r := range out.records {
			if !acked[i] {
				left = append(left, j.ended[r[0]:r[1]]...)
			}
		}
		j.ended = left
	}
	return failed
}

// publishEnded publishes the ended batches queued, between the parts of a
// snapshot. A batch that fails goes back (or is dropped) as in sendLoop,
// and the failure ends the snapshot's publishing too.
func (e *Exporter) publishEnded(ctx context.Context, c mqtt.Client) error {
	for {
		j := e.out.nextEnded()
		if j == nil {
			return nil
		}
		if err := e.publish(ctx, c, j); err != nil {
			e.retryLater(ctx, j, err)
			return err
		}
	}
}

func (e *Exporter) encodingFailed(j *job, err error) {
	e.errs.Add(1)
	e.lose(j, "encoding failed", err)
}

// messages plans the messages of a job.
func (e *Exporter) messages(j *job) (outgoing, error) {
	switch j.kind {
	case jobSnapshot, jobReply, jobLive:
		d := e.document(j)
		p, err := e.enc.plan(d)
		if err != nil {
			return outgoing{}, err
		}
		if p.oversize {
			e.log.Warn("mqtt: a snapshot part is larger than the payload limit; published anyway",
				"limit", e.s.MaxPayload)
		}
		n := len(p.groups)
		if j.kind == jobSnapshot {
			n++ // the retained state, last
		}
		topic := e.t.snapshot
		if j.kind == jobLive {
			topic = e.t.live // never the snapshot topic: periodic subscribers see no change
		}
		return outgoing{n: n, make: func(i int) (message, error) {
			if i == len(p.groups) {
				b, err := json.Marshal(stateOf(&d.Document, j.traffic))
				return message{topic: e.t.state, payload: b, retained: true, qos: e.s.QoS}, err
			}
			b, err := e.enc.part(d, &p, i)
			return message{topic: topic, payload: b, qos: e.s.QoS}, err
		}}, nil
	case jobEnded:
		bodies, ranges, oversize, err := e.enc.records(report.BuildEnded(j.ended, e.s.Names))
		if err != nil {
			return outgoing{}, err
		}
		if oversize {
			e.log.Warn("mqtt: an ended record is larger than the payload limit; published anyway",
				"limit", e.s.MaxPayload)
		}
		return outgoing{n: len(bodies), records: ranges, make: func(i int) (message, error) {
			return message{topic: e.t.ended, payload: bodies[i], qos: e.s.QoS}, nil
		}}, nil
	case jobDiscovery:
		msgs := e.discoveryMessages()
		return outgoing{n: len(msgs), make: func(i int) (message, error) { return msgs[i], nil }}, nil
	}
	return outgoing{}, nil
}

// discoveryMessages are the Home Assistant discovery config and, until
// they were handed over once, what moves the entities of the per-entity
// topics of earlier versions into it, in Home Assistant's order:
// {"migrate_discovery": true} on each old topic, the device config, then
// an empty payload on each old topic. All retained, at QoS 1 whatever
// --mqtt-qos says, so that the broker passes them on in this order.
//
// The hand-over is made at every start rather than only when an old
// config is seen: nothing tells how long to wait for the broker's
// retained messages before concluding there are none, and a device
// config published before the hand-over would clash with the old
// entities (same unique ids). Home Assistant migrates only the entities it
// has on those topics, so the hand-over changes nothing the second time.
func (e *Exporter) discoveryMessages() []message {
	tableInterval := time.Duration(0)
	if snap := e.s.Latest(); snap != nil {
		tableInterval = snap.Interval
	}
	device := message{topic: e.haTopic, retained: true, qos: statusQoS,
		payload: haDiscovery(e.t, e.s.Node, e.s.Version, e.s.QoS, haExpireAfter(e.s.Interval, tableInterval))}
	if e.haMigrated {
		return []message{device}
	}
	msgs := make([]message, 0, 2*len(e.haLegacy)+1)
	for _, topic := range e.haLegacy {
		msgs = append(msgs, message{topic: topic, payload: []byte(haMigratePayload), retained: true, qos: statusQoS})
	}
	msgs = append(msgs, device)
	for _, topic := range e.haLegacy {
		msgs = append(msgs, message{topic: topic, payload: []byte{}, retained: true, qos: statusQoS})
	}
	return msgs
}

// document prepares the snapshot document of a periodic snapshot (the
// zero request), of a reply, or of a live document (the leases' limit and
// order, no request_id).
func (e *Exporter) document(j *job) *report.Prepared {
	r, limit, sort := j.req, e.s.Limit, report.SortRate
	if r.Limit > 0 {
		limit = r.Limit
	}
	if j.kind == jobLive {
		limit, sort = j.live.limit, j.live.sort
	}
	d := report.Prepare(filterFlows(j.snap, r.Filter, e.s.Names), report.Options{
		Host:  e.s.Host,
		Netns: e.s.Netns,
		Sort:  sort,
		Limit: limit,
		Names: e.s.Names,
	})
	d.RequestID = r.ID
	d.PublishIntervalS = e.s.Interval.Seconds()
	e.addHealth(&d.Health)
	return d
}

// addHealth completes a document's health with what the snapshot does
// not hold, through the Env's hook: every exporter's counters and the
// lookups' work, as flowtop's own documents (--once, --write) carry them.
// Its own entry is there in any case.
func (e *Exporter) addHealth(h *report.Health) {
	if e.s.Env.Health != nil {
		e.s.Env.Health(h)
	}
	if _, ok := h.Exporters[e.Name()]; !ok {
		if h.Exporters == nil {
			h.Exporters = map[string]report.ExporterHealth{}
		}
		h.Exporters[e.Name()] = e.Health()
	}
}

// await waits for tok, at most d, and not past ctx. It is paho's
// WaitTimeout that also gives way to shutdown.
func (e *Exporter) await(ctx context.Context, tok mqtt.Token, d time.Duration) error {
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

func waitDone(tok mqtt.Token, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-tok.Done():
	case <-t.C:
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

// jitter spreads d by ±20% so a fleet does not reconnect in step.
func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

func notify(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}
