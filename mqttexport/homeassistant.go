package mqttexport

import (
	"encoding/json"
	"strings"
	"time"

	"github.com/flowtop/flowtop/report"
	"github.com/flowtop/flowtop/traffic"
)

// topHostsN is how many local hosts the state ranks.
const topHostsN = 5

// state is the small retained summary on <prefix>/<node>/state that the
// Home Assistant sensors read. Download is the reply direction (towards the
// side that opened the flow, the LAN on a router), upload the original one.
// The byte totals are those of the local hosts instead, and never go down.
type state struct {
	Time        time.Time `json:"time"`
	RxBytesPerS float64   `json:"rx_bytes_per_s"`
	TxBytesPerS float64   `json:"tx_bytes_per_s"`
	Flows       int       `json:"flows"`
	TableFlows  int       `json:"table_flows"`
	OrigBytes   uint64    `json:"orig_bytes"`
	ReplyBytes  uint64    `json:"reply_bytes"`
	// RxBytesTotal and TxBytesTotal are what the local hosts received
	// and sent since flowtop started, the flows that ended included.
	RxBytesTotal uint64 `json:"rx_bytes_total"`
	TxBytesTotal uint64 `json:"tx_bytes_total"`
	// Overruns counts netlink event overruns since flowtop started.
	Overruns uint64 `json:"overruns"`
	// TopHosts are the busiest local hosts now; never null.
	TopHosts []topHost `json:"top_hosts"`
}

// topHost is one local host of the state's ranking: its current rates
// and flows.
type topHost struct {
	Host        string  `json:"host"`
	RxBytesPerS float64 `json:"rx_bytes_per_s"`
	TxBytesPerS float64 `json:"tx_bytes_per_s"`
	Flows       int     `json:"flows"`
}

// hostTraffic is what the exporter's accounting adds to a snapshot's
// state: made by the scheduler, which owns the accounting, and read by the
// sender.
type hostTraffic struct {
	totals traffic.Totals
	top    []topHost
}

// hostTrafficOf takes the totals and the top hosts of a.
func hostTrafficOf(a *traffic.Accounting) *hostTraffic {
	ht := &hostTraffic{totals: a.Totals(), top: []topHost{}}
	for _, h := range a.Top(topHostsN) {
		ht.top = append(ht.top, topHost{Host: h.Label, RxBytesPerS: h.RxBytesPerS, TxBytesPerS: h.TxBytesPerS,
			Flows: h.Flows})
	}
	return ht
}

func stateOf(d *report.Document, ht *hostTraffic) state {
	st := state{
		Time:        d.Time,
		RxBytesPerS: d.Totals.ReplyBytesPerS,
		TxBytesPerS: d.Totals.OrigBytesPerS,
		Flows:       d.Totals.Flows,
		TableFlows:  d.Totals.TableFlows,
		OrigBytes:   d.Totals.OrigBytes,
		ReplyBytes:  d.Totals.ReplyBytes,
		Overruns:    d.Health.Overruns,
		TopHosts:    []topHost{},
	}
	if ht != nil {
		st.RxBytesTotal, st.TxBytesTotal = ht.totals.RxBytes, ht.totals.TxBytes
		st.TopHosts = ht.top
	}
	return st
}

// haDeviceConfig is Home Assistant's device-based discovery payload (HA
// 2024.11 and later): the device, the origin and what the components
// share at the root, the components under "cmps".
type haDeviceConfig struct {
	Device       haDevice               `json:"dev"`
	Origin       haOrigin               `json:"o"`
	Availability []haAvailability       `json:"availability"`
	StateTopic   string                 `json:"state_topic"`
	QoS          byte                   `json:"qos"`
	Components   map[string]haComponent `json:"cmps"`
}

type haDevice struct {
	IDs          []string `json:"ids"`
	Name         string   `json:"name"`
	Manufacturer string   `json:"mf"`
	Model        string   `json:"mdl"`
	SWVersion    string   `json:"sw,omitempty"`
}

type haOrigin struct {
	Name      string `json:"name"`
	SWVersion string `json:"sw,omitempty"`
	URL       string `json:"url"`
}

type haAvailability struct {
	Topic               string `json:"topic"`
	PayloadAvailable    string `json:"payload_available"`
	PayloadNotAvailable string `json:"payload_not_available"`
}

// haComponent is one sensor of the device. DefaultEntityID replaces the
// deprecated object_id.
type haComponent struct {
	Platform               string `json:"p"`
	Name                   string `json:"name"`
	UniqueID               string `json:"unique_id"`
	DefaultEntityID        string `json:"default_entity_id"`
	DeviceClass            string `json:"device_class,omitempty"`
	Unit                   string `json:"unit_of_measurement,omitempty"`
	StateClass             string `json:"state_class,omitempty"`
	EntityCategory         string `json:"entity_category,omitempty"`
	Icon                   string `json:"icon,omitempty"`
	ValueTemplate          string `json:"value_template"`
	JSONAttributesTopic    string `json:"json_attributes_topic,omitempty"`
	JSONAttributesTemplate string `json:"json_attributes_template,omitempty"`
	ExpireAfter            int    `json:"expire_after"`
}

// haProjectURL is the origin's support URL.
const haProjectURL = "https://github.com/flowtop/flowtop"

// haMigratePayload hands an entity of a per-entity discovery topic over to
// the device-based config that follows.
const haMigratePayload = `{"migrate_discovery":true}`

// haLegacyKeys are the sensors that flowtop published one config each
// for, on <prefix>/sensor/<id>_<key>/config, before the device config.
var haLegacyKeys = []string{"download", "upload", "flows"}

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

// haDiscoveryTopic is the node's device config topic.
func haDiscoveryTopic(prefix, node string) string {
	return prefix + "/device/flowtop_" + haObjectID(node) + "/config"
}

// haLegacyTopics are the per-entity config topics of earlier versions.
func haLegacyTopics(prefix, node string) []string {
	id := haObjectID(node)
	topics := make([]string, 0, len(haLegacyKeys))
	for _, key := range haLegacyKeys {
		topics = append(topics, prefix+"/sensor/"+id+"_"+key+"/config")
	}
	return topics
}

// haExpireAfter is how long Home Assistant keeps a sensor's value without
// a new state: three periods of the state (the exporter's interval, or the
// table's when longer: a state comes with a new table snapshot), and at
// least a minute. A router whose last will was lost so goes unavailable.
func haExpireAfter(interval, tableInterval time.Duration) int {
	period := max(interval, tableInterval)
	return int(max(3*period, time.Minute).Round(time.Second) / time.Second)
}

// haDiscovery returns the node's device config: download and upload
// rates, downloaded and uploaded bytes, active flows, event overruns and
// the top local hosts, read from the state topic, available while the
// status topic says "online".
func haDiscovery(t topics, node, version string, qos byte, expireAfter int) []byte {
	id := haObjectID(node)
	cmps := map[string]haComponent{
		"download": {Name: "Download rate", DeviceClass: "data_rate", Unit: "B/s", StateClass: "measurement",
			Icon: "mdi:download-network", ValueTemplate: "{{ value_json.rx_bytes_per_s | round(0) }}"},
		"upload": {Name: "Upload rate", DeviceClass: "data_rate", Unit: "B/s", StateClass: "measurement",
			Icon: "mdi:upload-network", ValueTemplate: "{{ value_json.tx_bytes_per_s | round(0) }}"},
		"downloaded": {Name: "Downloaded", DeviceClass: "data_size", Unit: "B", StateClass: "total_increasing",
			Icon: "mdi:download", ValueTemplate: "{{ value_json.rx_bytes_total }}"},
		"uploaded": {Name: "Uploaded", DeviceClass: "data_size", Unit: "B", StateClass: "total_increasing",
			Icon: "mdi:upload", ValueTemplate: "{{ value_json.tx_bytes_total }}"},
		"flows": {Name: "Active flows", StateClass: "measurement", Icon: "mdi:lan-connect",
			ValueTemplate: "{{ value_json.flows }}"},
		"overruns": {Name: "Event overruns", StateClass: "total_increasing", EntityCategory: "diagnostic",
			Icon: "mdi:alert-circle-outline", ValueTemplate: "{{ value_json.overruns }}"},
		// One sensor for the ranking, the hosts in its attributes: an
		// entity per host would pile up a router's whole LAN (and every
		// IPv6 privacy address) in Home Assistant.
		"top_hosts": {Name: "Top hosts", Icon: "mdi:format-list-numbered",
			ValueTemplate:          "{{ value_json.top_hosts[0].host if value_json.top_hosts else 'none' }}",
			JSONAttributesTopic:    t.state,
			JSONAttributesTemplate: "{{ {'hosts': value_json.top_hosts} | tojson }}"},
	}
	for key, c := range cmps {
		c.Platform = "sensor"
		// The unique ids of the per-entity configs of earlier versions,
		// so that their entities (and history) carry over.
		c.UniqueID = "flowtop_" + id + "_" + key
		c.DefaultEntityID = "sensor.flowtop_" + id + "_" + key
		c.ExpireAfter = expireAfter
		cmps[key] = c
	}
	cfg := haDeviceConfig{
		Device: haDevice{
			IDs:          []string{"flowtop_" + id},
			Name:         "flowtop " + node,
			Manufacturer: "flowtop",
			Model:        "flowtop conntrack exporter",
			SWVersion:    version,
		},
		Origin:       haOrigin{Name: "flowtop", SWVersion: version, URL: haProjectURL},
		Availability: []haAvailability{{Topic: t.status, PayloadAvailable: statusOnline, PayloadNotAvailable: statusOffline}},
		StateTopic:   t.state,
		QoS:          qos,
		Components:   cmps,
	}
	b, _ := json.Marshal(&cfg) // strings and numbers: cannot fail
	return b
}
