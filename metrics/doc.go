// Package metrics serves flowtop's Prometheus metrics (--metrics-listen):
// flows by family, protocol and state, traffic per local host, the health
// of the kernel side and of the exporters, and the kernel's own conntrack
// statistics. docs/metrics.md lists every metric.
//
// Only low-cardinality series are made: never a label per remote address
// or port, and at most Config.MaxHosts local hosts (the rest are summed
// under host="other").
//
// The exposition is written by hand in Prometheus' text format 0.0.4
// (expfmt.go): the handful of metric kinds used here need a few hundred
// lines, where prometheus/client_golang would add some 3 MB to a router's
// binary.
//
// The Collector is one of flowtop's exporters (package export): made by
// Config.New from an export.Env, it reads the table through the Env's
// Latest and its own Ended subscription, and the exporters' counters
// through the Env's Health hook; Run serves on a listener opened
// beforehand. One goroutine of Run owns the per-host counters (an
// Accounting of package traffic, which the MQTT exporter uses too). It
// reads ended-flow records as they come and folds the latest snapshot
// into the counters when a scrape asks, and every FoldEvery otherwise;
// scrapes get an immutable view of the result.
//
// Serve is a small HTTP/1.1 server of its own (server.go), not net/http
// (some 700 kB of a router's binary): it reads request lines and headers
// only, keeps connections alive, and bounds what a client may cost
// (header size and time, idle and write time, open connections).
package metrics
