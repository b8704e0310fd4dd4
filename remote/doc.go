// Package remote is the data side of flowtop's fleet view: it reads what
// routers publish to an MQTT broker (docs/mqtt.md) and turns it back into
// the values the screen shows for the local kernel.
//
// A Client subscribes to every node under a topic prefix: the retained
// status (online, offline, or the broker's last will), the snapshot
// documents (JSON or gzip, whole or in numbered parts), the live stream of
// watched nodes and the retained state summary. One goroutine owns all of
// it; readers get immutable values (NodeInfo, View, FleetView) through
// atomic pointers and never wait for the broker or the decoder.
//
// Input from the broker is not trusted: a message over the size cap, a
// gzip body that inflates past it, JSON that does not parse, a document of
// another version or a node name with control characters gives a
// one-line error on that node (or on the connection) and the rest goes
// on. The number of nodes, of parts being joined and of flows held are
// bounded.
//
// While a node is watched (shown on the screen) the Client renews a watch
// lease on the node's request topic, so that the router publishes its
// busiest flows at the viewer's interval on <prefix>/<node>/live instead
// of every --mqtt-interval (docs/mqtt.md, "Watching a node live").
package remote
