package mqttexport_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack/nstest"
)

// haState is the state topic as docs/mqtt.md describes it, the keys the
// Home Assistant sensors read.
type haState struct {
	Flows        int    `json:"flows"`
	RxBytesTotal uint64 `json:"rx_bytes_total"`
	TxBytesTotal uint64 `json:"tx_bytes_total"`
	Overruns     uint64 `json:"overruns"`
	TopHosts     []struct {
		Host        string  `json:"host"`
		RxBytesPerS float64 `json:"rx_bytes_per_s"`
		TxBytesPerS float64 `json:"tx_bytes_per_s"`
		Flows       int     `json:"flows"`
	} `json:"top_hosts"`
}

// TestE2EHomeAssistant runs flowtop --mqtt-homeassistant with a custom
// discovery prefix and --local-net against namespace A: the device config
// goes under the prefix, and the state counts what A (the only local host)
// sent and received in a real TCP connection, ranks it first while the
// connection lives, and keeps its bytes once the kernel destroyed the
// entry.
func TestE2EHomeAssistant(t *testing.T) {
	nstest.Require(t, "nft", "conntrack")
	a, b := nstest.Pair(t)
	broker := startMosquitto(t)
	sub := connectClient(t, broker, "#")
	flowtopBin(t)

	const (
		device = "ha-e2e/device/flowtop_e2e-ha/config"
		state  = "flowtop/e2e-ha/state"
	)
	startFlowtop(t, "--no-ui", "--netns", a.Path(), "-T", "-t", "0.5", "--state-dir", t.TempDir(),
		"--mqtt", broker, "--mqtt-node", "e2e-ha", "--mqtt-interval", "1s",
		"--mqtt-homeassistant", "--mqtt-homeassistant-prefix", "ha-e2e", "--local-net", nstest.AddrA4+"/32")

	m, _ := sub.wait(t, 0, 30*time.Second, "device config on "+device, func(m message) bool { return m.topic == device })
	var cfg struct {
		Dev  struct{ SW string }      `json:"dev"`
		O    struct{ SW string }      `json:"o"`
		Cmps map[string]any           `json:"cmps"`
		Avty []struct{ Topic string } `json:"availability"`
	}
	if err := json.Unmarshal(m.payload, &cfg); err != nil {
		t.Fatalf("device config: %v: %.300s", err, m.payload)
	}
	if cfg.Dev.SW == "" || cfg.O.SW != cfg.Dev.SW || len(cfg.Cmps) != 7 || len(cfg.Avty) != 1 ||
		cfg.Avty[0].Topic != "flowtop/e2e-ha/status" {
		t.Errorf("device config: %.600s", m.payload)
	}
	// The connection starts after the first state: the state's first
	// snapshot is the baseline, and counts no earlier bytes.
	_, from := sub.wait(t, 0, 30*time.Second, "a first state", func(m message) bool { return m.topic == state })

	var last haState
	// next returns the next state that satisfies done, checking that the
	// totals never go down.
	next := func(what string, done func(haState) bool) haState {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			var m message
			m, from = sub.wait(t, from, time.Until(deadline), what, func(m message) bool { return m.topic == state })
			var st haState
			if err := json.Unmarshal(m.payload, &st); err != nil {
				t.Fatalf("state: %v: %.300s", err, m.payload)
			}
			if st.RxBytesTotal < last.RxBytesTotal || st.TxBytesTotal < last.TxBytesTotal {
				t.Fatalf("%s: totals went down from rx %d tx %d to rx %d tx %d", what,
					last.RxBytesTotal, last.TxBytesTotal, st.RxBytesTotal, st.TxBytesTotal)
			}
			last = st
			if done(st) {
				return st
			}
		}
	}

	tc := dialTCP(t, a, b, nstest.AddrA4, nstest.AddrB4)
	// A sent tcpSent bytes and received tcpAnswer (plus headers).
	st := next("the connection's bytes", func(st haState) bool {
		return st.TxBytesTotal >= tcpSent && st.RxBytesTotal >= tcpAnswer
	})
	if len(st.TopHosts) != 1 || st.TopHosts[0].Host != nstest.AddrA4 || st.TopHosts[0].Flows != 1 {
		t.Errorf("top_hosts = %+v, want %s alone with its flow", st.TopHosts, nstest.AddrA4)
	}
	if st.TxBytesTotal > 2*tcpSent || st.RxBytesTotal > tcpSent {
		t.Errorf("totals rx %d tx %d: more than the connection carried (tx %d, rx %d bytes of data)",
			st.RxBytesTotal, st.TxBytesTotal, tcpSent, tcpAnswer)
	}

	// The kernel destroys the entry: its last bytes come with the DESTROY
	// event, and the totals keep them.
	tc.c.Close()
	<-tc.serverEnd
	before := st
	conntrackDelete(t, a, "-p", "tcp")
	st = next("the state after the entry was destroyed", func(st haState) bool { return st.Flows == 0 })
	if st.TxBytesTotal < before.TxBytesTotal || st.RxBytesTotal < before.RxBytesTotal || len(st.TopHosts) != 0 {
		t.Errorf("after the destroy: rx %d tx %d top %+v; before: rx %d tx %d",
			st.RxBytesTotal, st.TxBytesTotal, st.TopHosts, before.RxBytesTotal, before.TxBytesTotal)
	}
	t.Logf("local host %s: sent %d, received %d bytes (layer 3)", nstest.AddrA4, st.TxBytesTotal, st.RxBytesTotal)
}
