package mqttexport

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/google/go-cmp/cmp"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/export"
	"github.com/flowtop/flowtop/traffic"
)

// wantDevice is the device config of node Router.Lan under topic prefix
// flowtop, version 1.2.3, at QoS 1, with sensors that expire after 60 s.
const wantDevice = `{
  "dev": {"ids": ["flowtop_router_lan"], "name": "flowtop Router.Lan", "mf": "flowtop",
          "mdl": "flowtop conntrack exporter", "sw": "1.2.3"},
  "o": {"name": "flowtop", "sw": "1.2.3", "url": "https://github.com/flowtop/flowtop"},
  "availability": [{"topic": "flowtop/Router.Lan/status", "payload_available": "online",
                    "payload_not_available": "offline"}],
  "state_topic": "flowtop/Router.Lan/state",
  "qos": 1,
  "cmps": {
    "download": {"p": "sensor", "name": "Download rate", "unique_id": "flowtop_router_lan_download",
      "default_entity_id": "sensor.flowtop_router_lan_download", "device_class": "data_rate",
      "unit_of_measurement": "B/s", "state_class": "measurement", "icon": "mdi:download-network",
      "value_template": "{{ value_json.rx_bytes_per_s | round(0) }}", "expire_after": 60},
    "upload": {"p": "sensor", "name": "Upload rate", "unique_id": "flowtop_router_lan_upload",
      "default_entity_id": "sensor.flowtop_router_lan_upload", "device_class": "data_rate",
      "unit_of_measurement": "B/s", "state_class": "measurement", "icon": "mdi:upload-network",
      "value_template": "{{ value_json.tx_bytes_per_s | round(0) }}", "expire_after": 60},
    "downloaded": {"p": "sensor", "name": "Downloaded", "unique_id": "flowtop_router_lan_downloaded",
      "default_entity_id": "sensor.flowtop_router_lan_downloaded", "device_class": "data_size",
      "unit_of_measurement": "B", "state_class": "total_increasing", "icon": "mdi:download",
      "value_template": "{{ value_json.rx_bytes_total }}", "expire_after": 60},
    "uploaded": {"p": "sensor", "name": "Uploaded", "unique_id": "flowtop_router_lan_uploaded",
      "default_entity_id": "sensor.flowtop_router_lan_uploaded", "device_class": "data_size",
      "unit_of_measurement": "B", "state_class": "total_increasing", "icon": "mdi:upload",
      "value_template": "{{ value_json.tx_bytes_total }}", "expire_after": 60},
    "flows": {"p": "sensor", "name": "Active flows", "unique_id": "flowtop_router_lan_flows",
      "default_entity_id": "sensor.flowtop_router_lan_flows", "state_class": "measurement",
      "icon": "mdi:lan-connect", "value_template": "{{ value_json.flows }}", "expire_after": 60},
    "overruns": {"p": "sensor", "name": "Event overruns", "unique_id": "flowtop_router_lan_overruns",
      "default_entity_id": "sensor.flowtop_router_lan_overruns", "state_class": "total_increasing",
      "entity_category": "diagnostic", "icon": "mdi:alert-circle-outline",
      "value_template": "{{ value_json.overruns }}", "expire_after": 60},
    "top_hosts": {"p": "sensor", "name": "Top hosts", "unique_id": "flowtop_router_lan_top_hosts",
      "default_entity_id": "sensor.flowtop_router_lan_top_hosts", "icon": "mdi:format-list-numbered",
      "value_template": "{{ value_json.top_hosts[0].host if value_json.top_hosts else 'none' }}",
      "json_attributes_topic": "flowtop/Router.Lan/state",
      "json_attributes_template": "{{ {'hosts': value_json.top_hosts} | tojson }}", "expire_after": 60}
  }
}`

// The per-entity config topics of earlier versions, for node Router.Lan.
var legacyTopics = []string{
	"homeassistant/sensor/router_lan_download/config",
	"homeassistant/sensor/router_lan_upload/config",
	"homeassistant/sensor/router_lan_flows/config",
}

const deviceTopic = "homeassistant/device/flowtop_router_lan/config"

func decodeJSON(t testing.TB, what string, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%s: %v: %.300s", what, err, b)
	}
	return m
}

// keysNamed lists the paths of the keys called name, at any depth.
func keysNamed(v any, name, path string) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if k == name {
				out = append(out, path+"."+k)
			}
			out = append(out, keysNamed(x, name, path+"."+k)...)
		}
	case []any:
		for i, x := range v {
			out = append(out, keysNamed(x, name, fmt.Sprintf("%s[%d]", path, i))...)
		}
	}
	return out
}

func haHarness(t *testing.T, b *broker, mod func(*harnessConfig)) *harness {
	return newHarness(t, b, func(c *harnessConfig) {
		c.HomeAssistant = true
		c.Node = "Router.Lan"
		c.Version = "1.2.3"
		c.Interval = 200 * time.Millisecond
		if mod != nil {
			mod(c)
		}
	})
}

// TestHomeAssistantDiscovery: one retained device config, exactly as Home
// Assistant 2024.11+ reads it (device, origin, availability, the seven
// sensors with their classes and units, default_entity_id and never the
// deprecated object_id, expire_after); the per-entity topics of earlier
// versions are left empty.
func TestHomeAssistantDiscovery(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	h := haHarness(t, b, nil)
	s := subscribe(t, b, nil, "homeassistant/#")
	h.run(t)
	s.next(t, patience, onTopic(deviceTopic))
	s.next(t, patience, isPayload(legacyTopics[len(legacyTopics)-1], "")) // the hand-over's last message
	// As a Home Assistant that starts later finds it: retained.
	late := subscribe(t, b, nil, "homeassistant/#")
	m := late.next(t, patience, onTopic(deviceTopic))
	if !m.retained {
		t.Errorf("device config not retained")
	}
	got := decodeJSON(t, "device config", m.payload)
	want := decodeJSON(t, "wantDevice", []byte(wantDevice))
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("device config (-want +got):\n%s", diff)
	}
	if keys := keysNamed(got, "object_id", ""); len(keys) > 0 {
		t.Errorf("deprecated object_id at %v", keys)
	}
	// Only the device config is left: what the broker keeps under the
	// prefix is all sent at subscribe, before a message published after.
	s.publish(t, "homeassistant/zz-barrier", false, "x")
	for {
		m := late.next(t, patience, nil)
		if m.topic == "homeassistant/zz-barrier" {
			break
		}
		if m.retained && m.topic != deviceTopic {
			t.Errorf("retained %s = %.100q left behind", m.topic, m.payload)
		}
	}
}

// TestHomeAssistantExpireAfter: three periods of the state, the table's
// when it is the longer, at least a minute.
func TestHomeAssistantExpireAfter(t *testing.T) {
	for _, tc := range []struct {
		interval, table time.Duration
		want            int
	}{
		{200 * time.Millisecond, time.Second, 60},
		{60 * time.Second, 2 * time.Second, 180},
		{30 * time.Second, 50 * time.Second, 150},
		{90500 * time.Millisecond, 0, 272},
	} {
		if got := haExpireAfter(tc.interval, tc.table); got != tc.want {
			t.Errorf("haExpireAfter(%v, %v) = %d, want %d", tc.interval, tc.table, got, tc.want)
		}
	}
}

// TestHomeAssistantMigration: the retained per-entity configs of earlier
// versions are handed over in Home Assistant's order, as a subscriber on
// "#" sees it: {"migrate_discovery": true} on each old topic, then the
// device config, then an empty retained payload on each old topic. A
// reconnect publishes the device config alone; a restart (the next
// flowtop) hands over again, which changes nothing the second time.
func TestHomeAssistantMigration(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	p := startProxy(t, b)
	old := subscribe(t, b, nil)
	for _, topic := range legacyTopics {
		old.publish(t, topic, true, `{"name":"Download rate","unique_id":"flowtop_router_lan_x"}`)
	}
	s := subscribe(t, b, nil, "#")
	isHA := func(m received) bool { return strings.HasPrefix(m.topic, "homeassistant/") && !m.retained }

	// seq names the next n messages under homeassistant/ published live.
	seq := func(n int) []string {
		t.Helper()
		var out []string
		for range n {
			m := s.next(t, patience, isHA)
			switch {
			case m.topic == deviceTopic && len(m.payload) > 0 && strings.Contains(string(m.payload), `"cmps"`):
				out = append(out, "device")
			case string(m.payload) == `{"migrate_discovery":true}`:
				out = append(out, "migrate "+m.topic)
			case len(m.payload) == 0:
				out = append(out, "clear "+m.topic)
			default:
				out = append(out, fmt.Sprintf("%s %.60q", m.topic, m.payload))
			}
		}
		return out
	}
	var handover []string
	for _, topic := range legacyTopics {
		handover = append(handover, "migrate "+topic)
	}
	handover = append(handover, "device")
	for _, topic := range legacyTopics {
		handover = append(handover, "clear "+topic)
	}

	h := haHarness(t, b, func(c *harnessConfig) { c.URL = p.url() })
	h.run(t)
	if diff := cmp.Diff(handover, seq(len(handover))); diff != "" {
		t.Fatalf("first start (-want +got):\n%s", diff)
	}
	// The sender publishes one job at a time, the discovery first: a
	// snapshot after it means the broker acknowledged the hand-over.
	// (Cut before, the hand-over is made again, whole.)
	s.next(t, patience, onTopic(h.t.snapshot))

	// A lost connection: the reconnect says online and publishes the
	// device config alone.
	p.cut()
	s.next(t, patience, isPayload(h.t.status, statusOffline))
	s.next(t, patience, isPayload(h.t.status, statusOnline))
	if diff := cmp.Diff([]string{"device"}, seq(1)); diff != "" {
		t.Fatalf("after a reconnect (-want +got):\n%s", diff)
	}
	h.stop(t)

	// The next start hands over again.
	h2 := haHarness(t, b, nil)
	h2.run(t)
	if diff := cmp.Diff(handover, seq(len(handover))); diff != "" {
		t.Fatalf("second start (-want +got):\n%s", diff)
	}
	h2.stop(t)
	// Nothing further was published under the prefix: the barrier is the
	// next message.
	old.publish(t, "homeassistant/zz-barrier", false, "x")
	if m := s.next(t, patience, isHA); m.topic != "homeassistant/zz-barrier" {
		t.Errorf("unexpected %s %.100q after the second hand-over", m.topic, m.payload)
	}
	if st := h2.e.Health(); st.Errors != 0 {
		t.Errorf("second start: %s", statsLine(st))
	}
}

// birthRound publishes payload on Home Assistant's status topic, then
// polls the node. It reports whether the device config on devTopic was
// published again before the answer: a discovery queued before the poll
// goes out before the answer. s subscribes to devTopic and the snapshots.
func birthRound(t *testing.T, h *harness, s *subscriber, statusTopic, devTopic, payload string, retained bool) bool {
	t.Helper()
	id := fmt.Sprintf("b%d", time.Now().UnixNano())
	s.publish(t, statusTopic, retained, payload)
	s.publish(t, h.t.request, false, `{"id":"`+id+`","limit":1}`)
	isAnswer := func(m received) bool {
		return m.topic == h.t.snapshot && strings.Contains(string(m.payload), `"request_id":"`+id+`"`)
	}
	m := s.next(t, patience, func(m received) bool { return m.topic == devTopic && !m.retained || isAnswer(m) })
	if m.topic != devTopic {
		return false
	}
	if !strings.Contains(string(m.payload), `"cmps"`) {
		t.Fatalf("%s: %.100q, want the device config", m.topic, m.payload)
	}
	s.next(t, patience, isAnswer)
	return true
}

// live matches the messages on topic that were published while the
// subscriber was there (not the retained one it found).
func live(topic string) func(received) bool {
	return func(m received) bool { return m.topic == topic && !m.retained }
}

// republished sends births until one gets the device config published
// again: the first may come before the exporter's subscription to the
// status topic is in place.
func republished(t *testing.T, h *harness, s *subscriber, statusTopic, devTopic string) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !birthRound(t, h, s, statusTopic, devTopic, "online", false) {
		if time.Now().After(deadline) {
			t.Fatalf("no device config on %s after births on %s for %v", devTopic, statusTopic, patience)
		}
	}
}

// TestHomeAssistantPrefix: --mqtt-homeassistant-prefix moves the device
// config, the hand-over and the birth topic; nothing goes under
// "homeassistant/".
func TestHomeAssistantPrefix(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	h := haHarness(t, b, func(c *harnessConfig) { c.HomeAssistantPrefix = "/site1/ha/" })
	h.e.haEvery = 0
	all := subscribe(t, b, nil, "#")
	const topic = "site1/ha/device/flowtop_router_lan/config"
	s := subscribe(t, b, nil, topic, h.t.snapshot)
	h.run(t)
	s.next(t, patience, live(topic))
	republished(t, h, s, "site1/ha/status", topic)

	// Everything under the custom prefix, nothing under homeassistant/:
	// the hand-over went to the old topics under the custom prefix.
	all.publish(t, "zz-barrier", false, "x")
	seen := map[string]bool{}
	for {
		m := all.next(t, patience, nil)
		if m.topic == "zz-barrier" {
			break
		}
		if strings.HasPrefix(m.topic, "homeassistant/") {
			t.Errorf("published on %s with a custom prefix", m.topic)
		}
		seen[m.topic] = true
	}
	for _, want := range []string{topic, "site1/ha/sensor/router_lan_download/config", "site1/ha/sensor/router_lan_flows/config"} {
		if !seen[want] {
			t.Errorf("nothing on %s", want)
		}
	}

	for _, bad := range []string{"ha/+", "#"} {
		_, err := New(Config{URL: b.url(), HomeAssistantPrefix: bad}, export.Env{Latest: h.latest})
		if err == nil || !strings.Contains(err.Error(), "wildcard") {
			t.Errorf("prefix %q: err %v, want one about the wildcard", bad, err)
		}
	}
}

// TestHomeAssistantBirth: Home Assistant's birth message ("online" on
// homeassistant/status) gets the device config published again; "offline"
// does not, nor a birth within haEvery of the last one.
func TestHomeAssistantBirth(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	const status = "homeassistant/status"
	t.Run("payloads", func(t *testing.T) {
		h := haHarness(t, b, func(c *harnessConfig) { c.ClientID = "birth-payloads" })
		h.e.haEvery = 0
		s := subscribe(t, b, nil, deviceTopic, h.t.snapshot)
		h.run(t)
		s.next(t, patience, live(deviceTopic))
		republished(t, h, s, status, deviceTopic)
		if birthRound(t, h, s, status, deviceTopic, "offline", false) {
			t.Errorf("offline: the device config was published again")
		}
		if !birthRound(t, h, s, status, deviceTopic, "online", false) {
			t.Errorf("a second birth: the device config was not published again")
		}
		h.stop(t)
	})
	t.Run("haEvery", func(t *testing.T) {
		h := haHarness(t, b, func(c *harnessConfig) { c.ClientID = "birth-every" })
		h.e.haEvery = time.Hour
		s := subscribe(t, b, nil, deviceTopic, h.t.snapshot)
		h.run(t)
		s.next(t, patience, live(deviceTopic))
		republished(t, h, s, status, deviceTopic)
		if birthRound(t, h, s, status, deviceTopic, "online", false) {
			t.Errorf("a birth within haEvery of the last: the device config was published again")
		}
	})
}

// stateOn decodes a state message.
func stateOn(t testing.TB, m received) state {
	t.Helper()
	var st state
	if err := json.Unmarshal(m.payload, &st); err != nil {
		t.Fatalf("state: %v: %.300s", err, m.payload)
	}
	return st
}

// TestStateTotalsSurviveExpiry: rx_bytes_total and tx_bytes_total of the
// state count what the local hosts received and sent since flowtop
// started, and never go down, also when a flow expires: its final bytes
// come from its ended record, and stay counted once the snapshots no
// longer list it.
func TestStateTotalsSurviveExpiry(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	h := newHarness(t, b, func(c *harnessConfig) { c.Interval = 100 * time.Millisecond })
	x := *testSnapshot(1).Flows[0] // 192.168.1.10 to 203.0.113.1
	withX := func(orig, reply uint64) *conntrack.Snapshot {
		s := testSnapshot(0)
		f := x
		f.OrigCount, f.ReplyCount = conntrack.Counter{Bytes: orig, Packets: 1}, conntrack.Counter{Bytes: reply, Packets: 1}
		s.Flows = []*conntrack.Flow{&f}
		return s
	}
	h.snap.Store(withX(1000, 5000)) // the baseline: earlier bytes are not counted
	s := subscribe(t, b, nil, h.t.state)
	h.run(t)

	var last state
	// until reads states until one satisfies done, checking that the
	// totals never go down.
	until := func(what string, done func(state) bool) state {
		t.Helper()
		deadline := time.Now().Add(patience)
		for time.Now().Before(deadline) {
			st := stateOn(t, s.next(t, patience, onTopic(h.t.state)))
			if st.RxBytesTotal < last.RxBytesTotal || st.TxBytesTotal < last.TxBytesTotal {
				t.Fatalf("%s: totals went down from rx %d tx %d to rx %d tx %d", what,
					last.RxBytesTotal, last.TxBytesTotal, st.RxBytesTotal, st.TxBytesTotal)
			}
			last = st
			if done(st) {
				return st
			}
		}
		t.Fatalf("%s: not seen within %v; last state rx %d tx %d flows %d", what, patience,
			last.RxBytesTotal, last.TxBytesTotal, last.Flows)
		return last
	}
	until("a first state", func(state) bool { return true })
	if last.RxBytesTotal != 0 || last.TxBytesTotal != 0 {
		t.Errorf("first state: rx %d tx %d, want 0 0 (the baseline)", last.RxBytesTotal, last.TxBytesTotal)
	}

	h.snap.Store(withX(1500, 9000))
	until("the flow's growth", func(st state) bool { return st.RxBytesTotal == 4000 && st.TxBytesTotal == 500 })

	// The flow ends with 3000 bytes more down and 100 up: its record
	// comes first, then the table's snapshots no longer list it.
	end := withX(1600, 12000).Flows[0]
	h.ended <- conntrack.Ended{Flow: *end, Stop: time.Now()}
	h.snap.Store(testSnapshot(0))
	st := until("the flow's end", func(st state) bool { return st.Flows == 0 })
	if st.RxBytesTotal != 7000 || st.TxBytesTotal != 600 {
		t.Errorf("after the flow expired: rx %d tx %d, want 7000 600", st.RxBytesTotal, st.TxBytesTotal)
	}
	// And it stays so.
	for range 3 {
		until("later states", func(state) bool { return true })
		if last.RxBytesTotal != 7000 || last.TxBytesTotal != 600 {
			t.Fatalf("later: rx %d tx %d, want 7000 600", last.RxBytesTotal, last.TxBytesTotal)
		}
	}
}

// TestStateTopHosts: top_hosts ranks the local hosts (Config.LocalNets)
// by their current rates, at most five; the existing keys stay.
func TestStateTopHosts(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	// Seven flows from 192.168.1.10 .. .16, the first the busiest; .16 is
	// outside the local net.
	h := newHarness(t, b, func(c *harnessConfig) {
		c.Interval = 100 * time.Millisecond
		c.LocalNets = []netip.Prefix{netip.MustParsePrefix("192.168.1.8/29")}
	})
	snap := testSnapshot(7)
	snap.Flows[6].OrigRate.Bytes, snap.Flows[6].ReplyRate.Bytes = 1e9, 1e9
	h.snap.Store(snap)
	s := subscribe(t, b, nil, h.t.state)
	h.run(t)
	m := s.next(t, patience, onTopic(h.t.state))
	want := []topHost{
		{"192.168.1.10", 7000, 700, 1},
		{"192.168.1.11", 6000, 600, 1},
		{"192.168.1.12", 5000, 500, 1},
		{"192.168.1.13", 4000, 400, 1},
		{"192.168.1.14", 3000, 300, 1},
	}
	st := stateOn(t, m)
	if diff := cmp.Diff(want, st.TopHosts); diff != "" {
		t.Errorf("top_hosts (-want +got):\n%s", diff)
	}
	raw := decodeJSON(t, "state", m.payload)
	for _, k := range []string{"time", "rx_bytes_per_s", "tx_bytes_per_s", "flows", "table_flows", "orig_bytes",
		"reply_bytes", "rx_bytes_total", "tx_bytes_total", "overruns", "top_hosts"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("state has no %q: %.300s", k, m.payload)
		}
	}

	// No flow: an empty list, not null.
	h.snap.Store(testSnapshot(0))
	m = s.next(t, patience, func(m received) bool { return m.topic == h.t.state && stateOn(t, m).Flows == 0 })
	if !strings.Contains(string(m.payload), `"top_hosts":[]`) {
		t.Errorf("state without flows: %.300s", m.payload)
	}
}

// haMessage is a message on Home Assistant's status topic, as paho hands
// it to the handler.
type haMessage struct {
	mqtt.Message
	payload  string
	retained bool
}

func (m haMessage) Payload() []byte { return []byte(m.payload) }
func (m haMessage) Retained() bool  { return m.retained }

// TestHomeAssistantStatusHandler: a birth queues the discovery; a
// retained "online" (what the broker kept, sent at every subscribe),
// another payload, or a birth within haEvery of the last do not.
func TestHomeAssistantStatusHandler(t *testing.T) {
	e, err := New(Config{URL: "tcp://127.0.0.1:1", HomeAssistant: true}, export.Env{Latest: func() *conntrack.Snapshot { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	queued := func() bool {
		j := e.out.next()
		return j != nil && j.kind == jobDiscovery
	}
	e.haEvery = time.Hour
	for _, m := range []haMessage{{payload: "online", retained: true}, {payload: "offline"}, {payload: ""}} {
		e.onHAStatus(nil, m)
		if queued() {
			t.Errorf("%+v queued the discovery", m)
		}
	}
	e.onHAStatus(nil, haMessage{payload: "online"})
	if !queued() {
		t.Fatal("a birth did not queue the discovery")
	}
	e.onHAStatus(nil, haMessage{payload: "online"})
	if queued() {
		t.Error("a second birth within haEvery queued the discovery")
	}
	e.haLastBirth.Store(time.Now().Add(-time.Hour - time.Second).UnixNano())
	e.onHAStatus(nil, haMessage{payload: "online"})
	if !queued() {
		t.Error("a birth haEvery after the last did not queue the discovery")
	}
}

// TestSnapshotJobCountsWaitingRecords: the ended records waiting when a
// snapshot is queued are counted before it is folded. The table sent the
// record of a flow before its first snapshot without the flow: folded
// first, the snapshot forgets the flow and the record counts all its
// bytes once more.
func TestSnapshotJobCountsWaitingRecords(t *testing.T) {
	e, err := New(Config{URL: "tcp://127.0.0.1:1"}, export.Env{Latest: func() *conntrack.Snapshot { return nil }})
	if err != nil {
		t.Fatal(err)
	}
	x := *testSnapshot(1).Flows[0]
	withX := func(orig, reply uint64) *conntrack.Snapshot {
		s := testSnapshot(0)
		f := x
		f.OrigCount, f.ReplyCount = conntrack.Counter{Bytes: orig, Packets: 1}, conntrack.Counter{Bytes: reply, Packets: 1}
		s.Flows = []*conntrack.Flow{&f}
		return s
	}
	acct := traffic.New(nil, 0)
	acct.Fold(withX(1000, 5000))
	j, batch := e.snapshotJob(acct, nil, nil, withX(1500, 9000))
	if got := j.traffic.totals; got.RxBytes != 4000 || got.TxBytes != 500 || len(batch) != 0 {
		t.Fatalf("growth: totals %+v, batch %d", got, len(batch))
	}

	ended := make(chan conntrack.Ended, 2)
	ended <- conntrack.Ended{Flow: *withX(1600, 12000).Flows[0], Stop: time.Now()}
	j, batch = e.snapshotJob(acct, ended, batch, testSnapshot(0))
	if got := j.traffic.totals; got.RxBytes != 7000 || got.TxBytes != 600 {
		t.Errorf("after the flow's end: rx %d tx %d, want 7000 600", got.RxBytes, got.TxBytes)
	}
	if len(batch) != 1 {
		t.Errorf("batch holds %d records, want the one", len(batch))
	}
}
