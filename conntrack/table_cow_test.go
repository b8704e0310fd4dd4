package conntrack

import (
	"context"
	"testing"
	"time"
)

// listKernel dumps whatever flows it holds now.
type listKernel struct{ flows []Flow }

func (k *listKernel) Dump(fn func(*Flow)) (bool, error) {
	for i := range k.flows {
		fn(&k.flows[i]) // like Source.Dump: the table copies what it keeps
	}
	return false, nil
}

func (k *listKernel) Listen(ctx context.Context, _ chan<- Event) error {
	<-ctx.Done()
	return nil
}

func recordOf(s *Snapshot, id uint32) *Flow {
	for _, f := range s.Flows {
		if f.ID == id {
			return f
		}
	}
	return nil
}

// A published record never changes: a refresh or an event that changes a
// flow makes a new record, and an idle flow keeps sharing its record.
func TestTableCopyOnWrite(t *testing.T) {
	mk := func(id uint32, port uint16) Flow {
		a, b := MustParseAddr("198.18.0.1"), MustParseAddr("198.19.0.1")
		return Flow{ID: id, Family: IPv4, Proto: ProtoUDP, HasCounters: true, Timeout: 30,
			Orig:      Tuple{Src: a, Dst: b, SrcPort: port, DstPort: 53},
			Reply:     Tuple{Src: b, Dst: a, SrcPort: 53, DstPort: port},
			OrigCount: Counter{Packets: 1, Bytes: 100}}
	}
	now := time.Unix(1_700_000_000, 0)
	k := &listKernel{flows: []Flow{mk(1, 1000), mk(2, 1001)}}
	f := DefaultFilter()
	f.Protos.Add(ProtoUDP)
	tb := NewTable(TableConfig{Kernel: k, Interval: time.Second, Filter: f, Now: func() time.Time { return now }})
	refresh := func() *Snapshot {
		t.Helper()
		if err := tb.refresh(); err != nil {
			t.Fatal(err)
		}
		tb.publish()
		return tb.Latest()
	}
	s1 := refresh()
	active1, idle1 := recordOf(s1, 1), recordOf(s1, 2)

	// One second later flow 1 carried traffic; flow 2's timeout only ran
	// down with the time.
	now = now.Add(time.Second)
	k.flows[0].OrigCount = Counter{Packets: 3, Bytes: 1100}
	k.flows[1].Timeout = 29
	s2 := refresh()
	if active1.OrigCount.Bytes != 100 {
		t.Fatalf("the published record of flow 1 changed: %d bytes", active1.OrigCount.Bytes)
	}
	active2 := recordOf(s2, 1)
	if active2 == active1 || active2.OrigCount.Bytes != 1100 || active2.OrigRate.Bytes != 1000 {
		t.Fatalf("flow 1 after traffic: same record %v, %d bytes at %v B/s; want a new record, 1100 bytes at 1000 B/s",
			active2 == active1, active2.OrigCount.Bytes, active2.OrigRate.Bytes)
	}
	if idle2 := recordOf(s2, 2); idle2 != idle1 {
		t.Fatal("the idle flow 2 got a new record; it should be shared between snapshots")
	}
	if left := idle1.TimeLeft(now); left != 29*time.Second {
		t.Fatalf("shared record's TimeLeft one second on = %v, want 29s", left)
	}

	// An UPDATE event (a new connmark) on a published flow copies it too.
	upd := mk(2, 1001)
	upd.Mark = 7
	tb.apply(Event{Type: EventUpdate, Flow: upd, NoState: true})
	tb.publish()
	s3 := tb.Latest()
	if idle1.Mark != 0 || recordOf(s3, 2).Mark != 7 {
		t.Fatalf("UPDATE: old record mark %d (want 0), new record mark %d (want 7)", idle1.Mark, recordOf(s3, 2).Mark)
	}
}

// Steady state: a refresh and snapshot of a table whose flows are idle
// allocate nothing per flow.
func TestTableIdleRefreshAllocatesNothing(t *testing.T) {
	flows := benchFlows(2000)
	k := &listKernel{flows: flows}
	f := DefaultFilter()
	f.AllProtos()
	now := time.Unix(1_700_000_100, 0)
	tb := NewTable(TableConfig{Kernel: k, Interval: time.Second, Filter: f, Now: func() time.Time { return now }})
	// As in the kernel, an idle flow's timeout runs down with the time.
	tick := func() {
		now = now.Add(time.Second)
		for i := range k.flows {
			k.flows[i].Timeout--
		}
	}
	for i := range k.flows {
		k.flows[i].Timeout = 600
	}
	for range 3 {
		tick()
		tb.refresh()
		tb.publish()
	}
	allocs := testing.AllocsPerRun(10, func() {
		tick()
		tb.refresh()
		tb.publish()
	})
	// A few objects per refresh are fine, not one per flow.
	if allocs > 10 {
		t.Fatalf("an idle refresh of 2000 flows made %.0f allocations", allocs)
	}
}
