// Package mqttexport publishes flowtop's snapshot documents and ended-flow
// records to an MQTT broker and answers polls, so that a fleet of routers
// reports to one place (docs/mqtt.md describes topics and payloads).
//
// The exporter reads the table only through Config.Latest and
// Config.Ended, and never blocks either: snapshots are taken on its own
// tick, work goes through a bounded outbox in which a newer snapshot
// replaces an unsent one and ended records go first (after the few
// messages of the Home Assistant config), and a single sender
// goroutine publishes while a connection is up. The connection itself
// (limitedConn) keeps a request over MaxRequest from being read whole. Connections are made and remade with backoff by the
// exporter itself (not paho's auto-reconnect) so that every failure, such
// as a refused password, is logged and counted.
package mqttexport
