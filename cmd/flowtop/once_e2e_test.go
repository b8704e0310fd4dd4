package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/flowtop/flowtop/conntrack/kernel"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/conntrack/nstest"
	"github.com/flowtop/flowtop/report"
)

// isPairFlow reports whether both ends of a flow are the addresses of A and
// B (leaving out neighbour discovery and the like).
func isPairFlow(key string) bool {
	ends := 0
	for _, a := range []string{nstest.AddrA4, nstest.AddrB4, nstest.AddrA6, nstest.AddrB6} {
		ends += strings.Count(key, " "+a+":") + strings.Count(key, ">"+a+":") +
			strings.Count(key, " "+a+">") + strings.Count(key, ">"+a+" ")
	}
	return ends == 2
}

// TestOnceListsKernelFlows runs `flowtop --once -46TUI --netns A` against a
// namespace with TCP, UDP and ICMP traffic over IPv4 and IPv6 and compares
// its document with `conntrack -L -o extended` readings taken just before
// and just after.
func TestOnceListsKernelFlows(t *testing.T) {
	nstest.Require(t, "nft", "conntrack")
	flowtopBinary(t) // built before anything is timed
	a, b := nstest.Pair(t)
	// Counters and start times exist only for flows created while these
	// are on; flowtop records 1 and leaves them at 1.
	a.WriteSysctl(t, kernel.SysctlAcct, "1")
	a.WriteSysctl(t, kernel.SysctlTimestamp, "1")
	tr := startTraffic(t, a, b)
	stateDir := t.TempDir()

	before := conntrackList(t, a)
	start := time.Now()
	out, stderr, code := runBinary(t, 15*time.Second, "--once", "-46TUI", "--netns", a.Path(), "--state-dir", stateDir)
	elapsed := time.Since(start)
	after := conntrackList(t, a)
	if code != 0 {
		t.Fatalf("flowtop --once: exit status %d; stderr:\n%s", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n")
	if len(lines) != 1 {
		t.Fatalf("flowtop --once printed %d lines, want 1", len(lines))
	}
	doc := decodeDoc(t, out)
	t.Logf("--once (-t 1) took %v; %d flows; refresh %.2f ms", elapsed, doc.Totals.Flows, doc.Health.RefreshMS)
	if elapsed < time.Second || doc.IntervalS != 1 {
		t.Errorf("--once took %v with interval_s %g: want one refresh interval (1 s) before the document", elapsed, doc.IntervalS)
	}

	t.Run("same flows and counters as conntrack -L", func(t *testing.T) {
		got := map[string]*report.Flow{}
		for i := range doc.Flows {
			f := &doc.Flows[i]
			k := docFlowKey(f)
			if _, dup := got[k]; dup {
				t.Errorf("flow %s listed twice", k)
			}
			got[k] = f
		}
		// Each flow conntrack saw before and after must be listed...
		for k, bf := range before {
			af, ok := after[k]
			if !ok || !isPairFlow(k) {
				continue
			}
			f, ok := got[k]
			if !ok {
				t.Errorf("conntrack -L lists %s, flowtop does not", k)
				continue
			}
			if af.state != "" && f.State != af.state {
				t.Errorf("%s: state %q, conntrack -L says %q", k, f.State, af.state)
			}
			for _, d := range []struct {
				name   string
				dir    report.Direction
				lo, hi conntrack.Counter
			}{{"orig", f.Orig, bf.orig, af.orig}, {"reply", f.Reply, bf.reply, af.reply}} {
				if d.dir.Bytes == nil || d.dir.Packets == nil {
					t.Errorf("%s: %s counters are null although accounting was on", k, d.name)
					continue
				}
				if *d.dir.Bytes < d.lo.Bytes || *d.dir.Bytes > d.hi.Bytes ||
					*d.dir.Packets < d.lo.Packets || *d.dir.Packets > d.hi.Packets {
					t.Errorf("%s: %s %d bytes %d packets, conntrack -L before %d/%d after %d/%d",
						k, d.name, *d.dir.Bytes, *d.dir.Packets, d.lo.Bytes, d.lo.Packets, d.hi.Bytes, d.hi.Packets)
				}
			}
			if f.Start == nil || f.AgeS == nil {
				t.Errorf("%s: no start time although timestamps were on", k)
			}
		}
		// ...and each flow listed must be one conntrack knew.
		for k := range got {
			_, inBefore := before[k]
			_, inAfter := after[k]
			if !inBefore && !inAfter {
				t.Errorf("flowtop lists %s, conntrack -L never did", k)
			}
		}
		// Every kind of traffic made is there.
		var want []string
		for i, fam := range []string{"ipv4", "ipv6"} {
			src, dst, icmpProto, req := nstest.AddrA4, nstest.AddrB4, "icmp", uint8(8)
			if i == 1 {
				src, dst, icmpProto, req = nstest.AddrA6, nstest.AddrB6, "icmpv6", 128
			}
			code, id := uint8(0), uint16(tr.icmpIDs[i])
			want = append(want,
				fmt.Sprintf("%s tcp %s:*>%s:%d", fam, src, dst, tr.tcpPorts[i]),
				fmt.Sprintf("%s udp %s:*>%s:%d", fam, src, dst, tr.udpPorts[i]),
				flowKey(fam, icmpProto, src, dst, 0, 0, &req, &code, &id))
		}
		for _, w := range want {
			prefix, suffix, wild := strings.Cut(w, "*")
			found := slices.ContainsFunc(keys(got), func(k string) bool {
				if !wild {
					return k == w
				}
				return strings.HasPrefix(k, prefix) && strings.HasSuffix(k, suffix)
			})
			if !found {
				t.Errorf("flowtop lists no flow %s; it lists %q", w, keys(got))
			}
		}
		for k, f := range got {
			if strings.Contains(k, " tcp ") && isPairFlow(k) && f.State != "ESTABLISHED" {
				t.Errorf("%s: state %q, want ESTABLISHED", k, f.State)
			}
		}
		byProto := 0
		for _, n := range doc.Totals.ByProto {
			byProto += n
		}
		if doc.Totals.Flows != len(doc.Flows) || byProto != len(doc.Flows) {
			t.Errorf("totals.flows %d, by_proto sums to %d, %d flows listed", doc.Totals.Flows, byProto, len(doc.Flows))
		}
		if doc.Health.KernelFlows < len(doc.Flows) {
			t.Errorf("health.kernel_flows %d < %d flows listed", doc.Health.KernelFlows, len(doc.Flows))
		}
	})

	t.Run("required keys", func(t *testing.T) {
		checkRequiredKeys(t, out)
	})

	t.Run("-t 0 prints right after the dump", func(t *testing.T) {
		start := time.Now()
		out, stderr, code := runBinary(t, 10*time.Second, "--once", "-t", "0", "-46TUI", "--netns", a.Path(), "--state-dir", stateDir)
		elapsed := time.Since(start)
		if code != 0 {
			t.Fatalf("exit status %d; stderr:\n%s", code, stderr)
		}
		d := decodeDoc(t, out)
		t.Logf("--once -t 0 took %v (refresh %.2f ms, %d flows)", elapsed, d.Health.RefreshMS, d.Totals.Flows)
		if d.IntervalS != 0 || elapsed >= time.Second {
			t.Errorf("--once -t 0 took %v, interval_s %g: want the document right after the dump", elapsed, d.IntervalS)
		}
		if d.Totals.Flows != doc.Totals.Flows {
			t.Logf("note: %d flows with -t 0, %d with -t 1", d.Totals.Flows, doc.Totals.Flows)
		}
		checkRequiredKeys(t, out)
	})

	t.Run("--limit 1 keeps the totals", func(t *testing.T) {
		out, stderr, code := runBinary(t, 10*time.Second, "--once", "-t", "0", "-46TUI", "--limit", "1",
			"--netns", a.Path(), "--state-dir", stateDir)
		if code != 0 {
			t.Fatalf("exit status %d; stderr:\n%s", code, stderr)
		}
		d := decodeDoc(t, out)
		if len(d.Flows) != 1 {
			t.Errorf("--limit 1 listed %d flows", len(d.Flows))
		}
		kernel := conntrackList(t, a)
		if d.Totals.Flows < 6 || d.Totals.Flows > len(kernel)+len(before) {
			t.Errorf("--limit 1: totals.flows = %d, want every flow (conntrack -L lists %d)", d.Totals.Flows, len(kernel))
		}
	})

	t.Run("default mask is TCP only", func(t *testing.T) {
		out, stderr, code := runBinary(t, 10*time.Second, "--once", "-t", "0", "--netns", a.Path(), "--state-dir", stateDir)
		if code != 0 {
			t.Fatalf("exit status %d; stderr:\n%s", code, stderr)
		}
		d := decodeDoc(t, out)
		fams := map[string]bool{}
		for _, f := range d.Flows {
			if f.Proto != "tcp" {
				t.Errorf("default mask lists a %s flow", f.Proto)
			}
			fams[f.Family] = true
		}
		if !fams["ipv4"] || !fams["ipv6"] {
			t.Errorf("default mask lists families %v, want both", fams)
		}
	})

	if v := a.ReadSysctl(t, kernel.SysctlAcct); v != "1" {
		t.Errorf("nf_conntrack_acct = %s after flowtop, was 1 before", v)
	}
}

func keys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// checkRequiredKeys checks the keys issue 2 (item 8) requires of every
// snapshot document.
func checkRequiredKeys(t *testing.T, line []byte) {
	t.Helper()
	var doc map[string]any
	if err := json.Unmarshal(line, &doc); err != nil {
		t.Fatal(err)
	}
	need := func(where string, m map[string]any, ks ...string) {
		t.Helper()
		for _, k := range ks {
			if _, ok := m[k]; !ok {
				t.Errorf("%s lacks key %q", where, k)
			}
		}
	}
	obj := func(where string, v any) map[string]any {
		t.Helper()
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s is %T, want an object", where, v)
		}
		return m
	}
	need("document", doc, "version", "host", "time", "interval_s", "totals", "health", "flows")
	if v, _ := doc["version"].(float64); v != 1 {
		t.Errorf("version = %v, want 1", doc["version"])
	}
	if s, _ := doc["time"].(string); s == "" {
		t.Errorf("time = %v", doc["time"])
	} else if _, err := time.Parse(time.RFC3339, s); err != nil {
		t.Errorf("time %q is not RFC 3339: %v", s, err)
	}
	totals := obj("totals", doc["totals"])
	need("totals", totals, "flows", "by_proto", "orig_bytes_per_s", "reply_bytes_per_s")
	obj("totals.by_proto", totals["by_proto"])
	need("health", obj("health", doc["health"]), "events", "overruns", "resyncs", "refresh_ms", "kernel_flows")
	flows, ok := doc["flows"].([]any)
	if !ok {
		t.Fatalf("flows is %T, want an array", doc["flows"])
	}
	if len(flows) == 0 {
		t.Errorf("no flows to check the keys of")
	}
	for i, v := range flows {
		f := obj(fmt.Sprintf("flows[%d]", i), v)
		where := fmt.Sprintf("flows[%d]", i)
		need(where, f, "id", "family", "proto", "state", "src", "sport", "dst", "dport",
			"reply_src", "reply_sport", "reply_dst", "reply_dport", "nat", "orig", "reply", "start", "age_s", "mark", "zone")
		for _, dir := range []string{"orig", "reply"} {
			need(where+"."+dir, obj(where+"."+dir, f[dir]), "bytes", "packets", "bytes_per_s")
		}
		if s, ok := f["start"].(string); ok {
			if _, err := time.Parse(time.RFC3339, s); err != nil {
				t.Errorf("%s.start %q is not RFC 3339", where, s)
			}
		}
		if fam := f["family"]; fam != "ipv4" && fam != "ipv6" {
			t.Errorf("%s.family = %v", where, fam)
		}
	}
}

// TestOnceSingleDumpSortsByBytes: `flowtop --once -t 0 --limit N` (the
// README's "ten biggest flows") lists the flows that carried the most
// bytes, and says so in "sort": after one dump every rate is 0, and by
// rate the order was the kernel's flow IDs.
func TestOnceSingleDumpSortsByBytes(t *testing.T) {
	nstest.Require(t, "nft")
	flowtopBinary(t)
	a, b := nstest.Pair(t)
	a.WriteSysctl(t, kernel.SysctlAcct, "1") // counters for the flows made below
	const conns = 6
	bytesByPort := map[int]int{} // B's port -> bytes sent each way
	for i := range conns {
		size := (i + 1) * 20000
		bytesByPort[echoOnce(t, a, b, size)] = size
	}

	for _, args := range [][]string{{"--limit", "3"}, nil} {
		t.Run(fmt.Sprint(args), func(t *testing.T) {
			out, stderr, code := runBinary(t, 30*time.Second,
				append([]string{"--once", "-t", "0", "--netns", a.Path(), "--state-dir", t.TempDir()}, args...)...)
			if code != 0 {
				t.Fatalf("exit status %d; stderr: %.300s", code, stderr)
			}
			d := decodeDoc(t, out)
			if d.Sort != report.SortBytes {
				t.Errorf(`"sort" = %q, want "bytes"`, d.Sort)
			}
			var got []int // sizes of the test's flows, in the listed order
			for _, f := range d.Flows {
				if size, ok := bytesByPort[int(f.Dport)]; ok && f.Dst == nstest.AddrB4 {
					got = append(got, size)
				}
			}
			want := []int{120000, 100000, 80000, 60000, 40000, 20000}
			if len(args) > 0 {
				want = want[:3]
			}
			if !slices.Equal(got, want) {
				t.Errorf("flows listed by size %v, want %v (largest first)", got, want)
			}
		})
	}
}

// echoOnce sends size bytes from A to a new echo server on B, reads them
// back, and leaves the connection open until the test ends; it returns
// the server's port.
func echoOnce(t *testing.T, a, b *nstest.NS, size int) int {
	t.Helper()
	srv := nstest.EchoTCP(t, b, net.JoinHostPort(nstest.AddrB4, "0"))
	var c net.Conn
	if err := a.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", srv.String(), 10*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(20 * time.Second))
	go c.Write(bytes.Repeat([]byte("b"), size))
	if _, err := io.ReadFull(c, make([]byte, size)); err != nil {
		t.Fatalf("echo of %d bytes: %v", size, err)
	}
	return srv.Port
}

// TestOnceDocumentHeader: "netns" is absent (not null) when flowtop reads
// its own namespace and the --netns given otherwise; "filter" is the
// screen header's text.
func TestOnceDocumentHeader(t *testing.T) {
	nstest.Require(t, "nft")
	bin := flowtopBinary(t)
	a, b := nstest.Pair(t)
	tcpConnect(t, a, b, nstest.AddrB4)
	header := func(t *testing.T, out []byte) map[string]json.RawMessage {
		t.Helper()
		var m map[string]json.RawMessage
		if err := json.Unmarshal(out, &m); err != nil {
			t.Fatalf("not a JSON document: %v: %.300s", err, out)
		}
		return m
	}

	t.Run("own namespace", func(t *testing.T) {
		// ip netns exec runs flowtop inside A: A is its own namespace.
		cmd := a.Command(bin, "--once", "-t", "0", "-n", "-46TUI", "--state-dir", t.TempDir())
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("flowtop in %s: %v", a.Name, err)
		}
		m := header(t, out)
		if v, ok := m["netns"]; ok {
			t.Errorf(`"netns" is %s, want the key absent`, v)
		}
		if got, want := string(m["filter"]), `"IPv4,IPv6,TCP,UDP,ICMP"`; got != want {
			t.Errorf(`"filter" = %s, want %s (the screen's)`, got, want)
		}
	})
	t.Run("--netns", func(t *testing.T) {
		out, stderr, code := runBinary(t, 30*time.Second, "--once", "-t", "0", "--netns", a.Path(), "--state-dir", t.TempDir())
		if code != 0 {
			t.Fatalf("exit status %d; stderr: %.300s", code, stderr)
		}
		if got, want := string(header(t, out)["netns"]), strconv.Quote(a.Path()); got != want {
			t.Errorf(`"netns" = %s, want %s`, got, want)
		}
	})
}
