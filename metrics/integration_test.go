package metrics

// Integration test: a conntrack.Table over a throw-away namespace, real
// TCP traffic of a known size, /metrics scraped over loopback. Needs root,
// ip, nft and conntrack: skipped locally without them, failed under
// CI=true.

import (
	"bufio"
	"context"
	"github.com/flowtop/flowtop/conntrack/kernel"
	"io"
	"net"
	"net/http"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/conntrack/nstest"
	"github.com/flowtop/flowtop/export"
)

// TestMetricsRealTraffic sends 100 kB from namespace A to an echo server in
// B and reads them back, then 200 kB more on the same connection, which is
// then closed and deleted from the table (its DESTROY carries the final
// counters). A's transmit and receive bytes must cover every byte sent,
// once: at least the payload, and not much more (headers and ACKs).
func TestMetricsRealTraffic(t *testing.T) {
	nstest.Require(t, "nft", "conntrack")
	a, b := nstest.Pair(t)
	src, err := kernel.Open(a.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	guard, err := kernel.EnableAccounting(src.NetnsFile(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := guard.Restore(); err != nil {
			t.Errorf("restore sysctls: %v", err)
		}
	})
	stats, err := kernel.OpenStats(src.NetnsFile())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stats.Close() })

	table := conntrack.NewTable(conntrack.TableConfig{Kernel: src, Interval: 100 * time.Millisecond,
		Filter: allFilter(), Accounting: guard.Enabled})
	ended := table.SubscribeEnded(1024)
	ctx, cancel := context.WithCancel(context.Background())
	tableDone := make(chan error, 1)
	go func() { tableDone <- table.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-tableDone; err != nil {
			t.Errorf("table: %v", err)
		}
	})
	deadline := time.Now().Add(30 * time.Second)
	for table.Latest() == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}

	c, err := New(Config{OpenKernel: func() (KernelStats, error) { return stats, nil },
		LocalNets: []netip.Prefix{netip.MustParsePrefix(nstest.AddrA4 + "/32")},
		Version:   "test", FoldEvery: time.Hour, // folds only when scraped
	}, export.Env{Latest: table.Latest, Ended: ended})
	if err != nil {
		t.Fatal(err)
	}
	go c.Run(ctx)
	token := "integration-token"
	addr := startServer(t, c, Auth{token: token})
	scrape := func() map[string]float64 {
		t.Helper()
		req, _ := http.NewRequest("GET", "http://"+addr+"/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("scrape: %s", resp.Status)
		}
		return parseExposition(t, resp.Body)
	}
	hostA := `{host="` + nstest.AddrA4 + `"}`
	waitFor := func(what string, ok func(map[string]float64) bool) map[string]float64 {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			m := scrape()
			if ok(m) {
				return m
			}
			if time.Now().After(deadline) {
				t.Fatalf("no scrape showed %s; last: tx %v rx %v flows %v", what,
					m["flowtop_host_transmit_bytes_total"+hostA], m["flowtop_host_receive_bytes_total"+hostA],
					m["flowtop_host_flows"+hostA])
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	echo := nstest.EchoTCP(t, b, nstest.AddrB4+":0")
	var conn net.Conn
	if err := a.Do(func() (err error) { conn, err = net.DialTimeout("tcp", echo.String(), 10*time.Second); return err }); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	exchange := func(n int) {
		t.Helper()
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		wrote := make(chan error, 1)
		go func() { _, err := conn.Write(make([]byte, n)); wrote <- err }()
		if _, err := io.ReadFull(conn, make([]byte, n)); err != nil {
			t.Fatal(err)
		}
		if err := <-wrote; err != nil {
			t.Fatal(err)
		}
	}
	const first, second = 100_000, 200_000
	exchange(first)
	waitFor("the first 100 kB", func(m map[string]float64) bool {
		return m["flowtop_host_transmit_bytes_total"+hostA] >= first && m["flowtop_host_receive_bytes_total"+hostA] >= first
	})

	// More traffic, then the flow ends before any scrape sees its new
	// counters: only its DESTROY record tells them.
	exchange(second)
	conn.Close()
	port := strconv.Itoa(echo.Port)
	a.Exec(t, "conntrack", "-D", "-p", "tcp", "--dport", port)
	m := waitFor("the flow gone", func(m map[string]float64) bool {
		return m["flowtop_host_flows"+hostA] == 0
	})
	const total = first + second
	for _, dir := range []string{"transmit", "receive"} {
		got := m["flowtop_host_"+dir+"_bytes_total"+hostA]
		// Headers (52 bytes per segment of at most 1448) and ACKs add a
		// few per cent; a flow counted twice would add 100 kB or more.
		if got < total || got > total*1.2 {
			t.Errorf("%s bytes of %s = %v, want %d to %d", dir, nstest.AddrA4, got, total, int(total*1.2))
		}
	}
	t.Logf("tx %v rx %v", m["flowtop_host_transmit_bytes_total"+hostA], m["flowtop_host_receive_bytes_total"+hostA])
	if got := m["flowtop_host_flows"+`{host="`+nstest.AddrB4+`"}`]; got != 0 {
		t.Errorf("B (not local) has series: flows %v", got)
	}
	if _, ok := m["flowtop_conntrack_stat_invalid_total"]; !ok {
		t.Error("no kernel statistics in the scrape")
	}
	if got := m["flowtop_conntrack_entries_limit"]; got <= 0 {
		t.Errorf("flowtop_conntrack_entries_limit = %v", got)
	}
	if got := m["flowtop_dumps_total"]; got < 1 {
		t.Errorf("flowtop_dumps_total = %v", got)
	}

	// Counters survive: a later scrape shows no less.
	later := scrape()
	for _, dir := range []string{"transmit", "receive"} {
		k := "flowtop_host_" + dir + "_bytes_total" + hostA
		if later[k] < m[k] {
			t.Errorf("%s went down from %v to %v", k, m[k], later[k])
		}
	}
}

var sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{.*\})?) (\S+)$`)

// parseExposition reads samples into a map keyed by name and labels as
// written.
func parseExposition(t *testing.T, r io.Reader) map[string]float64 {
	t.Helper()
	m := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") || line == "" {
			continue
		}
		sm := sampleLine.FindStringSubmatch(line)
		if sm == nil {
			t.Fatalf("bad exposition line %.200q", line)
		}
		v, err := strconv.ParseFloat(sm[2], 64)
		if err != nil {
			t.Fatalf("bad value in %.200q", line)
		}
		m[sm[1]] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}
