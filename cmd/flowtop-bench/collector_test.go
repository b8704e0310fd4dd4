package main

import (
	"context"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/export"
	"github.com/flowtop/flowtop/ipfix"
)

// TestCollectorCountsExporterRecords feeds flowtop's own IPFIX exporter
// ended flows of both families and two end reasons, and checks that the
// bench's collector counts every record, by reason, and reads the sent
// total from the sequence numbers: the -ipfix figures rest on it.
func TestCollectorCountsExporterRecords(t *testing.T) {
	col, err := newCollector()
	if err != nil {
		t.Fatal(err)
	}
	defer col.close()
	ended := make(chan conntrack.Ended, 1000)
	e, err := ipfix.New(ipfix.Config{URLs: []string{col.url()}},
		export.Env{Latest: func() *conntrack.Snapshot { return nil }, Ended: ended})
	if err != nil {
		t.Fatal(err)
	}
	const udp4, udp6, tcpClosed = 400, 300, 50 // more than one message each
	now := time.Now()
	for i := range udp4 + udp6 + tcpClosed {
		f := conntrack.Flow{ID: uint32(i), Family: conntrack.IPv4, Proto: conntrack.ProtoUDP, HasCounters: true,
			Orig: conntrack.Tuple{Src: conntrack.MustParseAddr("198.18.0.1"), Dst: conntrack.MustParseAddr("198.19.0.1"),
				SrcPort: uint16(1024 + i), DstPort: 53}}
		switch {
		case i >= udp4+udp6:
			f.Proto, f.State = conntrack.ProtoTCP, 7 // TIME_WAIT: end of flow
		case i >= udp4:
			f.Family = conntrack.IPv6
			f.Orig.Src, f.Orig.Dst = conntrack.MustParseAddr("2001:db8::1"), conntrack.MustParseAddr("2001:db8::2")
		}
		f.Reply = conntrack.Tuple{Src: f.Orig.Dst, Dst: f.Orig.Src, SrcPort: f.Orig.DstPort, DstPort: f.Orig.SrcPort}
		f.Start = conntrack.StampOf(now.Add(-time.Second))
		ended <- conntrack.Ended{Flow: f, Stop: now, Reason: conntrack.EndDestroyed}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	const want = udp4 + udp6 + tcpClosed
	err = waitFor(30*time.Second, "the records", func() (bool, error) {
		n, _ := col.count()
		return n.total() >= want, nil
	})
	cancel()
	<-done
	if err != nil {
		n, _ := col.count()
		t.Fatalf("%v: the collector counted %d of %d records", err, n.total(), want)
	}
	n, _ := col.count()
	if n.total() != want || n.records[1] != udp4+udp6 || n.records[3] != tcpClosed || n.ended() != want {
		t.Errorf("records by reason %v (ended %d), want %d idle timeout and %d end of flow", n.records, n.ended(), udp4+udp6, tcpClosed)
	}
	if n.sent != want || n.unknown != 0 || n.malformed != 0 {
		t.Errorf("sequence numbers say %d sent, %d unknown sets, %d malformed: want %d, 0, 0", n.sent, n.unknown, n.malformed, want)
	}
	if st := e.Stats(); st.Published != want {
		t.Errorf("the exporter published %d, want %d", st.Published, want)
	}
	if n.messages < 3 {
		t.Errorf("%d messages: the test wants records spread over several", n.messages)
	}
}
