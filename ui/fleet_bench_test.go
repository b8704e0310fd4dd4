package ui

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/remote"
	"github.com/flowtop/flowtop/report"
)

// benchFleetNodes makes a fleet of n nodes, each publishing every period
// (spread evenly: n/period updates a second, each told to the screen), as
// a broker of n routers at --mqtt-interval period would. It runs until
// the returned stop.
func benchFleetNodes(n int, period time.Duration) (*fakeFleet, func()) {
	f := newFakeFleet()
	r := rand.New(rand.NewPCG(7, 8))
	now := time.Now()
	info := func(i int, at time.Time) remote.NodeInfo {
		st := remote.StatusOnline
		if i%10 == 9 {
			st = remote.StatusOffline
		}
		return remote.NodeInfo{Name: fmt.Sprintf("node%03d", i), Host: fmt.Sprintf("host%03d.lan", i), Status: st,
			Time: at, Received: at, Flows: r.IntN(100_000), OrigBytesPerS: r.Float64() * 1e7, ReplyBytesPerS: r.Float64() * 1e8,
			Complete: true, Parts: 1, PartsReceived: 1, Overruns: uint64(r.IntN(3)), Documents: 1}
	}
	for i := range n {
		f.nodes = append(f.nodes, info(i, now.Add(-time.Duration(i)*period/time.Duration(n))))
	}
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(period / time.Duration(n))
		defer tick.Stop()
		for i := 0; ; i = (i + 1) % n {
			select {
			case <-quit:
				return
			case at := <-tick.C:
				f.set(func(f *fakeFleet) {
					nodes := append([]remote.NodeInfo(nil), f.nodes...) // readers hold the old slice
					nodes[i] = info(i, at)
					f.nodes = nodes
				})
			}
		}
	}()
	return f, func() { close(quit); <-done }
}

// benchFleetNode makes a fleet of one node, r1, whose live document of
// the flows busiest 200 (the watch limit) comes every period, decoded
// from JSON as the Client does.
func benchFleetNode(b *testing.B, period time.Duration) (*fakeFleet, func()) {
	flows := benchFlows(200)
	var docs [][]byte
	for i := range 10 {
		var buf bytes.Buffer
		snap := &conntrack.Snapshot{Time: time.Now().Add(time.Duration(i) * period), Interval: period,
			Flows: conntrack.Pointers(flows), TableFlows: 100_000, Filter: conntrack.DefaultFilter(),
			Health: conntrack.Health{Accounting: true, KernelFlows: 100_000}}
		if err := report.Prepare(snap, report.Options{Host: "r1.lan", Names: benchNamer{}}).Encode(&buf); err != nil {
			b.Fatal(err)
		}
		docs = append(docs, buf.Bytes())
	}
	f := newFakeFleet()
	show := func(i int) {
		v, err := remote.ViewFromDocument("r1", docs[i%len(docs)])
		if err != nil {
			panic(err)
		}
		v.Snapshot.Time = time.Now()
		f.set(func(f *fakeFleet) {
			f.views = map[string]*remote.View{"r1": v}
			f.nodes = []remote.NodeInfo{infoOf(v, remote.StatusOnline)}
		})
	}
	show(0)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(period)
		defer tick.Stop()
		for i := 1; ; i++ {
			select {
			case <-quit:
				return
			case <-tick.C:
				show(i)
			}
		}
	}()
	return f, func() { close(quit); <-done }
}

// BenchmarkFleetKeyToScreen is BenchmarkKeyToScreen (same keys, same
// detection of the draw that shows the key) with a Fleet: "nodes-200"
// the Nodes tab of 200 nodes each publishing every 10 s (20 changes a
// second, each told to the screen), "flows-1s" a node's Flows tab, its
// 200 busiest flows in a live document every second, the screen's
// interval 1 s.
func BenchmarkFleetKeyToScreen(b *testing.B) {
	b.Run("nodes-200", func(b *testing.B) {
		benchKeysOn(b, func(b *testing.B) (Config, func()) {
			f, stop := benchFleetNodes(200, 10*time.Second)
			return Config{Fleet: f, Names: benchNamer{}, Interval: time.Second}, stop
		})
	})
	b.Run("flows-1s", func(b *testing.B) {
		benchKeysOn(b, func(b *testing.B) (Config, func()) {
			f, stop := benchFleetNode(b, time.Second)
			return Config{Fleet: f, Node: "r1", Names: benchNamer{}, Interval: time.Second}, stop
		})
	})
}
