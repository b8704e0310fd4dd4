package metrics

import (
	"context"
	"slices"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/report"
	"github.com/flowtop/flowtop/traffic"
)

// Metric names. Base units (bytes, seconds), _total on counters, _info
// for the labels-only build metric; no label takes a remote address or a
// port.
const (
	mBuildInfo        = "flowtop_build_info"
	mFlows            = "flowtop_flows"
	mTableFlows       = "flowtop_table_flows"
	mEntries          = "flowtop_conntrack_entries"
	mEntriesLimit     = "flowtop_conntrack_entries_limit"
	mAccounting       = "flowtop_conntrack_accounting_enabled"
	mTimestamps       = "flowtop_conntrack_timestamps_enabled"
	mEvents           = "flowtop_events_total"
	mOverruns         = "flowtop_event_overruns_total"
	mResyncs          = "flowtop_resyncs_total"
	mDumps            = "flowtop_dumps_total"
	mDumpDuration     = "flowtop_dump_duration_seconds"
	mRefreshInterval  = "flowtop_refresh_interval_seconds"
	mSnapshotTime     = "flowtop_last_snapshot_timestamp_seconds"
	mEndedDropped     = "flowtop_ended_records_dropped_total"
	mExpPublished     = "flowtop_exporter_published_total"
	mExpDropped       = "flowtop_exporter_dropped_total"
	mExpErrors        = "flowtop_exporter_errors_total"
	mExpConnected     = "flowtop_exporter_connected"
	mHostRxBytes      = "flowtop_host_receive_bytes_total"
	mHostTxBytes      = "flowtop_host_transmit_bytes_total"
	mHostRxPackets    = "flowtop_host_receive_packets_total"
	mHostTxPackets    = "flowtop_host_transmit_packets_total"
	mHostFlows        = "flowtop_host_flows"
	mHosts            = "flowtop_hosts"
	mHostOverflow     = "flowtop_host_overflow_flows_total"
	mStatPrefix       = "flowtop_conntrack_stat_"
	hostLabel         = "host"
	exporterLabel     = "exporter"
	statCounterSuffix = "_total"
)

// kernelStatNames names the kernel's counters as conntrack -S and
// node_exporter (node_nf_conntrack_stat_*) do.
var kernelStatNames = []struct {
	name, help string
	value      func(*conntrack.KernelStats) uint64
}{
	{"found", "Conntrack lookups that found an entry.", func(s *conntrack.KernelStats) uint64 { return s.Found }},
	{"invalid", "Packets conntrack could not track.", func(s *conntrack.KernelStats) uint64 { return s.Invalid }},
	{"insert", "Conntrack entries inserted (not counted by recent kernels).", func(s *conntrack.KernelStats) uint64 { return s.Insert }},
	{"insert_failed", "Conntrack entries that could not be inserted (lost a race or a full table).", func(s *conntrack.KernelStats) uint64 { return s.InsertFailed }},
	{"drop", "Packets dropped because no conntrack entry could be made for them.", func(s *conntrack.KernelStats) uint64 { return s.Drop }},
	{"early_drop", "Conntrack entries evicted early to make room in a full table.", func(s *conntrack.KernelStats) uint64 { return s.EarlyDrop }},
	{"error", "ICMP and ICMPv6 errors that matched no conntrack entry.", func(s *conntrack.KernelStats) uint64 { return s.Error }},
	{"search_restart", "Conntrack lookups restarted because the hash table was resized.", func(s *conntrack.KernelStats) uint64 { return s.SearchRestart }},
}

// Gather writes the exposition of all metrics, appended to dst.
func (c *Collector) Gather(ctx context.Context, dst []byte) ([]byte, error) {
	v, err := c.collect(ctx)
	if err != nil {
		return dst, err
	}
	var h report.Health
	if c.health != nil {
		c.health(&h)
	}
	kernel, kernelOK := c.kernelStats()
	w := &expWriter{b: dst}
	c.writeBuild(w)
	writeSnapshot(w, v)
	if drops, ok := endedDrops(h.Exporters); ok {
		w.header(mEndedDropped, typeCounter, "Ended-flow records the table dropped because a consumer was slow (host counters miss their last bytes).")
		w.uint(mEndedDropped, drops)
	}
	writeExporters(w, h.Exporters)
	if kernelOK {
		writeKernel(w, &kernel)
	}
	writeHosts(w, v)
	return w.b, nil
}

// endedDrops sums the ended-flow records the table dropped over the
// exporters' subscriptions, which are all the table's in flowtop; ok is
// false when no exporter has one.
func endedDrops(exporters map[string]report.ExporterHealth) (n uint64, ok bool) {
	for _, e := range exporters {
		if e.EndedDropped != nil {
			n += *e.EndedDropped
			ok = true
		}
	}
	return n, ok
}

func (c *Collector) writeBuild(w *expWriter) {
	w.header(mBuildInfo, typeGauge, "flowtop's version and the Go version it was built with; always 1.")
	w.uint(mBuildInfo, 1, label{"version", c.cfg.Version}, label{"goversion", c.cfg.GoVersion})
}

// writeSnapshot writes the flow counts and the kernel side's health.
func writeSnapshot(w *expWriter, v *view) {
	s := v.snap
	if s == nil {
		return
	}
	if len(v.classes) > 0 {
		w.header(mFlows, typeGauge, "Flows passing flowtop's filter, by address family, protocol and protocol state.")
		for _, c := range v.classes {
			w.uint(mFlows, uint64(c.n), label{"family", c.family}, label{"proto", c.proto}, label{"state", c.state})
		}
	}
	h := &s.Health
	w.header(mTableFlows, typeGauge, "Flows in flowtop's table, before its filter.")
	w.uint(mTableFlows, uint64(s.TableFlows))
	if h.KernelFlows >= 0 {
		w.header(mEntries, typeGauge, "Entries in the kernel's conntrack table (nf_conntrack_count).")
		w.uint(mEntries, uint64(h.KernelFlows))
	}
	w.header(mAccounting, typeGauge, "Whether nf_conntrack_acct is on (1): without it flows carry no byte counts.")
	w.uint(mAccounting, boolValue(h.Accounting))
	w.header(mTimestamps, typeGauge, "Whether nf_conntrack_timestamp is on (1).")
	w.uint(mTimestamps, boolValue(h.Timestamps))
	w.header(mEvents, typeCounter, "Conntrack events applied to the table.")
	w.uint(mEvents, h.Events)
	w.header(mOverruns, typeCounter, "Netlink receive-buffer overruns: conntrack events the kernel dropped before flowtop read them.")
	w.uint(mOverruns, h.Overruns)
	w.header(mResyncs, typeCounter, "Full dumps made to repair the table after an overrun.")
	w.uint(mResyncs, h.Resyncs)
	w.header(mDumps, typeCounter, "Full dumps of the conntrack table (counter refreshes).")
	w.uint(mDumps, h.Refreshes)
	w.header(mDumpDuration, typeGauge, "How long the last full dump of the conntrack table took.")
	w.float(mDumpDuration, h.Refresh.Seconds())
	w.header(mRefreshInterval, typeGauge, "Effective counter refresh interval: -t, or longer when a full dump costs more than a quarter of it.")
	w.float(mRefreshInterval, h.RefreshEvery.Seconds())
	w.header(mSnapshotTime, typeGauge, "When the last snapshot of the table was made, in seconds since the Unix epoch.")
	w.float(mSnapshotTime, float64(s.Time.UnixNano()/int64(time.Millisecond))/1e3)
}

// writeExporters writes each exporter's counters, by exporter name.
func writeExporters(w *expWriter, exporters map[string]report.ExporterHealth) {
	if len(exporters) == 0 {
		return
	}
	names := make([]string, 0, len(exporters))
	for n := range exporters {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, m := range []struct {
		name, help string
		value      func(report.ExporterHealth) uint64
	}{
		{mExpPublished, "Messages or files an exporter published.", func(e report.ExporterHealth) uint64 { return e.Published }},
		{mExpDropped, "Messages an exporter dropped (queue full, broker gone).", func(e report.ExporterHealth) uint64 { return e.Dropped }},
		{mExpErrors, "Errors an exporter met.", func(e report.ExporterHealth) uint64 { return e.Errors }},
	} {
		w.header(m.name, typeCounter, m.help)
		for _, n := range names {
			w.uint(m.name, m.value(exporters[n]), label{exporterLabel, n})
		}
	}
	headed := false
	for _, n := range names {
		if c := exporters[n].Connected; c != nil {
			if !headed {
				w.header(mExpConnected, typeGauge, "Whether an exporter is connected to its server (1).")
				headed = true
			}
			w.uint(mExpConnected, boolValue(*c), label{exporterLabel, n})
		}
	}
}

// writeKernel writes the kernel's conntrack statistics.
func writeKernel(w *expWriter, s *conntrack.KernelStats) {
	if s.Max >= 0 {
		w.header(mEntriesLimit, typeGauge, "Size limit of the kernel's conntrack table (nf_conntrack_max).")
		w.uint(mEntriesLimit, uint64(s.Max))
	}
	for _, st := range kernelStatNames {
		// The names are constants: concatenating them allocates once per
		// scrape, which is nothing next to the host series.
		name := mStatPrefix + st.name + statCounterSuffix
		w.header(name, typeCounter, st.help+" Summed over CPUs; a per-CPU count wraps at 2^32.")
		w.uint(name, st.value(s))
	}
}

// writeHosts writes the per-host counters.
func writeHosts(w *expWriter, v *view) {
	w.header(mHosts, typeGauge, "Local hosts with series of their own.")
	w.uint(mHosts, uint64(v.tracked))
	w.header(mHostOverflow, typeCounter, "Flows of local hosts beyond the host limit, counted under host=\"other\".")
	w.uint(mHostOverflow, v.overflow)
	if len(v.hosts) == 0 {
		return
	}
	for _, m := range []struct {
		name, typ, help string
		value           func(*traffic.Host) uint64
	}{
		{mHostRxBytes, typeCounter, "Bytes a local host received, in the flows it had with any peer (layer 3, as conntrack counts them).", func(h *traffic.Host) uint64 { return h.RxBytes }},
		{mHostTxBytes, typeCounter, "Bytes a local host sent, in the flows it had with any peer (layer 3, as conntrack counts them).", func(h *traffic.Host) uint64 { return h.TxBytes }},
		{mHostRxPackets, typeCounter, "Packets a local host received.", func(h *traffic.Host) uint64 { return h.RxPackets }},
		{mHostTxPackets, typeCounter, "Packets a local host sent.", func(h *traffic.Host) uint64 { return h.TxPackets }},
		{mHostFlows, typeGauge, "Flows a local host has now.", func(h *traffic.Host) uint64 { return uint64(h.Flows) }},
	} {
		w.header(m.name, m.typ, m.help)
		for i := range v.hosts {
			w.uint(m.name, m.value(&v.hosts[i]), label{hostLabel, v.hosts[i].Label})
		}
	}
}
