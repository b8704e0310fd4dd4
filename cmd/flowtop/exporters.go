//go:build linux

package main

import (
	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/export"
	"github.com/flowtop/flowtop/ipfix"
	"github.com/flowtop/flowtop/metrics"
	"github.com/flowtop/flowtop/mqttexport"
	"github.com/flowtop/flowtop/report"
)

// exporterSpecs lists the exporters flowtop has, in the order they are
// made, each on when its flag is given, with the buffer of its own
// ended-flow subscription (0: none). A new exporter is one line here.
func (s *session) exporterSpecs() []export.Spec {
	o := s.o
	return []export.Spec{
		{On: o.mqtt.url != "", Flag: "--mqtt", Ended: mqttexport.EndedBuffer, New: o.mqttConfig().New},
		{On: s.metricsLn != nil, Flag: "--metrics-listen", Ended: metrics.EndedBuffer, New: s.metricsConfig().New},
		{On: len(o.ipfix.urls) > 0, Flag: "--ipfix", Ended: ipfix.EndedBuffer, New: o.ipfix.config().New},
		{On: o.write != "", New: s.newFile},
	}
}

// mqttConfig is the --mqtt exporter's settings, from its flags.
func (o *options) mqttConfig() mqttexport.Config {
	return mqttexport.Config{
		URL: o.mqtt.url, User: o.mqtt.user, PasswordFile: o.mqtt.passwordFile,
		CA: o.mqtt.ca, Cert: o.mqtt.cert, Key: o.mqtt.key,
		ClientID: o.mqtt.clientID, Topic: o.mqtt.topic, Node: o.mqtt.node,
		QoS: byte(o.mqtt.qos), Interval: o.mqtt.interval, Gzip: o.mqtt.gzip,
		Limit: o.limit, HomeAssistant: o.mqtt.homeAssistant,
		HomeAssistantPrefix: o.mqtt.haPrefix, LocalNets: o.metrics.nets, Version: version,
	}
}

// newFile makes the --write exporter. Its documents are those of every
// other output, health included.
func (s *session) newFile(env export.Env) (export.Exporter, error) {
	return &export.File{Path: s.o.write, Every: s.o.writeInterval, Latest: env.Latest,
		Document: s.document, Logger: env.Logger}, nil
}

// document is the snapshot document of s as flowtop writes it (--once,
// --batch, --write), with the health of the exporters and lookups.
func (s *session) document(snap *conntrack.Snapshot) *report.Prepared {
	d := report.Prepare(snap, s.docOpts)
	s.addHealth(&d.Health)
	return d
}

// addHealth adds to a document's health what the snapshot does not hold:
// every exporter's counters and the lookups' work. The exporters' own
// documents (MQTT) get it through their Env, so that every document
// flowtop makes carries the same health.
func (s *session) addHealth(h *report.Health) {
	h.Exporters = s.exp.Health()
	s.names.addHealth(h)
}
