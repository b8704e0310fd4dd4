package main

import (
	"encoding/json"
	"github.com/flowtop/flowtop/conntrack/kernel"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack/ctgen"
	"github.com/flowtop/flowtop/conntrack/nstest"
	"github.com/flowtop/flowtop/report"
)

// TestBurst creates 20,000 flows (FLOWTOP_TEST_BURST=N for more) in one
// batched go while `flowtop --batch` runs and checks that a snapshot comes
// to hold every flow the kernel holds, with any event overrun shown
// together with its resync. How long creating and catching up took is
// logged: the speed is flowtop-bench's to measure (docs/BENCHMARKS.md),
// not a deadline's on a shared machine.
func TestBurst(t *testing.T) {
	nstest.Require(t, "nft")
	flowtopBinary(t)
	a := nstest.New(t, "u")
	a.EnableConntrack(t)
	count := sysctl(t, a, kernel.SysctlCount)
	burstFlows := 20000
	if n, err := strconv.Atoi(os.Getenv("FLOWTOP_TEST_BURST")); err == nil && n > burstFlows {
		burstFlows = n
	}

	// --limit keeps the lines short; totals still count every flow.
	p := startFlowtop(t, "--batch", "-t", "1", "-46TUI", "--limit", "3", "--netns", a.Path(), "--state-dir", t.TempDir())
	decodeDoc(t, p.next(t, nstest.Patience))

	nsf, err := os.Open(a.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer nsf.Close()
	msgs, err := ctgen.UDPFlowMessages(burstFlows)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := ctgen.SendBatched(int(nsf.Fd()), msgs); err != nil {
		t.Fatalf("create flows: %v", err)
	}
	burst := time.Since(start)
	kernel, _ := strconv.Atoi(count())
	t.Logf("burst: %d flows created in %v (%.0f/s); nf_conntrack_count %d",
		burstFlows, burst.Round(time.Millisecond), float64(burstFlows)/burst.Seconds(), kernel)
	if kernel < burstFlows {
		t.Fatalf("nf_conntrack_count %d after creating %d flows", kernel, burstFlows)
	}

	end := start.Add(burst)
	deadline := end.Add(nstest.Patience)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("no snapshot within %v of the burst holds the kernel's %s flows", nstest.Patience, count())
		}
		line := p.next(t, left)
		got := time.Since(end)
		d := decodeDoc(t, line)
		kernel, _ := strconv.Atoi(count())
		h := d.Health
		t.Logf("after %v: table_flows %d, flows %d, kernel %d (health.kernel_flows %d); events %d, overruns %d, resyncs %d, refresh %.1f ms",
			got.Round(time.Millisecond), d.Totals.TableFlows, d.Totals.Flows, kernel, h.KernelFlows,
			h.Events, h.Overruns, h.Resyncs, h.RefreshMS)
		if h.Overruns > 0 && h.Resyncs == 0 {
			t.Errorf("health shows %d overruns and no resync", h.Overruns)
		}
		if len(d.Flows) > 3 {
			t.Errorf("--limit 3 listed %d flows", len(d.Flows))
		}
		if d.Totals.TableFlows == kernel && d.Totals.Flows == kernel {
			t.Logf("burst: every flow the kernel holds (%d) is in the snapshot %v after the burst ended", kernel, got.Round(time.Millisecond))
			break
		}
	}
}

// TestOnceBigTable: `flowtop --once -t 0` on a namespace holding 10,000
// flows (its first dump is read on two goroutines, its records share one
// slab) lists exactly the flows conntrack -L lists. 10,000 flows fill
// dozens of the kernel's 32 KiB dump datagrams, more than the 16 the
// reader may hold ahead; with 30,000 this test took 46-54 s of a loaded CI
// machine (the -race test binary decoding an 18 MB document), the longest
// of the suite.
func TestOnceBigTable(t *testing.T) {
	nstest.Require(t, "nft", "conntrack")
	flowtopBinary(t)
	a := nstest.New(t, "o")
	a.EnableConntrack(t)
	nsf, err := os.Open(a.Path())
	if err != nil {
		t.Fatal(err)
	}
	defer nsf.Close()
	const n = 10_000
	if err := ctgen.CreateUDPFlows(int(nsf.Fd()), n); err != nil {
		t.Fatalf("create flows: %v", err)
	}
	want := conntrackList(t, a)
	if len(want) < n {
		t.Fatalf("conntrack -L lists %d flows after creating %d", len(want), n)
	}
	out, stderr, code := runBinary(t, 2*time.Minute, "--once", "-t", "0", "-46TUDIS", "-n", "-G",
		"--limit", "0", "--netns", a.Path(), "--state-dir", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d: %s", code, nstest.Truncate(stderr))
	}
	totals, keys := decodeFlowKeys(t, out)
	got := map[string]bool{}
	for _, k := range keys {
		got[k] = true
	}
	if totals.Flows != len(want) || len(got) != len(want) {
		t.Errorf("flowtop lists %d flows (%d distinct, totals.flows %d), conntrack -L %d",
			len(keys), len(got), totals.Flows, len(want))
	}
	for k := range want {
		if !got[k] {
			t.Fatalf("flow %s of conntrack -L missing from flowtop --once", k)
		}
	}

	// With a limit the dump goes straight into the document (no table):
	// the totals still count every flow, the listed ones are real.
	out, stderr, code = runBinary(t, 2*time.Minute, "--once", "-t", "0", "-46TUDIS", "-n", "-G",
		"--limit", "5", "--sort", "age", "--netns", a.Path(), "--state-dir", t.TempDir())
	if code != 0 {
		t.Fatalf("--limit 5: exit %d: %s", code, nstest.Truncate(stderr))
	}
	d := decodeDoc(t, out)
	if d.Totals.Flows != len(want) || d.Totals.TableFlows != len(want) || d.Totals.Listed != 5 || len(d.Flows) != 5 {
		t.Errorf("--limit 5: totals.flows %d, table_flows %d, listed %d (%d flows), want %d, %d, 5",
			d.Totals.Flows, d.Totals.TableFlows, d.Totals.Listed, len(d.Flows), len(want), len(want))
	}
	if d.Health.KernelFlows != len(want) || d.Health.Refreshes != 1 || !d.Health.Accounting {
		t.Errorf("--limit 5: health %+v", d.Health)
	}
	for i := range d.Flows {
		if _, ok := want[docFlowKey(&d.Flows[i])]; !ok {
			t.Errorf("--limit 5 lists %s, which conntrack -L does not", docFlowKey(&d.Flows[i]))
		}
		if i > 0 && d.Flows[i].AgeS != nil && d.Flows[i-1].AgeS != nil && *d.Flows[i].AgeS > *d.Flows[i-1].AgeS {
			t.Errorf("--sort age: flow %d is older than flow %d", i, i-1)
		}
	}
}

// decodeFlowKeys decodes the totals and the key (docFlowKey) of each flow
// of a document, and nothing else: a -race test binary decodes JSON at
// about 2 MB/s, and without the other keys a third faster.
func decodeFlowKeys(t *testing.T, line []byte) (report.Totals, []string) {
	t.Helper()
	var d struct {
		Totals report.Totals `json:"totals"`
		Flows  []struct {
			Family, Proto, Src, Dst string
			Sport, Dport            uint16
			ICMPType                *uint8  `json:"icmp_type"`
			ICMPCode                *uint8  `json:"icmp_code"`
			ICMPID                  *uint16 `json:"icmp_id"`
		} `json:"flows"`
	}
	if err := json.Unmarshal(line, &d); err != nil {
		t.Fatalf("snapshot is not a JSON document: %v: %s", err, nstest.Truncate(string(line)))
	}
	keys := make([]string, len(d.Flows))
	for i, f := range d.Flows {
		keys[i] = flowKey(f.Family, f.Proto, f.Src, f.Dst, f.Sport, f.Dport, f.ICMPType, f.ICMPCode, f.ICMPID)
	}
	return d.Totals, keys
}
