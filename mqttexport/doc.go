// Package mqttexport publishes flowtop's snapshot documents and ended-flow
// records to an MQTT broker and answers polls, so that a fleet of routers
// reports to one place (docs/mqtt.md describes topics and payloads).
//
// The exporter is one of flowtop's exporters behind package export's seam
// (Name, Run, Health; Config.New makes it from an export.Env). It reads
// the table only through the Env's Latest and its own Ended subscription,
// and never blocks either: snapshots are taken on its own tick, work goes
// through a bounded outbox in which a newer snapshot replaces an unsent
// one and ended records go first (after the few messages of the Home
// Assistant config), and a single sender goroutine publishes while a
// connection is up. The Env's Health hook completes the health of its
// documents, so that they carry what flowtop's other documents carry.
//
// The connection itself (limitedConn) keeps a request over MaxRequest from
// being read whole. Connections are made and remade with backoff by the
// exporter itself (not paho's auto-reconnect) so that every failure, such
// as a refused password, is logged and counted.
package mqttexport
