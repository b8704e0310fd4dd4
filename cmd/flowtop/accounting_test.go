package main

import (
	"slices"
	"strings"
	"testing"

	"github.com/flowtop/flowtop/conntrack"
)

// The screen's warning about flows whose counters are unknown counts the
// latest snapshot's flows without counters, and is absent when there are
// none.
func TestUncountedNote(t *testing.T) {
	var snap *conntrack.Snapshot
	u := &uncountedNote{latest: func() *conntrack.Snapshot { return snap }}
	if w := u.warnings(); w != nil {
		t.Errorf("no snapshot yet: %q, want no warning", w)
	}
	snap = &conntrack.Snapshot{Flows: conntrack.Pointers([]conntrack.Flow{
		{ID: 1}, {ID: 2, HasCounters: true}, {ID: 3},
	})}
	w := u.warnings()
	if len(w) != 1 || !strings.Contains(w[0], "flows whose counters are unknown: 2 ") {
		t.Errorf("warnings %q, want one about 2 flows whose counters are unknown", w)
	}
	if again := u.warnings(); !slices.Equal(again, w) {
		t.Errorf("same snapshot, warnings %q then %q", w, again)
	}
	snap = &conntrack.Snapshot{Flows: conntrack.Pointers([]conntrack.Flow{{ID: 2, HasCounters: true}})}
	if w := u.warnings(); w != nil {
		t.Errorf("every flow counted: %q, want no warning", w)
	}
}
