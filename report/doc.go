// Package report turns a conntrack.Snapshot into flowtop's versioned JSON
// snapshot document, the one format of every output: stdout, file and
// MQTT. docs/snapshot.md describes it.
package report

import (
	"time"
)

// Version is the document format version. It changes only when a key is
// removed or changes meaning; new keys may appear at any time.
const Version = 1

// Document is the snapshot document.
type Document struct {
	Version   int       `json:"version"`
	Host      string    `json:"host"`
	Time      time.Time `json:"time"`
	IntervalS float64   `json:"interval_s"`
	// Netns names the network namespace read, "" for flowtop's own.
	Netns  string `json:"netns,omitempty"`
	Filter string `json:"filter,omitempty"`
	// Sort is the order of Flows: "rate", "bytes", "packets" or "age".
	Sort SortKey `json:"sort"`
	// RequestID echoes the id of an MQTT request this document answers.
	RequestID string `json:"request_id,omitempty"`
	// PublishIntervalS is the MQTT exporter's --mqtt-interval: a viewer
	// tells a quiet router from a late one by it. Absent elsewhere.
	PublishIntervalS float64 `json:"publish_interval_s,omitempty"`
	// Part and Parts number the pieces of a document split to fit a
	// broker's size limit (1-based); both absent when not split.
	Part   int    `json:"part,omitempty"`
	Parts  int    `json:"parts,omitempty"`
	Totals Totals `json:"totals"`
	Health Health `json:"health"`
	Flows  []Flow `json:"flows"`
}

// Totals sums the flows that pass the filters, including those a limit
// leaves out of Flows.
type Totals struct {
	Flows          int            `json:"flows"`
	ByProto        map[string]int `json:"by_proto"`
	OrigBytesPerS  float64        `json:"orig_bytes_per_s"`
	ReplyBytesPerS float64        `json:"reply_bytes_per_s"`
	OrigBytes      uint64         `json:"orig_bytes"`
	ReplyBytes     uint64         `json:"reply_bytes"`
	TableFlows     int            `json:"table_flows"`
	Listed         int            `json:"listed"`
}

// Health reports how well flowtop keeps up with the kernel.
type Health struct {
	Events   uint64 `json:"events"`
	Overruns uint64 `json:"overruns"`
	Resyncs  uint64 `json:"resyncs"`
	// Vanished counts the flows a complete dump no longer found and whose
	// DESTROY event never came: their ended records were made by flowtop
	// from the last counters it read (the bytes since then are lost).
	Vanished    uint64  `json:"vanished"`
	RefreshMS   float64 `json:"refresh_ms"`
	KernelFlows int     `json:"kernel_flows"`
	// RefreshIntervalS is the effective counter refresh interval: -t, or
	// longer when a full refresh of a huge table costs more than a
	// quarter of it.
	RefreshIntervalS float64 `json:"refresh_interval_s"`
	// HotFlows and HotRefreshMS: while the full refresh runs less often
	// than -t, the busiest and on-screen flows are read one by one every
	// interval; how many, and how long that took. Absent otherwise.
	HotFlows     int     `json:"hot_flows,omitempty"`
	HotRefreshMS float64 `json:"hot_refresh_ms,omitempty"`
	// Refreshes counts the full refreshes (dumps) made since start.
	Refreshes  uint64 `json:"refreshes"`
	Accounting bool   `json:"accounting"`
	Timestamps bool   `json:"timestamps"`
	// UncountedFlows counts the flows passing the filters whose counters
	// are unknown: the kernel created them while nf_conntrack_acct was
	// off (before flowtop started, or between two --once runs), and they
	// will never have any.
	UncountedFlows int    `json:"uncounted_flows"`
	LastError      string `json:"last_error,omitempty"`
	// Exporters holds each exporter's counters by name ("mqtt", "file").
	Exporters map[string]ExporterHealth `json:"exporters,omitempty"`
	// RDNS is the reverse DNS cache's work; absent without reverse DNS.
	RDNS *RDNSHealth `json:"rdns,omitempty"`
	// Procs is the process finder's work; absent without it.
	Procs *ProcsHealth `json:"procs,omitempty"`
}

// ExporterHealth counts what one exporter did.
type ExporterHealth struct {
	Published uint64 `json:"published"`
	Dropped   uint64 `json:"dropped"`
	Errors    uint64 `json:"errors"`
	Connected *bool  `json:"connected,omitempty"`
	// EndedDropped counts the ended-flow records the table dropped
	// because this exporter read its subscription too slowly; absent for
	// an exporter without one.
	EndedDropped *uint64 `json:"ended_dropped,omitempty"`
}

// RDNSHealth counts what the reverse DNS cache did since start.
type RDNSHealth struct {
	Lookups  uint64 `json:"lookups"`   // lookups sent to the resolver
	Hits     uint64 `json:"hits"`      // names answered from the cache
	Misses   uint64 `json:"misses"`    // names not (or no longer) cached
	NotFound uint64 `json:"not_found"` // lookups answered with no name
	Failures uint64 `json:"failures"`  // lookups that failed otherwise
	Timeouts uint64 `json:"timeouts"`  // lookups cut off by the timeout
	// Dropped counts lookups not queued because the queue was full (asked
	// again later).
	Dropped   uint64 `json:"dropped"`
	Inflight  int    `json:"inflight"` // lookups queued or running now
	Entries   int    `json:"entries"`  // addresses cached now
	LastError string `json:"last_error,omitempty"`
}

// ProcsHealth counts what the process finder did since start.
type ProcsHealth struct {
	Cached   int    `json:"cached"`   // flows in its cache now
	Queued   int    `json:"queued"`   // flows waiting for a lookup now
	Inodes   int    `json:"inodes"`   // sockets in its inode -> PID index now
	Resolved uint64 `json:"resolved"` // lookups that found an owner
	Unowned  uint64 `json:"unowned"`  // flows given up on after retries
	Retries  uint64 `json:"retries"`  // lookups repeated after a miss
	Queries  uint64 `json:"queries"`  // sock_diag requests sent
	Errors   uint64 `json:"errors"`   // sock_diag, address-list or /proc failures
	Scans    uint64 `json:"scans"`    // walks of /proc/*/fd
	Evicted  uint64 `json:"evicted"`  // cache entries dropped for size or idleness
	// Deferred counts lookups not queued because the queue was full (asked
	// again later).
	Deferred   uint64  `json:"deferred"`
	LastScanMS float64 `json:"last_scan_ms"` // how long the latest /proc walk took
}

// Flow is one flow of the document.
type Flow struct {
	Endpoints
	// Counted is false when the flow began while accounting was off: its
	// byte and packet counts are then null, not zero.
	Counted  bool       `json:"counted"`
	Orig     Direction  `json:"orig"`
	Reply    Direction  `json:"reply"`
	Start    *time.Time `json:"start"`
	AgeS     *float64   `json:"age_s"`
	TimeoutS uint32     `json:"timeout_s"`
	Mark     uint32     `json:"mark"`
	Zone     uint16     `json:"zone"`
	Labels   string     `json:"labels,omitempty"`
	Names
}

// Endpoints identifies a flow: protocol, both tuples, state and status.
// Flow and Ended share it.
type Endpoints struct {
	ID         uint32 `json:"id"`
	Family     string `json:"family"`
	Proto      string `json:"proto"`
	ProtoNum   uint8  `json:"proto_num"`
	State      string `json:"state"`
	Src        string `json:"src"`
	Sport      uint16 `json:"sport"`
	Dst        string `json:"dst"`
	Dport      uint16 `json:"dport"`
	ReplySrc   string `json:"reply_src"`
	ReplySport uint16 `json:"reply_sport"`
	ReplyDst   string `json:"reply_dst"`
	ReplyDport uint16 `json:"reply_dport"`
	// ICMP flows have no ports; they carry type, code and id instead.
	ICMPType *uint8   `json:"icmp_type,omitempty"`
	ICMPCode *uint8   `json:"icmp_code,omitempty"`
	ICMPID   *uint16  `json:"icmp_id,omitempty"`
	NAT      string   `json:"nat"`
	Status   []string `json:"status"`
}

// Names is the enrichment of a flow, each key present when known.
type Names struct {
	Service  string   `json:"service,omitempty"`
	SService string   `json:"sservice,omitempty"`
	SrcName  string   `json:"src_name,omitempty"`
	DstName  string   `json:"dst_name,omitempty"`
	SrcGeo   *Geo     `json:"src_geo,omitempty"`
	DstGeo   *Geo     `json:"dst_geo,omitempty"`
	Process  *Process `json:"process,omitempty"`
}

// Direction holds the counters and rates of one direction. Counters are
// null when the flow is not counted.
type Direction struct {
	Bytes        *uint64 `json:"bytes"`
	Packets      *uint64 `json:"packets"`
	BytesPerS    float64 `json:"bytes_per_s"`
	PacketsPerS  float64 `json:"packets_per_s"`
	BytesPerS2s  float64 `json:"bytes_per_s_2s"`
	BytesPerS10s float64 `json:"bytes_per_s_10s"`
	BytesPerS40s float64 `json:"bytes_per_s_40s"`
}

// Geo is the GeoIP record of one end.
type Geo struct {
	Country     string `json:"country,omitempty"`
	CountryName string `json:"country_name,omitempty"`
	City        string `json:"city,omitempty"`
	ASN         uint   `json:"asn,omitempty"`
	ASOrg       string `json:"as_org,omitempty"`
}

// Process is the local process owning the flow.
type Process struct {
	PID     int    `json:"pid"`
	Name    string `json:"name"`
	User    string `json:"user,omitempty"`
	Cmdline string `json:"cmdline,omitempty"`
}
