package remote

import (
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// NodesVersion is the version of the nodes document (flowtop --remote URL
// --once); it changes only when a key changes meaning or goes away.
const NodesVersion = 1

// NodesDocument is the nodes list as flowtop --remote URL --once prints
// it (docs/mqtt.md, "The nodes document").
type NodesDocument struct {
	Version int         `json:"version"`
	Time    time.Time   `json:"time"`
	Broker  string      `json:"broker"`
	Topic   string      `json:"topic"`
	Nodes   []NodeEntry `json:"nodes"`
}

// NodeEntry is one node of a NodesDocument: NodeInfo with JSON keys.
// Times are zero (omitted) when not known yet.
type NodeEntry struct {
	Node     string     `json:"node"`
	Status   string     `json:"status"`
	StatusAt *time.Time `json:"status_time,omitempty"`
	Host     string     `json:"host,omitempty"`
	// DataTime is the router's time of its last document or state
	// summary; AgeS how old that was when the list was made.
	DataTime *time.Time `json:"data_time,omitempty"`
	AgeS     *float64   `json:"age_s,omitempty"`
	// PublishIntervalS is the node's --mqtt-interval, as its documents
	// say; Stale is true when its data is older than two of them and
	// 10 s.
	PublishIntervalS float64 `json:"publish_interval_s,omitempty"`
	Stale            bool    `json:"stale"`
	Flows            int     `json:"flows"`
	Listed           int     `json:"listed"`
	TableFlows       int     `json:"table_flows"`
	OrigBytesPerS    float64 `json:"orig_bytes_per_s"`
	ReplyBytesPerS   float64 `json:"reply_bytes_per_s"`
	Overruns         uint64  `json:"overruns"`
	Resyncs          uint64  `json:"resyncs"`
	Dropped          uint64  `json:"dropped"`
	ExportErrors     uint64  `json:"export_errors"`
	// Complete is false when parts of the last document never came.
	Complete      bool   `json:"complete"`
	Parts         int    `json:"parts,omitempty"`
	PartsReceived int    `json:"parts_received,omitempty"`
	Documents     uint64 `json:"documents"`
	Rejected      uint64 `json:"rejected"`
	Error         string `json:"error,omitempty"`
}

// Nodes makes the nodes document of nodes as of now.
func Nodes(nodes []NodeInfo, broker, topic string, now time.Time) NodesDocument {
	d := NodesDocument{Version: NodesVersion, Time: now.UTC(), Broker: broker, Topic: topic,
		Nodes: make([]NodeEntry, 0, len(nodes))}
	for i := range nodes {
		n := &nodes[i]
		e := NodeEntry{
			Node: n.Name, Status: n.Status.String(), Host: n.Host,
			Flows: n.Flows, Listed: n.Listed, TableFlows: n.TableFlows,
			OrigBytesPerS: finite(n.OrigBytesPerS), ReplyBytesPerS: finite(n.ReplyBytesPerS),
			Overruns: n.Overruns, Resyncs: n.Resyncs, Dropped: n.Dropped, ExportErrors: n.ExportErrors,
			Complete: n.Complete || n.Parts == 0, Parts: n.Parts, PartsReceived: n.PartsReceived,
			Documents: n.Documents, Rejected: n.Rejected, Error: n.Err,
			PublishIntervalS: n.PublishEvery.Seconds(), Stale: n.Stale(now),
		}
		if !n.StatusAt.IsZero() {
			t := n.StatusAt.UTC()
			e.StatusAt = &t
		}
		if !n.Time.IsZero() {
			t := n.Time.UTC()
			age := math.Round(n.Age(now).Seconds()*10) / 10
			e.DataTime, e.AgeS = &t, &age
		}
		d.Nodes = append(d.Nodes, e)
	}
	return d
}

// JSON is the document as printed: one line, as flowtop's other
// documents, ending in a newline.
func (d NodesDocument) JSON() ([]byte, error) {
	b, err := json.Marshal(d)
	if err != nil {
		return nil, fmt.Errorf("remote: nodes document: %w", err)
	}
	return append(b, '\n'), nil
}

// finite turns a NaN or an infinity, which JSON cannot carry, into 0.
func finite(f float64) float64 {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return 0
	}
	return f
}
