// Package traffic counts the bytes and packets each local host sent and
// received, in counters that never go down: a flow's bytes stay counted
// after the flow ends. It folds the table's snapshots (counter growth
// between two snapshots) and ended-flow records (the growth since the last
// snapshot, up to the flow's final counters) into per-host counters, and
// keeps the current rates and flow counts of the hosts from the last
// snapshot.
//
// The Prometheus exporter (per-host series) and the MQTT exporter (the
// totals and top hosts of the Home Assistant state) each keep an
// Accounting of their own, fed from their own ended-flow subscription.
// An Accounting is owned by one goroutine: it has no locks.
//
// The package is portable Go: it reads conntrack's flow values and never
// talks to the kernel.
package traffic
