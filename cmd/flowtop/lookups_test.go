package main

import (
	"io"
	"log/slog"
	"testing"

	"github.com/flowtop/flowtop/report"
)

// health.rdns is there exactly when reverse DNS runs (not with -n), and
// health.procs when the process finder does.
func TestLookupsHealth(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		wantRDNS bool
	}{
		{[]string{"--no-geoip"}, true},
		{[]string{"--no-geoip", "-n"}, false},
	} {
		o, err := parseOptions(tc.args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		l := openLookups(o, slog.New(slog.DiscardHandler))
		var h report.Health
		l.addHealth(&h)
		l.close()
		if (h.RDNS != nil) != tc.wantRDNS {
			t.Errorf("%q: health.rdns %+v, want it present %v", tc.args, h.RDNS, tc.wantRDNS)
		}
		if (h.Procs != nil) != (l.owners != nil) {
			t.Errorf("%q: health.procs %+v with the process finder running %v", tc.args, h.Procs, l.owners != nil)
		}
	}
}
