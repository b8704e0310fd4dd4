package main

import (
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/conntrack/ctgen"
	"github.com/flowtop/flowtop/conntrack/nstest"
)

// TestBurst creates 20,000 flows (FLOWTOP_TEST_BURST=N for more) in under a second while `flowtop --batch`
// runs and checks that within 3 s a snapshot holds every flow the kernel
// holds, with any event overrun shown together with its resync.
func TestBurst(t *testing.T) {
	nstest.Require(t, "nft")
	flowtopBinary(t)
	a := nstest.New(t, "u")
	a.EnableConntrack(t)
	count := sysctl(t, a, conntrack.SysctlCount)
	burstFlows := 20000
	if n, err := strconv.Atoi(os.Getenv("FLOWTOP_TEST_BURST")); err == nil && n > burstFlows {
		burstFlows = n
	}

	// --limit keeps the lines short; totals still count every flow.
	p := startFlowtop(t, "--batch", "-t", "1", "-46TUI", "--limit", "3", "--netns", a.Path(), "--state-dir", t.TempDir())
	decodeDoc(t, p.next(t, 5*time.Second))

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
	if burst > time.Second && burstFlows <= 20000 {
		t.Errorf("creating %d flows took %v, want under a second for a burst", burstFlows, burst)
	}
	if kernel < burstFlows {
		t.Fatalf("nf_conntrack_count %d after creating %d flows", kernel, burstFlows)
	}

	end := start.Add(burst)
	deadline := end.Add(3 * time.Second)
	for {
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("no snapshot within 3 s of the burst holds the kernel's %s flows", count())
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

// TestOnceBigTable: `flowtop --once -t 0` on a namespace holding 30,000
// flows (its first dump is read on two goroutines, its records share one
// slab) lists exactly the flows conntrack -L lists.
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
	const n = 30_000
	if err := ctgen.CreateUDPFlows(int(nsf.Fd()), n); err != nil {
		t.Fatalf("create flows: %v", err)
	}
	want := conntrackList(t, a)
	if len(want) < n {
		t.Fatalf("conntrack -L lists %d flows after creating %d", len(want), n)
	}
	out, stderr, code := runBinary(t, 30*time.Second, "--once", "-t", "0", "-46TUDIS", "-n", "-G",
		"--limit", "0", "--netns", a.Path(), "--state-dir", t.TempDir())
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	d := decodeDoc(t, out)
	got := map[string]bool{}
	for i := range d.Flows {
		got[docFlowKey(&d.Flows[i])] = true
	}
	if d.Totals.Flows != len(want) || len(got) != len(want) {
		t.Errorf("flowtop lists %d flows (%d distinct, totals.flows %d), conntrack -L %d",
			len(d.Flows), len(got), d.Totals.Flows, len(want))
	}
	for k := range want {
		if !got[k] {
			t.Fatalf("flow %s of conntrack -L missing from flowtop --once", k)
		}
	}

	// With a limit the dump goes straight into the document (no table):
	// the totals still count every flow, the listed ones are real.
	out, stderr, code = runBinary(t, 30*time.Second, "--once", "-t", "0", "-46TUDIS", "-n", "-G",
		"--limit", "5", "--sort", "age", "--netns", a.Path(), "--state-dir", t.TempDir())
	if code != 0 {
		t.Fatalf("--limit 5: exit %d: %s", code, stderr)
	}
	d = decodeDoc(t, out)
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
