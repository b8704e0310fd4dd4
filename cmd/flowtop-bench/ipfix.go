package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// ipfixRun is one run of flowtop on a churning table, with or without
// --ipfix.
type ipfixRun struct {
	on   bool
	cpu  float64 // percent of one core over the window
	load string
	// ended is how many flows the bench deleted; destroys how many
	// DESTROY events the kernel sent (a listener of the bench's own saw
	// them), destroyOverruns how often that listener overran.
	ended                     int
	destroys, destroyOverruns uint64
	doc                       snapshotDoc // flowtop's --write document at the end
	col                       ipfixCount  // what the collector received
	drops                     int         // datagrams dropped at the collector's socket
}

// measureIPFIX runs flowtop --no-ui on a table of n flows of which rate a
// second end (and as many begin), alternately without and with --ipfix,
// and counts every record at a collector.
func measureIPFIX(bin string, n, rate, runs int, window time.Duration) error {
	if window <= 0 || runs <= 0 {
		return fmt.Errorf("-ipfix needs -cpu-seconds > 0 (the measuring window) and -runs > 0")
	}
	x, closeNS, err := benchNS()
	if err != nil {
		return err
	}
	defer closeNS()
	start := time.Now()
	t, err := newChurnTable(x, n)
	if err != nil {
		return err
	}
	defer t.close()
	fmt.Printf("\nIPFIX: %d flows (created in %v; the kernel holds %d), %d ending and as many beginning a second, CPU over %v\n",
		n, time.Since(start).Round(time.Millisecond), x.count(), rate, window)
	// The table was made while nothing listened to conntrack events: with
	// nf_conntrack_events at its default (2), such entries never send a
	// DESTROY, as on a router where flowtop starts after its flows. A
	// first run with --ipfix ends them; flowtop learns of their end from
	// its dumps only.
	fmt.Printf("  flows made while nothing listened (no DESTROY events), then the churn's own flows:\n")
	r, err := runIPFIX(bin, x, t, true, rate, window)
	if err != nil {
		return err
	}
	printIPFIXRun(0, &r)
	fmt.Printf("  steady state (every flow ending was made while flowtop or the bench listened):\n")
	var results []ipfixRun
	for i := range runs {
		for _, on := range []bool{false, true} {
			r, err := runIPFIX(bin, x, t, on, rate, window)
			if err != nil {
				return err
			}
			results = append(results, r)
			printIPFIXRun(i+1, &r)
		}
	}
	var off, on []float64
	for _, r := range results {
		if r.on {
			on = append(on, r.cpu)
		} else {
			off = append(off, r.cpu)
		}
	}
	slices.Sort(off)
	slices.Sort(on)
	mOff, mOn := middle(off), middle(on)
	fmt.Printf("IPFIX: flowtop's CPU over %d runs each: %.1f%% (%.1f-%.1f) without --ipfix, %.1f%% (%.1f-%.1f) with: %.2f x, %+.1f points for %d records/s\n",
		runs, mOff, off[0], off[len(off)-1], mOn, on[0], on[len(on)-1], mOn/mOff, mOn-mOff, rate)
	return nil
}

// middle is the median of sorted values (the mean of the middle two for
// an even count).
func middle(sorted []float64) float64 {
	n := len(sorted)
	return (sorted[(n-1)/2] + sorted[n/2]) / 2
}

func printIPFIXRun(i int, r *ipfixRun) {
	h := r.doc.Health
	mode := "without --ipfix"
	if r.on {
		mode = "with --ipfix   "
	}
	run := "first"
	if i > 0 {
		run = fmt.Sprintf("run %d", i)
	}
	fmt.Printf("  %s %s: CPU %5.1f%% (load %s); deleted %d, kernel DESTROY events %d (listener overruns %d); flowtop events %d, overruns %d, resyncs %d, refresh every %gs\n",
		run, mode, r.cpu, r.load, r.ended, r.destroys, r.destroyOverruns, h.Events, h.Overruns, h.Resyncs, h.RefreshIntervalS)
	if !r.on {
		return
	}
	e := h.Exporters["ipfix"]
	c := &r.col
	perMsg := 0.0
	if c.messages > 0 {
		perMsg = float64(c.total()) / float64(c.messages)
	}
	fmt.Printf("      collector: %d ended records (%.2f%% of the flows deleted), %d active-timeout, in %d messages (%.1f records each); "+
		"exporter published %d, dropped %d (queue full), errors %d; never reached the exporter %d (the table's ended-flow buffer was full); "+
		"sequence numbers say %d sent (%d lost on the way), socket drops %d, unknown sets %d\n",
		c.ended(), 100*float64(c.ended())/float64(max(r.ended, 1)), c.records[2], c.messages, perMsg,
		e.Published, e.Dropped, e.Errors, int64(r.ended)-int64(e.Published+e.Dropped), c.sent, int64(c.sent)-int64(c.total()), r.drops, c.unknown)
}

// runIPFIX is one run: flowtop starts on the table, the churn runs for a
// warm-up of 2 s and the window, and the bench waits until the records
// stop coming before it reads flowtop's counters.
func runIPFIX(bin string, x *ns, t *churnTable, on bool, rate int, window time.Duration) (ipfixRun, error) {
	r := ipfixRun{on: on}
	dir, err := os.MkdirTemp("", "flowtop-bench-ipfix")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(dir)
	docPath := filepath.Join(dir, "snapshot.json")
	args := []string{"--no-ui", "--netns", x.path(), "-46TUI", "-n", "-G", "--state-dir", stateDir,
		"--write", docPath, "--write-interval", "1s", "--limit", "1"}
	var col *collector
	if on {
		if col, err = newCollector(); err != nil {
			return r, err
		}
		defer col.close()
		args = append(args, "--ipfix", col.url())
	}
	p, err := startProc(nil, bin, args...)
	if err != nil {
		return r, err
	}
	defer p.stop()
	// Up once its document holds the table.
	err = waitFor(60*time.Second, "flowtop's first document", func() (bool, error) {
		if err := p.running(); err != nil {
			return false, err
		}
		d, ok, err := readDoc(docPath)
		return ok && d.Totals.TableFlows >= t.hi-t.lo, err
	})
	if err != nil {
		return r, err
	}
	dc, err := countDestroys(x)
	if err != nil {
		return r, err
	}
	stopChurn := make(chan struct{})
	type churned struct {
		n   int
		err error
	}
	churnDone := make(chan churned, 1)
	go func() {
		n, err := t.churn(rate, stopChurn)
		churnDone <- churned{n, err}
	}()
	r.cpu = steadyCPUOf(p.pid(), window)
	r.load = loadAvg()
	close(stopChurn)
	c := <-churnDone
	if c.err != nil {
		dc.stop()
		return r, c.err
	}
	r.ended = c.n
	dc.stop()
	r.destroys, r.destroyOverruns = dc.events.Load(), dc.overruns.Load()
	if on {
		// The records still on their way: until every flow deleted has
		// its record, or none came for 5 s (flowtop reports a flow its
		// dump no longer finds after a grace of 2 s).
		waitFor(60*time.Second, "the collector", func() (bool, error) {
			n, last := col.count()
			return n.ended() >= uint64(r.ended) || time.Since(last) > 5*time.Second, nil
		})
		r.col, _ = col.count()
		r.drops = col.drops()
	}
	// A document made after the last record: the exporter's counters are
	// final.
	after := time.Now()
	err = waitFor(10*time.Second, "flowtop's last document", func() (bool, error) {
		d, ok, err := readDoc(docPath)
		if ok && d.Time.After(after) {
			r.doc = d
			return true, nil
		}
		return false, err
	})
	return r, err
}
