package remote

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/flowtop/flowtop/mqttexport"
	"github.com/flowtop/flowtop/report"
)

// DefaultOnceTimeout is how long FetchOnce waits for an answer by default.
const DefaultOnceTimeout = 5 * time.Second

// FetchOnce asks node for its current document (with Config.Limit and
// Config.Filter) and returns it as one JSON document: the parts of a
// split answer joined, a gzip answer inflated; the bytes of flowtop
// --once on that router. It fails with "node X did not answer within
// 5s" when no answer came within timeout (default 5 s), and at once when
// the node's retained status says it is offline.
func FetchOnce(ctx context.Context, cfg Config, node string, timeout time.Duration) ([]byte, error) {
	s, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	if err := CheckNode(node); err != nil {
		return nil, fmt.Errorf("remote: node %q: not a node name: %w", oneLine(node, 40), err)
	}
	if timeout <= 0 {
		timeout = DefaultOnceTimeout
	}
	var r [6]byte
	rand.Read(r[:])
	id := "once-" + hex.EncodeToString(r[:])

	in := &onceInbox{msgs: make(chan inbound, 1024), max: s.MaxMessage}
	mc, err := dialOnce(ctx, s, id, in)
	if err != nil {
		return nil, err
	}
	defer mc.Disconnect(250)
	if err := askOnce(ctx, mc, s, node, id); err != nil {
		return nil, err
	}
	return in.collect(ctx, &answer{node: node, id: id, max: s.MaxMessage}, timeout)
}

// onceInbox holds the messages of FetchOnce's connection, from paho's
// handler to collect.
type onceInbox struct {
	msgs    chan inbound
	dropped atomic.Bool // a message found msgs full
	max     int         // the largest body kept
	cuts    cutSizes    // the real sizes of the bodies cut at max
}

// handle is paho's handler for every message: it must not block.
func (in *onceInbox) handle(_ mqtt.Client, m mqtt.Message) {
	msg := inbound{topic: m.Topic(), body: m.Payload(), size: len(m.Payload())}
	if msg.size > in.max {
		msg.body, msg.over, msg.size = nil, true, in.cuts.pop(msg.size)
	}
	select {
	case in.msgs <- msg:
	default:
		in.dropped.Store(true)
	}
}

// dialOnce connects to the broker for FetchOnce request id, its messages
// going to in.
func dialOnce(ctx context.Context, s *settings, id string, in *onceInbox) (mqtt.Client, error) {
	o := (&Client{s: s, connectTimeout: 10 * time.Second, keepAlive: 30 * time.Second}).clientOptions(make(chan error, 1))
	o.SetDefaultPublishHandler(in.handle)
	// A message over the cap is cut at the connection, as the Client's:
	// only its first MaxMessage+1 bytes are held.
	o.SetCustomOpenConnectionFn(cappedConnection(s.MaxMessage, &in.cuts))
	// Its own client id: a viewer with the same id may be running.
	o.SetClientID(s.ClientID + "-" + id)
	mc := mqtt.NewClient(o)
	if err := await(ctx, mc.Connect(), 15*time.Second); err != nil {
		mc.Disconnect(0)
		return nil, fmt.Errorf("connect to %s: %w", s.broker, mqttexport.NetworkCause(err))
	}
	return mc, nil
}

// askOnce subscribes to node's snapshots and status, then sends it
// request id.
func askOnce(ctx context.Context, mc mqtt.Client, s *settings, node, id string) error {
	base := s.Topic + "/" + node
	sub := mc.SubscribeMultiple(map[string]byte{base + "/snapshot": s.QoS, base + "/snapshot/gz": s.QoS, base + "/status": s.QoS}, nil)
	if err := await(ctx, sub, 10*time.Second); err != nil {
		return fmt.Errorf("subscribe on %s: %w", s.broker, err)
	}
	req, _ := json.Marshal(struct {
		ID     string `json:"id"`
		Limit  int    `json:"limit,omitempty"`
		Filter string `json:"filter,omitempty"`
	}{id, s.Limit, s.Filter})
	if err := await(ctx, mc.Publish(base+"/request", s.QoS, false, req), 10*time.Second); err != nil {
		return fmt.Errorf("request to %s: %w", base+"/request", err)
	}
	return nil
}

// collect reads messages until a is whole, at most timeout.
func (in *onceInbox) collect(ctx context.Context, a *answer, timeout time.Duration) ([]byte, error) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-timer.C:
			return nil, a.missing(timeout, in.dropped.Load())
		case m := <-in.msgs:
			if doc, done, err := a.take(m); done || err != nil {
				return doc, err
			}
		}
	}
}

// answer is the answer to request id of node, as its messages arrive:
// one document, or its parts.
type answer struct {
	node, id string
	max      int      // the largest body, inflated
	parts    [][]byte // by part number - 1
	got      int      // parts not nil
}

// take reads one message of the node's topics; done is set once the
// answer is whole (doc) or can no longer be (err).
func (a *answer) take(m inbound) (doc []byte, done bool, err error) {
	body, skip, err := a.open(m)
	if skip || err != nil {
		return nil, err != nil, err
	}
	h, err := peekHeader(body)
	if err != nil {
		if errors.Is(err, errForeign) {
			return nil, false, nil
		}
		return nil, true, fmt.Errorf("node %s: %w", a.node, err)
	}
	if h.RequestID != a.id {
		return nil, false, nil // a periodic snapshot, or someone else's answer
	}
	if h.Parts == 0 {
		return withNewline(body), true, nil
	}
	return a.add(h, body)
}

// open returns the document a message carries; skip is set for a status
// other than offline.
func (a *answer) open(m inbound) (body []byte, skip bool, err error) {
	switch {
	case strings.HasSuffix(m.topic, "/status"):
		if string(m.body) == "offline" {
			return nil, false, fmt.Errorf("node %s is offline (its status says so)", a.node)
		}
		return nil, true, nil
	case m.over:
		return nil, false, fmt.Errorf("node %s: answer of %s over the %s limit", a.node, sizeString(m.size), sizeString(a.max))
	}
	body = m.body
	if strings.HasSuffix(m.topic, "/gz") {
		if body, err = gunzip(body, a.max); err != nil {
			return nil, false, fmt.Errorf("node %s: %w", a.node, err)
		}
	}
	return body, false, nil
}

// add keeps a part (the first copy of each); done once every part came.
func (a *answer) add(h header, body []byte) (doc []byte, done bool, err error) {
	if a.parts == nil {
		a.parts = make([][]byte, h.Parts)
	}
	if len(a.parts) != h.Parts || h.Part < 1 || h.Part > h.Parts {
		return nil, true, fmt.Errorf("node %s: part %d of %d in an answer of %d parts", a.node, h.Part, h.Parts, len(a.parts))
	}
	if a.parts[h.Part-1] == nil {
		a.parts[h.Part-1] = body
		a.got++
	}
	if a.got < len(a.parts) {
		return nil, false, nil
	}
	doc, err = joinParts(a.parts)
	return doc, true, err
}

// missing is the error of an answer not whole by the timeout; dropped
// tells that a message was lost on the way.
func (a *answer) missing(timeout time.Duration, dropped bool) error {
	if a.got > 0 {
		return fmt.Errorf("node %s: %d of %d parts arrived within %v", a.node, a.got, len(a.parts), timeout)
	}
	if dropped {
		return fmt.Errorf("node %s: answer lost (too many messages at once)", a.node)
	}
	return fmt.Errorf("node %s did not answer within %v", a.node, timeout)
}

// errForeign marks a message that is no snapshot document at all.
var errForeign = errors.New("not a document")

// peekHeader reads the keys of a document that say which answer it is.
func peekHeader(body []byte) (header, error) {
	var d struct {
		Version   *int   `json:"version"`
		RequestID string `json:"request_id"`
		Part      int    `json:"part"`
		Parts     int    `json:"parts"`
		Flows     skip   `json:"flows"`
	}
	if err := json.Unmarshal(body, &d); err != nil {
		return header{}, jsonError(err)
	}
	if d.Version == nil {
		return header{}, errForeign
	}
	if *d.Version != report.Version {
		return header{}, fmt.Errorf("document version %d, this flowtop reads version %d (update one side)", *d.Version, report.Version)
	}
	if (d.Part != 0 || d.Parts != 0) && (d.Parts < 1 || d.Parts > maxParts || d.Part < 1 || d.Part > d.Parts) {
		return header{}, fmt.Errorf("part %d of %d: want 1 <= part <= parts <= %d", d.Part, d.Parts, maxParts)
	}
	return header{RequestID: d.RequestID, Part: d.Part, Parts: d.Parts}, nil
}

// skip reads any JSON value and keeps nothing.
type skip struct{}

func (skip) UnmarshalJSON([]byte) error { return nil }

// joinParts makes one document of the parts of one (in part order): the
// first part's keys in their order, without part and parts, with the
// flows of every part. Every part carries the whole totals and health.
func joinParts(parts [][]byte) ([]byte, error) {
	var out bytes.Buffer
	var flows [][]byte
	var head []rawField
	for i, p := range parts {
		fields, err := rawFields(p)
		if err != nil {
			return nil, fmt.Errorf("part %d: %w", i+1, err)
		}
		for _, f := range fields {
			if f.key == "flows" {
				if inner := bytes.TrimSpace(f.val); len(inner) > 2 {
					flows = append(flows, inner[1:len(inner)-1]) // without [ ]
				}
			}
		}
		if i == 0 {
			head = fields
		}
	}
	out.WriteByte('{')
	first := true
	for _, f := range head {
		if f.key == "part" || f.key == "parts" {
			continue
		}
		if !first {
			out.WriteByte(',')
		}
		first = false
		k, _ := json.Marshal(f.key)
		out.Write(k)
		out.WriteByte(':')
		if f.key != "flows" {
			out.Write(f.val)
			continue
		}
		out.WriteByte('[')
		for j, fl := range flows {
			if j > 0 {
				out.WriteByte(',')
			}
			out.Write(fl)
		}
		out.WriteByte(']')
	}
	out.WriteString("}\n")
	return out.Bytes(), nil
}

type rawField struct {
	key string
	val json.RawMessage
}

// rawFields returns the keys and values of a JSON object, in order.
func rawFields(doc []byte) ([]rawField, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	var fields []rawField
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, jsonError(err)
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, jsonError(err)
		}
		fields = append(fields, rawField{key, v})
	}
	return fields, nil
}

func withNewline(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return append(b, '\n')
	}
	return b
}

// FetchNodes returns the nodes under the prefix: their retained statuses
// and state summaries, and whatever documents arrive within wait (a
// router publishes every --mqtt-interval). It fails when the broker
// cannot be reached or refuses the login.
func FetchNodes(ctx context.Context, cfg Config, wait time.Duration) ([]NodeInfo, error) {
	c, err := Open(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	select {
	case err := <-c.first:
		if err != nil {
			return nil, err
		}
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if !sleep(ctx, wait) {
		return nil, ctx.Err()
	}
	if err := c.sync(ctx); err != nil {
		return nil, err
	}
	return c.Nodes(), nil
}
