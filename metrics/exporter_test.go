package metrics

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/export"
	"github.com/flowtop/flowtop/report"
)

// closingKernel is a kernel statistics reader that records its Close.
type closingKernel struct {
	fakeKernel
	closed atomic.Bool
}

func (k *closingKernel) Close() error { k.closed.Store(true); return nil }

// syncBuffer is a log destination safe for the goroutines of Run.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestExporterServesOnItsListener: the exporter made by Config.New serves
// on the listener it was given, behind its credentials, with the kernel
// statistics it opened; it counts its scrapes as its health, and when its
// context ends Run returns, the listener is closed and so is the kernel
// reader.
func TestExporterServesOnItsListener(t *testing.T) {
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	token, err := TokenFile(writeFile(t, "tok3n\n"))
	if err != nil {
		t.Fatal(err)
	}
	kernel := &closingKernel{fakeKernel: fakeKernel{s: conntrack.KernelStats{Invalid: 17, Max: -1}}}
	var logs syncBuffer
	cfg := Config{Listener: ln, Auth: token, Version: "1.2.3",
		OpenKernel: func() (KernelStats, error) { return kernel, nil }}
	exp, err := cfg.New(export.Env{Latest: func() *conntrack.Snapshot { return snap() },
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if exp.Name() != "metrics" {
		t.Errorf("name %q, want metrics", exp.Name())
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- exp.Run(ctx) }()
	stop := sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			return errors.New("Run did not return 30 s after its context ended")
		}
	})
	defer stop()

	url := "http://" + ln.Addr().String() + "/metrics"
	scrape := func(tok string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, _ := scrape(""); code != http.StatusUnauthorized {
		t.Errorf("scrape without the token: %d, want 401", code)
	}
	code, body := scrape("tok3n")
	if code != 200 || !strings.Contains(body, "\nflowtop_conntrack_stat_invalid_total 17\n") {
		t.Errorf("scrape: %d, want 200 with the kernel's statistics:\n%.400s", code, body)
	}
	if h := exp.Health(); h.Published != 1 || h.Errors != 0 {
		t.Errorf("health %+v, want 1 scrape published", h)
	}
	if !strings.Contains(logs.String(), "serving Prometheus metrics") || !strings.Contains(logs.String(), url) {
		t.Errorf("log %.300q: want the URL served", logs.String())
	}

	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if !kernel.closed.Load() {
		t.Error("the kernel statistics reader is still open after Run")
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second); err == nil {
		c.Close()
		t.Error("the listener still accepts after Run")
	}
}

// TestExporterWithoutKernelStats: a kernel statistics reader that cannot
// be opened is logged once and its metrics left out; the rest is served.
func TestExporterWithoutKernelStats(t *testing.T) {
	var logs syncBuffer
	cfg := Config{OpenKernel: func() (KernelStats, error) { return nil, errors.New("dial ctnetlink: operation not permitted") }}
	fx := newFixture(t, setup{Config: cfg, Env: export.Env{Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
	got := fx.scrape(t, snap())
	if strings.Contains(got, mStatPrefix) || !strings.Contains(got, mTableFlows) {
		t.Errorf("scrape without kernel statistics:\n%.400s", got)
	}
	if n := strings.Count(logs.String(), "no kernel conntrack statistics"); n != 1 || !strings.Contains(logs.String(), "not permitted") {
		t.Errorf("log %.300q: want the reason once", logs.String())
	}
	if _, err := New(Config{}, export.Env{}); err == nil {
		t.Error("New without Env.Latest: no error")
	}
}

// TestExportersHealthFromEnv: the exporters' series come from the Env's
// Health hook, as flowtop's documents get them, and the ended-flow
// records dropped are the sum of every exporter's subscription's losses
// (all the table's subscriptions in flowtop); without a subscription
// there is no such series.
func TestExportersHealthFromEnv(t *testing.T) {
	mqtt, metrics := uint64(3), uint64(2)
	health := func(h *report.Health) {
		h.Exporters = map[string]report.ExporterHealth{
			"mqtt":    {Published: 7, EndedDropped: &mqtt},
			"metrics": {Published: 1, EndedDropped: &metrics},
			"file":    {Published: 2},
		}
	}
	got := newFixture(t, setup{Env: export.Env{Health: health}}).scrape(t, snap())
	for _, line := range []string{
		"flowtop_ended_records_dropped_total 5",
		`flowtop_exporter_published_total{exporter="file"} 2`,
		`flowtop_exporter_published_total{exporter="metrics"} 1`,
		`flowtop_exporter_published_total{exporter="mqtt"} 7`,
	} {
		if !strings.Contains(got, "\n"+line+"\n") {
			t.Errorf("no line %q in:\n%.600s", line, got)
		}
	}

	noSubscription := func(h *report.Health) {
		h.Exporters = map[string]report.ExporterHealth{"file": {Published: 2}}
	}
	got = newFixture(t, setup{Env: export.Env{Health: noSubscription}}).scrape(t, snap())
	if strings.Contains(got, mEndedDropped) || !strings.Contains(got, `flowtop_exporter_published_total{exporter="file"} 2`) {
		t.Errorf("without an ended-flow subscription:\n%.600s", got)
	}
}

// TestRunScrapesFinishOnStop: once Run's context ends, the accounting
// goes on answering the scrapes under way until the server has stopped
// (they get the grace to finish, not ErrStopped and a 503); then it
// stops.
func TestRunScrapesFinishOnStop(t *testing.T) {
	ln, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	// The first scrape is held under way in the health hook, after it has
	// had its view of the accounting.
	entered, release := make(chan struct{}), make(chan struct{})
	var healthCalls atomic.Int32
	health := func(*report.Health) {
		if healthCalls.Add(1) == 1 {
			close(entered)
			<-release
		}
	}
	s := snap()
	c, err := New(Config{Listener: ln}, export.Env{Latest: func() *conntrack.Snapshot { return s }, Health: health})
	if err != nil {
		t.Fatal(err)
	}
	c.limits.grace = patience
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	scraped := make(chan string, 1)
	go func() {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			scraped <- err.Error()
			return
		}
		resp.Body.Close()
		scraped <- resp.Status
	}()
	select {
	case <-entered:
	case <-time.After(patience):
		close(release)
		t.Fatal("scrape not under way")
	}

	cancel()
	eventually(t, "listener closed", func() bool {
		nc, err := net.Dial("tcp", addr)
		if err == nil {
			nc.Close()
		}
		return err != nil
	})
	// Scrapes under way reach the accounting while the server stops.
	for i := range 3 {
		if _, err := c.Gather(context.Background(), nil); err != nil {
			t.Errorf("gather %d while the server stops: %v", i, err)
		}
	}
	close(release)
	if status := <-scraped; status != "200 OK" {
		t.Errorf("scrape under way: %s, want 200 OK", status)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(patience):
		t.Fatal("Run did not return")
	}
	if _, err := c.Gather(context.Background(), nil); !errors.Is(err, ErrStopped) {
		t.Errorf("gather after Run: %v, want ErrStopped", err)
	}
	if st := c.Stats(); st.Published != 1 || st.Errors != 0 {
		t.Errorf("stats %+v, want the scrape published", st)
	}
}
