package main

import (
	"encoding/json"
	"net"
	"syscall"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack/nstest"
)

// The document's health shows the losses counted beside the kernel side:
// each exporter's own ended-flow subscription (ended_dropped, absent for
// the file writer, which has none), the flows that vanished without a
// DESTROY, and the process finder's work.
func TestHealthShowsExporterAndLookupLosses(t *testing.T) {
	nstest.Require(t, "nft")
	a := nstest.New(t, "hl")
	a.EnableConntrack(t)
	col, err := net.ListenPacket("udp", "127.0.0.1:0") // an IPFIX collector that reads nothing
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { col.Close() })
	p := startFlowtop(t, "--batch", "--netns", a.Path(), "-t", "0.2", "--state-dir", t.TempDir(),
		"--ipfix", "udp://"+col.LocalAddr().String(), "--metrics-listen", "127.0.0.1:0",
		"--write", t.TempDir()+"/snap.json")
	var doc struct {
		Health struct {
			Vanished  *uint64                               `json:"vanished"`
			Exporters map[string]map[string]json.RawMessage `json:"exporters"`
			Procs     map[string]json.RawMessage            `json:"procs"`
			RDNS      map[string]json.RawMessage            `json:"rdns"`
		} `json:"health"`
	}
	line := p.next(t, 30*time.Second)
	if err := json.Unmarshal(line, &doc); err != nil {
		t.Fatalf("%v: %.300s", err, line)
	}
	h := doc.Health
	if h.Vanished == nil {
		t.Error("health.vanished missing")
	}
	for _, name := range []string{"ipfix", "metrics"} {
		if _, ok := h.Exporters[name]["ended_dropped"]; !ok {
			t.Errorf("health.exporters.%s has no ended_dropped: %s", name, h.Exporters[name])
		}
	}
	if f, ok := h.Exporters["file"]; !ok {
		t.Error("health.exporters has no file entry")
	} else if _, ok := f["ended_dropped"]; ok {
		t.Error("health.exporters.file has ended_dropped, but no ended-flow subscription")
	}
	for _, k := range []string{"cached", "queued", "resolved", "queries", "errors", "deferred", "last_scan_ms"} {
		if _, ok := h.Procs[k]; !ok {
			t.Errorf("health.procs.%s missing (procs: %.300s)", k, h.Procs)
		}
	}
	if h.RDNS != nil {
		t.Errorf("health.rdns with -n: %.300s", h.RDNS)
	}
	p.signal(t, syscall.SIGTERM)
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Errorf("exit status %d after SIGTERM", code)
	}
}
