package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// measureMetrics times scrapes of flowtop --no-ui --metrics-listen on a
// table of n flows, round-robin with conntrack -L on the same table: once
// with the default local networks (the bench's addresses are none of
// them: no host series) and once with every address local.
func measureMetrics(bin string, n, scrapes int) error {
	x, closeNS, err := heldTable(n)
	if err != nil {
		return err
	}
	defer closeNS()
	fmt.Printf("\n/metrics: %d flows (the kernel holds %d), %d scrapes each, round-robin with conntrack -L\n", n, x.count(), scrapes)
	variants := []struct {
		name string
		args []string
	}{
		{"default --local-net (no host series)", nil},
		{"--local-net 198.18.0.0/15 (every address a host)", []string{"--local-net", "198.18.0.0/15"}},
	}
	for _, v := range variants {
		if err := metricsVariant(bin, x, n, scrapes, v.name, v.args); err != nil {
			return err
		}
	}
	return nil
}

func metricsVariant(bin string, x *ns, n, scrapes int, name string, extra []string) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/metrics", port)
	args := append([]string{"--no-ui", "--netns", x.path(), "-46TUI", "-n", "-G", "--state-dir", stateDir,
		"--metrics-listen", fmt.Sprintf("127.0.0.1:%d", port)}, extra...)
	p, err := startProc(nil, bin, args...)
	if err != nil {
		return err
	}
	defer p.stop()
	// Prometheus' own client asks for gzip and keeps the connection: so
	// does Go's default transport.
	client := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	var body []byte
	err = waitFor(60*time.Second, "flowtop's metrics", func() (bool, error) {
		if err := p.running(); err != nil {
			return false, err
		}
		if body, _, err = scrape(client, url); err != nil {
			return false, nil // not listening yet
		}
		return metricValue(body, "flowtop_table_flows") >= float64(n), nil
	})
	if err != nil {
		return err
	}
	var took, ref []time.Duration
	for range scrapes {
		r, err := timeIn(x, "conntrack", "-L")
		if err != nil {
			return err
		}
		ref = append(ref, r.wall)
		time.Sleep(200 * time.Millisecond)
		var d time.Duration
		if body, d, err = scrape(client, url); err != nil {
			return err
		}
		took = append(took, d)
		time.Sleep(200 * time.Millisecond)
	}
	slices.Sort(took)
	slices.Sort(ref)
	med, refMed := quantile(took, 0.5), quantile(ref, 0.5)
	series := 0
	for l := range strings.SplitSeq(string(body), "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			series++
		}
	}
	fmt.Printf("  %s: scrape median %v, p95 %v, max %v (%.3f x conntrack -L's median %v; load %s); %d series, %d bytes\n",
		name, med.Round(100*time.Microsecond), quantile(took, 0.95).Round(100*time.Microsecond),
		took[len(took)-1].Round(100*time.Microsecond), float64(med)/float64(refMed), refMed.Round(time.Millisecond),
		loadAvg(), series, len(body))
	return nil
}

// scrape fetches url and returns the body and the time from the request
// to its last byte.
func scrape(c *http.Client, url string) ([]byte, time.Duration, error) {
	start := time.Now()
	resp, err := c.Get(url)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	d := time.Since(start)
	if err != nil {
		return nil, 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, 0, fmt.Errorf("GET %s: %s: %.200s", url, resp.Status, b)
	}
	return b, d, nil
}

// metricValue is the value of an unlabelled series in a Prometheus text
// exposition, -1 when absent.
func metricValue(body []byte, name string) float64 {
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err == nil {
				return f
			}
		}
	}
	return -1
}
