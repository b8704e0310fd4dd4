package ui

import "testing"

// colID is what the tests call a column: the column itself, its
// definition being its identity.
type colID = *column

// Columns of the Flows tab the tests name.
var (
	cProcess = tabs[tabFlows].column("PROCESS")
	cPID     = tabs[tabFlows].column("PID")
	cProto   = tabs[tabFlows].column("PROTO")
	cDest    = tabs[tabFlows].column("DESTINATION")
	cRate    = tabs[tabFlows].column("RATE")
)

// TestColumnsComplete: every column of every tab has a title no other
// column of its tab has, a cell, and a sort key that needs no names it is
// not given; every tab has the RATE it starts sorted by.
func TestColumnsComplete(t *testing.T) {
	for ti, tb := range tabs {
		if tb.name == "" || len(tb.columns) == 0 {
			t.Errorf("tab %d has no name or no columns", ti)
		}
		seen := map[string]bool{}
		for _, c := range tb.columns {
			if c.title == "" || c.cell == nil || c.prio <= 0 {
				t.Errorf("%s: column %q lacks a title, a cell or a priority", tb.name, c.title)
			}
			if seen[c.title] {
				t.Errorf("%s: two columns titled %q", tb.name, c.title)
			}
			seen[c.title] = true
			if c.num != nil && c.key != nil {
				t.Errorf("%s: column %q has two sort keys", tb.name, c.title)
			}
		}
		if !seen["RATE"] {
			t.Errorf("%s has no RATE column", tb.name)
		}
	}
}

// TestSortByEveryColumn: sorting by any column of any tab orders the
// rows by that column's key, in both directions, and every cell of the
// rows can be made.
func TestSortByEveryColumn(t *testing.T) {
	src := newFakeSource(testFlows(), allProtos())
	snap := src.Latest()
	names := testNamer()
	for ti, tb := range tabs {
		for _, c := range tb.columns {
			for _, desc := range []bool{false, true} {
				p := &params{tab: tabID(ti), sort: defaultSort()}
				p.sort[ti] = sortSpec{col: c, desc: desc}
				v := &view{p: p}
				buildRows(v, snap, p, names, t0)
				o := fmtOpts{now: t0}
				var prev *sortKey
				for i := range v.rowCount() {
					r := row{o: &o}
					if tabID(ti) == tabFlows {
						r.f = v.flow(i)
						n := names.Names(r.f)
						r.n = &n
					} else {
						r.g = v.groups[i]
						r.n = lookupGroupNames(r.g, names)
					}
					_ = c.cell(r)
					k := c.sortKey(r)
					if prev != nil {
						cmp := compareKeys(prev, &k)
						if desc {
							cmp = -cmp
						}
						if cmp > 0 {
							t.Errorf("%s by %s (desc %v): row %d out of order: %+v after %+v", tb.name, c.title, desc, i, k, *prev)
						}
					}
					prev = &k
				}
				if v.rowCount() == 0 {
					t.Errorf("%s by %s: no rows", tb.name, c.title)
				}
			}
		}
	}
}
