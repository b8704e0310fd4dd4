package kernel

import (
	"context"
	"encoding/binary"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack"
)

// The table helpers of conntrack's own tests, for the tests here that run
// the table on the real kernel through a Source.

func allFilter() conntrack.Filter {
	f := conntrack.Filter{IPv4: true, IPv6: true}
	f.AllProtos()
	return f
}

// runTable runs tb until the test ends and returns its snapshots.
func runTable(t *testing.T, tb *conntrack.Table) <-chan *conntrack.Snapshot {
	t.Helper()
	snaps, cancelSub := tb.Subscribe()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tb.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("Run did not return after cancel")
		}
		cancelSub()
	})
	return snaps
}

// waitSnap returns the first snapshot from sub for which ok holds.
func waitSnap(t *testing.T, sub <-chan *conntrack.Snapshot, what string, ok func(*conntrack.Snapshot) bool) *conntrack.Snapshot {
	t.Helper()
	deadline := time.After(30 * time.Second)
	var last *conntrack.Snapshot
	for {
		select {
		case s := <-sub:
			if ok(s) {
				return s
			}
			last = s
		case <-deadline:
			t.Fatalf("no snapshot with %s within 30 s; last: %s", what, snapSummary(last))
		}
	}
}

func byID(s *conntrack.Snapshot) map[uint32]conntrack.Flow {
	m := map[uint32]conntrack.Flow{}
	for _, f := range s.Flows {
		m[f.ID] = *f
	}
	return m
}

// dropAttr removes a top-level attribute from a ctnetlink message body.
func dropAttr(data []byte, typ uint16) []byte {
	out := append([]byte(nil), data[:nfgenmsgLen]...)
	for off := nfgenmsgLen; off+4 <= len(data); {
		l := int(binary.NativeEndian.Uint16(data[off:]))
		next := min(off+(l+3)&^3, len(data))
		if binary.NativeEndian.Uint16(data[off+2:])&nlaTypeMask != typ {
			out = append(out, data[off:next]...)
		}
		off = next
	}
	return out
}

// TestDecodeUpdateWithoutProtoinfo: the kernel sends the TCP state and the
// labels in an UPDATE only when they changed (a connmark change carries
// neither). The decoded event says so, and the table then keeps what it
// knew (conntrack's TestTableUpdateWithoutProtoinfo).
func TestDecodeUpdateWithoutProtoinfo(t *testing.T) {
	f := conntrack.Flow{ID: 1, Family: conntrack.IPv4, Proto: conntrack.ProtoTCP, State: 3,
		Orig:   conntrack.Tuple{Src: conntrack.MustParseAddr("10.0.0.1"), Dst: conntrack.MustParseAddr("10.0.0.2"), SrcPort: 40000, DstPort: 443},
		Reply:  conntrack.Tuple{Src: conntrack.MustParseAddr("10.0.0.2"), Dst: conntrack.MustParseAddr("10.0.0.1"), SrcPort: 443, DstPort: 40000},
		Status: conntrack.StatusAssured | conntrack.StatusConfirmed, Mark: 60, Timeout: 300,
		Labels: conntrack.RefLabels(conntrack.Labels{0: 1})}
	data := dropAttr(dropAttr(encodeFlow(t, &f, time.Time{}), ctaProtoinfo), ctaLabels)
	ev, ok := decodeEvent(nlHeader{Type: nfnlSubsysCTNetlink<<8 | ctMsgNew}, data)
	if !ok || ev.Type != conntrack.EventUpdate {
		t.Fatalf("decodeEvent = %+v, %v; want an UPDATE", ev, ok)
	}
	if !ev.NoState || !ev.NoLabels || ev.Flow.State != 0 || ev.Flow.Labels != (conntrack.LabelsRef{}) || ev.Flow.Mark != 60 {
		t.Errorf("UPDATE without protoinfo and labels decoded as %+v", ev)
	}
	ev, _ = decodeEvent(nlHeader{Type: nfnlSubsysCTNetlink<<8 | ctMsgNew}, encodeFlow(t, &f, time.Time{}))
	if ev.NoState || ev.NoLabels || ev.Flow.State != 3 || ev.Flow.Labels != f.Labels {
		t.Errorf("UPDATE with protoinfo and labels decoded as %+v", ev)
	}
}

func BenchmarkDecodeFlow(b *testing.B) {
	f := conntrack.Flow{ID: 1, Family: conntrack.IPv4, Proto: conntrack.ProtoTCP, State: 3,
		Orig:        conntrack.Tuple{Src: conntrack.MustParseAddr("10.0.0.1"), Dst: conntrack.MustParseAddr("10.0.0.2"), SrcPort: 40000, DstPort: 443},
		Reply:       conntrack.Tuple{Src: conntrack.MustParseAddr("10.0.0.2"), Dst: conntrack.MustParseAddr("10.0.0.1"), SrcPort: 443, DstPort: 40000},
		HasCounters: true, OrigCount: conntrack.Counter{Packets: 10, Bytes: 1000}, ReplyCount: conntrack.Counter{Packets: 12, Bytes: 9000}}
	data := encodeFlow(b, &f, time.Time{})
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var out conntrack.Flow
	for b.Loop() {
		out = conntrack.Flow{}
		if _, err := decodeFlow(data, &out); err != nil {
			b.Fatal(err)
		}
	}
}
