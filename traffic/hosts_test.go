package traffic

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flowtop/flowtop/conntrack"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// flow makes a TCP flow from src to dst without NAT.
func flow(id uint32, src string, sport uint16, dst string, dport uint16) conntrack.Flow {
	o := conntrack.Tuple{Src: conntrack.MustParseAddr(src), Dst: conntrack.MustParseAddr(dst), SrcPort: sport, DstPort: dport}
	fam := conntrack.IPv4
	if o.Src.IP().Is6() {
		fam = conntrack.IPv6
	}
	return conntrack.Flow{ID: id, Family: fam, Proto: conntrack.ProtoTCP, State: 3, HasCounters: true, Orig: o,
		Reply: conntrack.Tuple{Src: o.Dst, Dst: o.Src, SrcPort: dport, DstPort: sport}}
}

// counted returns f with the given byte counts (and a packet per 100
// bytes).
func counted(f conntrack.Flow, orig, reply uint64) conntrack.Flow {
	f.OrigCount = conntrack.Counter{Bytes: orig, Packets: orig / 100}
	f.ReplyCount = conntrack.Counter{Bytes: reply, Packets: reply / 100}
	return f
}

var seqTime = t0

// snap makes a snapshot of the flows, each later than the last.
func snap(flows ...conntrack.Flow) *conntrack.Snapshot {
	seqTime = seqTime.Add(time.Second)
	return &conntrack.Snapshot{Time: seqTime, Flows: conntrack.Pointers(flows), TableFlows: len(flows),
		Filter: allFilter()}
}

func allFilter() conntrack.Filter {
	f := conntrack.Filter{IPv4: true, IPv6: true}
	f.AllProtos()
	return f
}

func ended(f conntrack.Flow) *conntrack.Ended {
	return &conntrack.Ended{Flow: f, Stop: seqTime}
}

// hostSample is what the assertions compare of a Host.
type hostSample struct {
	label            string
	rxBytes, txBytes uint64
	rxPkts, txPkts   uint64
	flows            int
}

// samples returns the hosts' counters as Hosts lists them.
func samples(a *Accounting) []hostSample {
	var out []hostSample
	for _, h := range a.Hosts() {
		out = append(out, hostSample{label: h.Label, rxBytes: h.RxBytes, txBytes: h.TxBytes,
			rxPkts: h.RxPackets, txPkts: h.TxPackets, flows: h.Flows})
	}
	return out
}

// hostBytes maps each host label to its [rx, tx] bytes.
func hostBytes(a *Accounting) map[string][2]uint64 {
	m := map[string][2]uint64{}
	for _, h := range samples(a) {
		m[h.label] = [2]uint64{h.rxBytes, h.txBytes}
	}
	return m
}

// TestHostCountersSurviveExpiry: a flow's bytes stay counted once it ends,
// and its end counts the bytes it carried since the last snapshot, once,
// whatever the order in which the record and the snapshots arrive.
func TestHostCountersSurviveExpiry(t *testing.T) {
	x := flow(1, "192.168.1.10", 40000, "203.0.113.5", 443)
	a := New(nil, 0)
	a.Fold(snap()) // the first snapshot is the baseline

	a.Fold(snap(counted(x, 1000, 5000)))
	want := map[string][2]uint64{"192.168.1.10": {5000, 1000}}
	if diff := cmp.Diff(want, hostBytes(a)); diff != "" {
		t.Fatalf("after the first snapshot with the flow (-want +got):\n%s", diff)
	}
	// A snapshot made before the flow ended, folded after its record:
	// nothing more.
	late := snap(counted(x, 1400, 6000))
	a.Ended(ended(counted(x, 1500, 7000)))
	want = map[string][2]uint64{"192.168.1.10": {7000, 1500}}
	if diff := cmp.Diff(want, hostBytes(a)); diff != "" {
		t.Fatalf("after the ended record (-want +got):\n%s", diff)
	}
	a.Fold(late)
	if diff := cmp.Diff(want, hostBytes(a)); diff != "" {
		t.Fatalf("after a snapshot taken before the end (-want +got):\n%s", diff)
	}
	a.Fold(snap())
	if diff := cmp.Diff(want, hostBytes(a)); diff != "" {
		t.Fatalf("after a snapshot without the flow (-want +got):\n%s", diff)
	}
	if got := samples(a)[0].flows; got != 0 {
		t.Errorf("host flows = %d after the flow ended, want 0", got)
	}
}

// TestShortFlowCountedOnce: a flow that began and ended between two folds
// is counted from its ended record, and a snapshot that still lists it
// adds nothing.
func TestShortFlowCountedOnce(t *testing.T) {
	x := flow(7, "10.1.1.1", 5000, "198.51.100.1", 80)
	a := New(nil, 0)
	a.Fold(snap())
	listed := snap(counted(x, 300, 900))
	a.Ended(ended(counted(x, 400, 1000)))
	a.Fold(listed)
	a.Fold(snap())
	want := map[string][2]uint64{"10.1.1.1": {1000, 400}}
	if diff := cmp.Diff(want, hostBytes(a)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestFirstSnapshotIsBaseline: bytes flows carried before flowtop started
// are not counted, what they carry after is.
func TestFirstSnapshotIsBaseline(t *testing.T) {
	x := flow(1, "192.168.1.10", 40000, "203.0.113.5", 443)
	a := New(nil, 0)
	a.Fold(snap(counted(x, 1e9, 2e9)))
	a.Fold(snap(counted(x, 1e9+10, 2e9+20)))
	want := map[string][2]uint64{"192.168.1.10": {20, 10}}
	if diff := cmp.Diff(want, hostBytes(a)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestZeroedCountersNeverGoDown: conntrack -Z zeroes a flow's counters;
// the host counter goes on from there instead of going down.
func TestZeroedCountersNeverGoDown(t *testing.T) {
	x := flow(1, "192.168.1.10", 40000, "203.0.113.5", 443)
	a := New(nil, 0)
	a.Fold(snap())
	a.Fold(snap(counted(x, 500, 500)))
	a.Fold(snap(counted(x, 0, 0)))
	a.Fold(snap(counted(x, 30, 40)))
	want := map[string][2]uint64{"192.168.1.10": {540, 530}}
	if diff := cmp.Diff(want, hostBytes(a)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestDirections: which end of a flow is a local host, and which way its
// bytes go, with NAT.
func TestDirections(t *testing.T) {
	// A LAN host behind SNAT: the reply goes to the router's public
	// address, which is not a host.
	snat := counted(flow(1, "192.168.1.10", 40000, "203.0.113.5", 443), 100, 1000)
	snat.Reply.Dst = conntrack.MustParseAddr("198.51.100.1")
	// A port forward (DNAT) to a LAN server: the answering host is the
	// reply's source.
	dnat := counted(flow(2, "203.0.113.9", 50000, "198.51.100.1", 8080), 200, 2000)
	dnat.Reply.Src = conntrack.MustParseAddr("192.168.1.20")
	// Two LAN hosts: both are counted, each from its side.
	lan := counted(flow(3, "192.168.1.10", 40001, "192.168.1.20", 22), 30, 300)
	// IPv6 ULA to a global address.
	ula := counted(flow(4, "fd00::5", 40002, "2001:db8::1", 443), 40, 400)
	// Two remote ends (routed through): no host.
	remote := counted(flow(5, "203.0.113.1", 1, "203.0.113.2", 2), 50, 500)
	// CGNAT space is not local by default.
	cgnat := counted(flow(6, "100.64.0.1", 1, "203.0.113.2", 2), 60, 600)

	a := New(nil, 0)
	a.Fold(snap())
	a.Fold(snap(snat, dnat, lan, ula, remote, cgnat))
	got := map[string]hostSample{}
	for _, h := range samples(a) {
		got[h.label] = h
	}
	want := map[string]hostSample{
		"192.168.1.10": {label: "192.168.1.10", txBytes: 100 + 30, rxBytes: 1000 + 300, txPkts: 1, rxPkts: 10 + 3, flows: 2},
		"192.168.1.20": {label: "192.168.1.20", txBytes: 2000 + 300, rxBytes: 200 + 30, txPkts: 20 + 3, rxPkts: 2, flows: 2},
		"fd00::5":      {label: "fd00::5", txBytes: 40, rxBytes: 400, rxPkts: 4, flows: 1},
	}
	if diff := cmp.Diff(want, got, cmp.AllowUnexported(hostSample{})); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	// Addresses order the hosts, IPv4 before IPv6.
	var order []string
	for _, h := range samples(a) {
		order = append(order, h.label)
	}
	if diff := cmp.Diff([]string{"192.168.1.10", "192.168.1.20", "fd00::5"}, order); diff != "" {
		t.Errorf("order (-want +got):\n%s", diff)
	}
}

// TestLocalNetsGiven: --local-net replaces the default ranges.
func TestLocalNetsGiven(t *testing.T) {
	a := New([]netip.Prefix{netip.MustParsePrefix("100.64.0.0/10")}, 0)
	a.Fold(snap())
	a.Fold(snap(counted(flow(1, "100.64.3.4", 1, "203.0.113.2", 2), 10, 20),
		counted(flow(2, "192.168.1.10", 1, "203.0.113.2", 2), 10, 20)))
	want := map[string][2]uint64{"100.64.3.4": {20, 10}}
	if diff := cmp.Diff(want, hostBytes(a)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// TestHostLimit: hosts beyond the limit are summed under "other" and
// counted; when the table is full, a host idle for an hour gives its
// series up to a new one.
func TestHostLimit(t *testing.T) {
	a := New(nil, 2)
	a.Fold(snap())
	f1 := counted(flow(1, "10.0.0.1", 1, "203.0.113.2", 2), 1, 10)
	f2 := counted(flow(2, "10.0.0.2", 1, "203.0.113.2", 2), 2, 20)
	f3 := counted(flow(3, "10.0.0.3", 1, "203.0.113.2", 2), 3, 30)
	f4 := counted(flow(4, "10.0.0.4", 1, "203.0.113.2", 2), 4, 40)
	a.Fold(snap(f1, f2, f3, f4))
	want := map[string][2]uint64{"10.0.0.1": {10, 1}, "10.0.0.2": {20, 2}, "other": {70, 7}}
	if diff := cmp.Diff(want, hostBytes(a)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if a.overflow != 2 {
		t.Errorf("overflow = %d, want 2", a.overflow)
	}

	// 10.0.0.1's flow ends; an hour later a new host takes its place,
	// while 10.0.0.2, still busy, keeps its own.
	a.Ended(ended(f1))
	a.Fold(snap(f2))
	seqTime = seqTime.Add(hostIdle)
	f5 := counted(flow(5, "10.0.0.5", 1, "203.0.113.2", 2), 5, 50)
	a.Fold(snap(f2))
	a.Fold(snap(f2, f5))
	want = map[string][2]uint64{"10.0.0.2": {20, 2}, "10.0.0.5": {50, 5}, "other": {70, 7}}
	if diff := cmp.Diff(want, hostBytes(a)); diff != "" {
		t.Errorf("after eviction (-want +got):\n%s", diff)
	}
}

// TestAccountingModel drives the accounting with random kernel histories
// (flows that start, grow, end; snapshots folded late or skipped; ended
// records counted before or after snapshots that still list their flow;
// the table's order kept, changed by its swap-remove, or shuffled; kernel
// IDs shared by several flows) and checks that no host counter ever goes down and that, once every
// flow has ended, each host counted exactly the bytes of its flows.
func TestAccountingModel(t *testing.T) {
	for seed := range uint64(200) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runModel(t, seed) })
	}
}

func runModel(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	hosts := []string{"192.168.0.1", "192.168.0.2", "fd00::1", "10.9.9.9"}
	var kernel, all []*conntrack.Flow // the table's order; every flow ever
	want := map[string][2]uint64{}
	a := New(nil, 0)
	a.Fold(snap())
	var published []*conntrack.Snapshot // made but not folded yet
	var records []*conntrack.Ended      // sent but not counted yet
	last := map[string][2]uint64{}
	check := func(when string) {
		t.Helper()
		for h, got := range hostBytes(a) {
			if got[0] < last[h][0] || got[1] < last[h][1] {
				t.Fatalf("%s: host %s went down from %v to %v", when, h, last[h], got)
			}
			last[h] = got
		}
	}
	publish := func() {
		live := make([]conntrack.Flow, len(kernel))
		for i, f := range kernel {
			live[i] = *f
		}
		if rng.IntN(10) == 0 {
			rng.Shuffle(len(live), func(i, j int) { live[i], live[j] = live[j], live[i] })
		}
		published = append(published, snap(live...))
	}
	id := uint32(0)
	for step := 0; step < 300; step++ {
		switch r := rng.IntN(10); {
		case r < 2: // a new flow
			id++
			src := hosts[rng.IntN(len(hosts))]
			dst := "203.0.113.7"
			if src == "fd00::1" {
				dst = "2001:db8::7"
			}
			// Few IDs: flows share them, as 32-bit hashes do in big tables.
			f := counted(flow(id%5, src, uint16(1000+id), dst, 443), 0, 0)
			kernel = append(kernel, &f)
			all = append(all, &f)
		case r < 5: // traffic
			for _, f := range kernel {
				if rng.IntN(2) == 0 {
					f.OrigCount.Bytes += uint64(rng.IntN(1000))
					f.ReplyCount.Bytes += uint64(rng.IntN(5000))
				}
			}
		case r < 6: // a flow ends: its record is sent; the table moves its
			// last flow into the place
			if len(kernel) > 0 {
				i := rng.IntN(len(kernel))
				records = append(records, ended(*kernel[i]))
				kernel[i] = kernel[len(kernel)-1]
				kernel = kernel[:len(kernel)-1]
			}
		case r < 8:
			publish()
		default: // a scrape: the collector counts records, then folds the latest
			for _, rec := range records {
				a.Ended(rec)
				check("ended")
			}
			records = nil
			if n := len(published); n > 0 {
				a.Fold(published[n-1])
				check("fold")
				published = nil
			}
		}
	}
	// Everything ends; what the table sends reaches the collector.
	for _, f := range kernel {
		records = append(records, ended(*f))
	}
	kernel = nil
	for _, f := range all {
		h := f.Orig.Src.String()
		want[h] = [2]uint64{want[h][0] + f.ReplyCount.Bytes, want[h][1] + f.OrigCount.Bytes}
	}
	// The latest snapshot, made before the last ends, may be folded
	// after their records.
	for _, rec := range records {
		a.Ended(rec)
		check("final ended")
	}
	if n := len(published); n > 0 {
		a.Fold(published[n-1])
		check("late fold")
	}
	publish()
	a.Fold(published[len(published)-1])
	check("final fold")
	got := hostBytes(a)
	for h, w := range want {
		if w == [2]uint64{} {
			delete(want, h)
		}
	}
	for h, g := range got {
		if g == [2]uint64{} {
			delete(got, h)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("bytes counted (-want +got):\n%s", diff)
	}
	if len(a.flows) != 0 {
		t.Errorf("%d flows remembered after every flow ended", len(a.flows))
	}
}
