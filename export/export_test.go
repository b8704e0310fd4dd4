package export

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/report"
)

// fakeTable hands ended records to its subscriptions as the table does:
// without blocking, counting what does not fit.
type fakeTable struct {
	snap *conntrack.Snapshot
	subs []*fakeSub
}

type fakeSub struct {
	ch    chan conntrack.Ended
	drops atomic.Uint64
}

func (f *fakeTable) Latest() *conntrack.Snapshot { return f.snap }

func (f *fakeTable) SubscribeEndedCounted(buffer int) (<-chan conntrack.Ended, func() uint64) {
	s := &fakeSub{ch: make(chan conntrack.Ended, buffer)}
	f.subs = append(f.subs, s)
	return s.ch, s.drops.Load
}

func (f *fakeTable) end(id uint32) {
	for _, s := range f.subs {
		select {
		case s.ch <- conntrack.Ended{Flow: conntrack.Flow{ID: id}}:
		default:
			s.drops.Add(1)
		}
	}
}

// fakeExporter records its Env; Run waits for ctx, then drains its
// subscription, counting what it read as published.
type fakeExporter struct {
	name      string
	env       Env
	connected *bool
	published atomic.Uint64
	stopped   atomic.Bool
}

func (e *fakeExporter) Name() string { return e.name }

func (e *fakeExporter) Health() report.ExporterHealth {
	return report.ExporterHealth{Published: e.published.Load(), Connected: e.connected}
}

func (e *fakeExporter) Run(ctx context.Context) error {
	<-ctx.Done()
	for e.env.Ended != nil {
		select {
		case <-e.env.Ended:
			e.published.Add(1)
			continue
		default:
		}
		break
	}
	e.stopped.Store(true)
	return nil
}

func spec(on bool, ended int, made map[string]*fakeExporter, name string) Spec {
	return Spec{On: on, Ended: ended, New: func(env Env) (Exporter, error) {
		e := &fakeExporter{name: name, env: env}
		made[name] = e
		return e, nil
	}}
}

func u64(n uint64) *uint64 { return &n }

// Each exporter has its own subscription and its own count of what it
// lost; an exporter without one has no ended_dropped; one whose flag is
// off is neither made nor subscribed.
func TestSetHealthCountsEachSubscription(t *testing.T) {
	tbl := &fakeTable{snap: &conntrack.Snapshot{}}
	made := map[string]*fakeExporter{}
	set := Subscribe(tbl, []Spec{
		spec(true, 1, made, "small"),
		spec(false, 100, made, "off"),
		spec(true, 10, made, "big"),
		spec(true, 0, made, "none"),
	})
	if len(tbl.subs) != 2 {
		t.Fatalf("%d subscriptions, want 2 (the exporters on that ask for one)", len(tbl.subs))
	}
	for id := range uint32(3) {
		tbl.end(id)
	}
	if err := set.Start(context.Background(), Env{Host: "h", Netns: "n"}); err != nil {
		t.Fatal(err)
	}
	defer set.Stop()
	if _, ok := made["off"]; ok {
		t.Error("the exporter whose flag is off was made")
	}
	if e := made["none"].env; e.Ended != nil || e.Latest == nil || e.Host != "h" || e.Netns != "n" {
		t.Errorf("env of the exporter without a subscription: Ended %v, Latest set %v, host %q, netns %q",
			e.Ended, e.Latest != nil, e.Host, e.Netns)
	}
	if made["small"].env.Ended == made["big"].env.Ended {
		t.Error("two exporters share one subscription")
	}
	want := map[string]report.ExporterHealth{
		"small": {EndedDropped: u64(2)},
		"big":   {EndedDropped: u64(0)},
		"none":  {},
	}
	if diff := cmp.Diff(want, set.Health()); diff != "" {
		t.Errorf("health (-want +got):\n%s", diff)
	}
}

// Stop returns once every exporter has drained its subscription and
// returned: what the table sent before it stopped is exported.
func TestSetStopWaitsForTheExporters(t *testing.T) {
	tbl := &fakeTable{}
	made := map[string]*fakeExporter{}
	set := Subscribe(tbl, []Spec{spec(true, 10, made, "a"), spec(true, 10, made, "b")})
	if err := set.Start(context.Background(), Env{}); err != nil {
		t.Fatal(err)
	}
	for id := range uint32(4) {
		tbl.end(id)
	}
	set.Stop()
	for _, name := range []string{"a", "b"} {
		if e := made[name]; !e.stopped.Load() || e.published.Load() != 4 {
			t.Errorf("%s after Stop: stopped %v, %d records exported, want stopped with 4", name, e.stopped.Load(), e.published.Load())
		}
	}
}

// A constructor's error is returned and nothing runs.
func TestSetStartError(t *testing.T) {
	made := map[string]*fakeExporter{}
	bad := errors.New("--mqtt: no password")
	set := Subscribe(&fakeTable{}, []Spec{
		spec(true, 0, made, "first"),
		{On: true, New: func(Env) (Exporter, error) { return nil, bad }},
	})
	if err := set.Start(context.Background(), Env{}); !errors.Is(err, bad) {
		t.Fatalf("Start: %v, want %v", err, bad)
	}
	if h := set.Health(); h != nil {
		t.Errorf("health after a failed start: %v, want none", h)
	}
	set.Stop() // returns: nothing runs
}

// A constructor's error begins with the flag of its spec; the rest of the
// Env, the health hook included, reaches every exporter.
func TestSetStartFlagAndEnv(t *testing.T) {
	made := map[string]*fakeExporter{}
	set := Subscribe(&fakeTable{}, []Spec{
		{On: true, Flag: "--mqtt", New: func(Env) (Exporter, error) { return nil, errors.New("password file: no such file") }},
	})
	err := set.Start(context.Background(), Env{})
	if err == nil || err.Error() != "--mqtt: password file: no such file" {
		t.Errorf("Start: %v, want the error after --mqtt", err)
	}

	hooked := 0
	set = Subscribe(&fakeTable{}, []Spec{spec(true, 0, made, "a")})
	if err := set.Start(context.Background(), Env{Health: func(*report.Health) { hooked++ }}); err != nil {
		t.Fatal(err)
	}
	defer set.Stop()
	if h := made["a"].env.Health; h == nil {
		t.Fatal("the exporter's Env has no health hook")
	} else if h(&report.Health{}); hooked != 1 {
		t.Errorf("the exporter's hook is not the one given to Start")
	}
}

// The status line names each exporter with a connection, in the words the
// screen showed for MQTT.
func TestSetStatus(t *testing.T) {
	yes, no := true, false
	set := Subscribe(&fakeTable{}, []Spec{
		{On: true, New: func(Env) (Exporter, error) { return &fakeExporter{name: "file"}, nil }},
		{On: true, New: func(Env) (Exporter, error) { return &fakeExporter{name: "mqtt", connected: &yes}, nil }},
		{On: true, New: func(Env) (Exporter, error) { return &fakeExporter{name: "mqtt2", connected: &no}, nil }},
	})
	if got := set.Status(); got != "" {
		t.Errorf("status before start %q, want empty", got)
	}
	if err := set.Start(context.Background(), Env{}); err != nil {
		t.Fatal(err)
	}
	defer set.Stop()
	want := "mqtt connected: 0 sent, 0 dropped, 0 errors; mqtt2 disconnected: 0 sent, 0 dropped, 0 errors"
	if got := set.Status(); got != want {
		t.Errorf("status %q, want %q", got, want)
	}
	var none *Set
	if none.Status() != "" || none.Health() != nil {
		t.Error("a nil set reports something")
	}
	none.Stop()
}

func TestFileWritesAndCounts(t *testing.T) {
	dir := t.TempDir()
	snap := &conntrack.Snapshot{Time: time.Unix(0, 0)}
	doc := func(s *conntrack.Snapshot) *report.Prepared { return report.Prepare(s, report.Options{Host: "router"}) }
	f := &File{Path: filepath.Join(dir, "snap.json"), Every: time.Hour, Latest: func() *conntrack.Snapshot { return snap }, Document: doc}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- f.Run(ctx) }()
	deadline := time.Now().Add(20 * time.Second)
	for f.Health().Published == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(f.Path)
	if err != nil || !strings.Contains(string(b), `"host":"router"`) {
		t.Fatalf("file after the first write: %v, %.200s", err, b)
	}
	if h := f.Health(); h != (report.ExporterHealth{Published: 1}) {
		t.Errorf("health %+v, want one file published", h)
	}

	bad := &File{Path: filepath.Join(dir, "missing", "snap.json"), Every: time.Hour, Latest: f.Latest, Document: doc}
	bad.write()
	if h := bad.Health(); h != (report.ExporterHealth{Errors: 1}) {
		t.Errorf("health after a failed write %+v, want one error", h)
	}
}
