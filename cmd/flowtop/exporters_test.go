package main

import (
	"context"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/export"
	"github.com/flowtop/flowtop/ipfix"
	"github.com/flowtop/flowtop/mqttexport"
)

// wiringTable is the part of the table the exporter set reads: no
// snapshot, and subscriptions that record their buffers.
type wiringTable struct{ buffers []int }

func (*wiringTable) Latest() *conntrack.Snapshot { return nil }

func (w *wiringTable) SubscribeEndedCounted(buffer int) (<-chan conntrack.Ended, func() uint64) {
	w.buffers = append(w.buffers, buffer)
	return make(chan conntrack.Ended, buffer), func() uint64 { return 0 }
}

// TestExporterSetFromOptions: the exporters the command line asks for are
// made by the wiring, each under its name, the MQTT one with its own
// ended-flow subscription (its ended_dropped in health); --mqtt's errors
// begin with the flag.
func TestExporterSetFromOptions(t *testing.T) {
	file := filepath.Join(t.TempDir(), "flows.json")
	o, err := parseOptions([]string{"--no-ui", "--mqtt", "tcp://127.0.0.1:1", "--write", file}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	tbl := &wiringTable{}
	set := export.Subscribe(tbl, (&session{o: o}).exporterSpecs())
	if err := set.Start(context.Background(), export.Env{}); err != nil {
		t.Fatal(err)
	}
	defer set.Stop()
	h := set.Health()
	if names := slices.Sorted(maps.Keys(h)); !slices.Equal(names, []string{"file", "mqtt"}) {
		t.Fatalf("exporters %v, want file and mqtt", names)
	}
	if h["mqtt"].EndedDropped == nil || h["mqtt"].Connected == nil || h["file"].EndedDropped != nil {
		t.Errorf("health %+v: want mqtt with a connection and an ended-flow subscription, file without", h)
	}
	if !slices.Equal(tbl.buffers, []int{mqttexport.EndedBuffer}) {
		t.Errorf("subscriptions of %v records, want one of %d (mqtt's)", tbl.buffers, mqttexport.EndedBuffer)
	}

	missing := filepath.Join(t.TempDir(), "missing")
	o, err = parseOptions([]string{"--no-ui", "--mqtt", "tcp://127.0.0.1:1", "--mqtt-user", "u", "--mqtt-password-file", missing}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	set = export.Subscribe(&wiringTable{}, (&session{o: o}).exporterSpecs())
	if err := set.Start(context.Background(), export.Env{}); err == nil || !strings.HasPrefix(err.Error(), "--mqtt: ") || !strings.Contains(err.Error(), missing) {
		t.Errorf("Start with a missing password file: %v, want an error after --mqtt naming %s", err, missing)
	}
}

// TestIPFIXFromOptions: --ipfix is made by its spec line alone, from its
// flags (the format as typed), under its name and with its own ended-flow
// subscription.
func TestIPFIXFromOptions(t *testing.T) {
	o, err := parseOptions([]string{"--no-ui", "--ipfix", "udp://127.0.0.1:9", "--ipfix-format", "NF9"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	tbl := &wiringTable{}
	set := export.Subscribe(tbl, (&session{o: o}).exporterSpecs())
	if err := set.Start(context.Background(), export.Env{}); err != nil {
		t.Fatal(err)
	}
	defer set.Stop()
	h := set.Health()
	if names := slices.Sorted(maps.Keys(h)); !slices.Equal(names, []string{"ipfix"}) {
		t.Fatalf("exporters %v, want ipfix", names)
	}
	if h["ipfix"].EndedDropped == nil {
		t.Errorf("health %+v: want ipfix with an ended-flow subscription", h)
	}
	if !slices.Equal(tbl.buffers, []int{ipfix.EndedBuffer}) {
		t.Errorf("subscriptions of %v records, want one of %d (ipfix's)", tbl.buffers, ipfix.EndedBuffer)
	}
}
