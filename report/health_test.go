package report

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flowtop/flowtop/conntrack"
)

// The losses counted outside the kernel side reach the document under the
// keys docs/snapshot.md names.
func TestHealthLossKeys(t *testing.T) {
	d := Prepare(&conntrack.Snapshot{Time: time.Unix(0, 0), Health: conntrack.Health{Vanished: 3}}, Options{})
	four := uint64(4)
	d.Health.Exporters = map[string]ExporterHealth{"ipfix": {Published: 1, EndedDropped: &four}, "file": {Published: 2}}
	d.Health.RDNS = &RDNSHealth{Lookups: 1, Hits: 2, Misses: 3, NotFound: 4, Failures: 5, Timeouts: 6, Dropped: 7,
		Inflight: 8, Entries: 9, LastError: "timeout"}
	d.Health.Procs = &ProcsHealth{Cached: 1, Queued: 2, Inodes: 3, Resolved: 4, Unowned: 5, Retries: 6, Queries: 7,
		Errors: 8, Scans: 9, Evicted: 10, Deferred: 11, LastScanMS: 1.5}
	b, err := json.Marshal(d.Full())
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Health map[string]any `json:"health"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{
		"vanished": 3.0,
		"exporters": map[string]any{
			"ipfix": map[string]any{"published": 1.0, "dropped": 0.0, "errors": 0.0, "ended_dropped": 4.0},
			"file":  map[string]any{"published": 2.0, "dropped": 0.0, "errors": 0.0},
		},
		"rdns": map[string]any{"lookups": 1.0, "hits": 2.0, "misses": 3.0, "not_found": 4.0, "failures": 5.0,
			"timeouts": 6.0, "dropped": 7.0, "inflight": 8.0, "entries": 9.0, "last_error": "timeout"},
		"procs": map[string]any{"cached": 1.0, "queued": 2.0, "inodes": 3.0, "resolved": 4.0, "unowned": 5.0,
			"retries": 6.0, "queries": 7.0, "errors": 8.0, "scans": 9.0, "evicted": 10.0, "deferred": 11.0,
			"last_scan_ms": 1.5},
	}
	got := map[string]any{}
	for k := range want {
		got[k] = doc.Health[k]
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("health (-want +got):\n%.1000s", diff)
	}
}

// Without reverse DNS or the process finder their keys are absent, not
// empty objects.
func TestHealthWithoutLookups(t *testing.T) {
	b, err := json.Marshal(Build(&conntrack.Snapshot{Time: time.Unix(0, 0)}, Options{}))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Health map[string]any `json:"health"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"rdns", "procs", "exporters"} {
		if v, ok := doc.Health[k]; ok {
			t.Errorf("health.%s = %v, want it absent", k, v)
		}
	}
	if v, ok := doc.Health["vanished"]; !ok || v != 0.0 {
		t.Errorf("health.vanished = %v (present %v), want 0", v, ok)
	}
}
