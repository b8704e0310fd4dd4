// Package export is the seam between flowtop's flow table and its
// exporters (MQTT, IPFIX, Prometheus metrics, the --write file): each is
// an Exporter, made from an Env by the constructor of a Spec, run by a Set
// in a goroutine of its own, and reporting its Health. A new exporter is a
// package with a constructor and one Spec in cmd/flowtop's list.
//
// The Set gives every exporter that asks for one its own ended-flow
// subscription, opened before the table runs (so that no ended flow
// escapes it) and counting its own losses, which the Set adds to the
// exporter's health as EndedDropped. The screen's status line and the
// document's health.exporters are both read from the Set.
package export
