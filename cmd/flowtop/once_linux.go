package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/report"
)

// onceStreamed is --once -t 0 --limit N: one dump read into a
// report.Stream, which sums every flow and keeps copies of the N it lists,
// instead of into the table: a table's records, index and snapshot would
// be built for one document and dropped.
func onceStreamed(ctx context.Context, o *options, k *kernelSide, stdout io.Writer, log *slog.Logger) error {
	opened := make(chan *lookups, 1)
	go func() { opened <- openLookups(o, log) }() // service files, GeoIP: while the kernel dumps
	var names *lookups
	defer func() {
		if names == nil {
			names = <-opened // an early return: wait to close them
		}
		names.close()
	}()

	host, _ := os.Hostname()
	start := time.Now()
	stream := report.NewStream(report.Options{Host: host, Netns: o.netns, Sort: o.sortKey, Limit: o.limit},
		o.filter, start)
	if _, err := k.src.Dump(stream.Add); err != nil {
		return fmt.Errorf("initial conntrack dump: %w", err)
	}
	h := conntrack.Health{Refresh: time.Since(start), Refreshes: 1, KernelFlows: k.count.Read()}
	h.Accounting, h.Timestamps = k.guard.Enabled()
	k.waitWatchdog()
	if ctx.Err() != nil {
		return nil
	}
	warnUntracked(o, k.activity, h.KernelFlows, k.packetsBefore, log)
	names = <-opened
	stream.SetNames(names.names)
	doc := stream.Prepare(h)
	awaitOwners(ctx, names.names, doc)
	names.addHealth(&doc.Health) // with the owners just found
	warnUncounted(log, doc.Health.UncountedFlows)
	return doc.Encode(stdout)
}
