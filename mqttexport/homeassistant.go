package mqttexport

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/flowtop/flowtop/report"
)

// haDiscoveryPrefix is Home Assistant's default discovery prefix.
const haDiscoveryPrefix = "homeassistant"

// state is the small retained summary on <prefix>/<node>/state that the
// Home Assistant sensors read. Download is the reply direction (towards the
// side that opened the flow, the LAN on a router), upload the original one.
type state struct {
	Time        time.Time `json:"time"`
	RxBytesPerS float64   `json:"rx_bytes_per_s"`
	TxBytesPerS float64   `json:"tx_bytes_per_s"`
	Flows       int       `json:"flows"`
	TableFlows  int       `json:"table_flows"`
	OrigBytes   uint64    `json:"orig_bytes"`
	ReplyBytes  uint64    `json:"reply_bytes"`
}

func stateOf(d *report.Document) state {
	return state{
		Time:        d.Time,
		RxBytesPerS: d.Totals.ReplyBytesPerS,
		TxBytesPerS: d.Totals.OrigBytesPerS,
		Flows:       d.Totals.Flows,
		TableFlows:  d.Totals.TableFlows,
		OrigBytes:   d.Totals.OrigBytes,
		ReplyBytes:  d.Totals.ReplyBytes,
	}
}

// haConfig is one Home Assistant MQTT discovery config.
type haConfig struct {
	Name              string   `json:"name"`
	UniqueID          string   `json:"unique_id"`
	StateTopic        string   `json:"state_topic"`
	ValueTemplate     string   `json:"value_template"`
	Unit              string   `json:"unit_of_measurement,omitempty"`
	DeviceClass       string   `json:"device_class,omitempty"`
	StateClass        string   `json:"state_class"`
	Icon              string   `json:"icon,omitempty"`
	AvailabilityTopic string   `json:"availability_topic"`
	PayloadAvailable  string   `json:"payload_available"`
	PayloadNotAvail   string   `json:"payload_not_available"`
	Device            haDevice `json:"device"`
}

type haDevice struct {
	Identifiers  []string `json:"identifiers"`
	Name         string   `json:"name"`
	Manufacturer string   `json:"manufacturer"`
	Model        string   `json:"model"`
}

// haMessage is a retained discovery message.
type haMessage struct {
	topic   string
	payload []byte
}

// haObjectID makes a node name safe for discovery topics and ids, which
// allow only [a-zA-Z0-9_-].
func haObjectID(node string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '-':
			return r
		case r >= 'A' && r <= 'Z':
			return r + 'a' - 'A'
		}
		return '_'
	}, node)
}

// haDiscovery returns the discovery configs of the node's sensors:
// download rate, upload rate and active flows, available while the status
// topic says "online".
func haDiscovery(t topics, node string) []haMessage {
	id := haObjectID(node)
	dev := haDevice{
		Identifiers:  []string{"flowtop_" + id},
		Name:         "flowtop " + node,
		Manufacturer: "flowtop",
		Model:        "flowtop conntrack exporter",
	}
	sensors := []struct {
		key  string
		conf haConfig
	}{
		{"download", haConfig{Name: "Download rate", ValueTemplate: "{{ value_json.rx_bytes_per_s | round(0) }}",
			Unit: "B/s", DeviceClass: "data_rate", Icon: "mdi:download-network"}},
		{"upload", haConfig{Name: "Upload rate", ValueTemplate: "{{ value_json.tx_bytes_per_s | round(0) }}",
			Unit: "B/s", DeviceClass: "data_rate", Icon: "mdi:upload-network"}},
		{"flows", haConfig{Name: "Active flows", ValueTemplate: "{{ value_json.flows }}",
			Icon: "mdi:lan-connect"}},
	}
	msgs := make([]haMessage, 0, len(sensors))
	for _, s := range sensors {
		c := s.conf
		c.UniqueID = "flowtop_" + id + "_" + s.key
		c.StateTopic = t.state
		c.StateClass = "measurement"
		c.AvailabilityTopic = t.status
		c.PayloadAvailable, c.PayloadNotAvail = statusOnline, statusOffline
		c.Device = dev
		b, _ := json.Marshal(&c) // plain strings: cannot fail
		msgs = append(msgs, haMessage{
			topic:   haDiscoveryPrefix + "/sensor/" + id + "_" + s.key + "/config",
			payload: b,
		})
	}
	return msgs
}
