package kernel

// A real-kernel test of ended records for flows whose DESTROY event never
// comes. The namespace is told to send no conntrack events at all
// (nf_conntrack_events=0, a per-namespace sysctl that dies with the
// namespace): then the kernel deletes a flow and says nothing, exactly
// what a table sees when the DESTROY was lost in an overrun. Only the
// table's periodic dump can tell that the flow is gone.

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/conntrack/nstest"
)

func TestTableVanishedRealKernel(t *testing.T) {
	nstest.Require(t, "nft")
	a, b := nstest.Pair(t)
	// Before any flow exists: the kernel decides at a flow's creation
	// whether it will send events for it.
	a.WriteSysctl(t, "net/netfilter/nf_conntrack_events", "0")
	src, err := Open(a.Path())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	guard, err := EnableAccounting(src.NetnsFile(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := guard.Restore(); err != nil {
			t.Errorf("restore sysctls: %v", err)
		}
	})
	tbl := conntrack.NewTable(conntrack.TableConfig{Kernel: src, Interval: 100 * time.Millisecond, Filter: allFilter(),
		Accounting: guard.Enabled})
	ended := tbl.SubscribeEnded(1024)
	sub := runTable(t, tbl)

	// A UDP flow from A to B with a known number of packets each way.
	const exchanges = 3
	echo := nstest.EchoUDP(t, b, nstest.AddrB4+":0")
	var c net.Conn
	if err := a.Do(func() (err error) { c, err = net.Dial("udp", echo.String()); return err }); err != nil {
		t.Fatal(err)
	}
	sport := netip.MustParseAddrPort(c.LocalAddr().String()).Port()
	buf := make([]byte, 100)
	for range exchanges {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := c.Write(buf); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	c.Close() // sends nothing: the flow stays until deleted

	isOurs := func(f *conntrack.Flow) bool { return f.Proto == conntrack.ProtoUDP && f.Orig.SrcPort == sport }
	var last conntrack.Flow
	s := waitSnap(t, sub, "the flow with all its packets counted", func(s *conntrack.Snapshot) bool {
		for _, f := range s.Flows {
			if isOurs(f) && f.OrigCount.Packets == exchanges && f.ReplyCount.Packets == exchanges {
				last = *f
				return true
			}
		}
		return false
	})
	if s.Health.Events != 0 {
		t.Fatalf("%d events applied with nf_conntrack_events=0: the test would not show a lost DESTROY", s.Health.Events)
	}

	// The kernel deletes the flow, silently.
	if err := src.Delete(&last); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(30 * time.Second)
	for {
		select {
		case e := <-ended:
			if !isOurs(&e.Flow) {
				continue
			}
			if e.Reason != conntrack.EndVanished {
				t.Fatalf("ended record with reason %v, want vanished", e.Reason)
			}
			if !e.HasCounters || e.OrigCount != last.OrigCount || e.ReplyCount != last.ReplyCount ||
				e.Start != last.Start || e.Stop.Before(last.Seen.Time()) {
				t.Errorf("vanished record: counters %v/%v start %v stop %v; want %v/%v, start %v, stop after %v",
					e.OrigCount, e.ReplyCount, e.Start, e.Stop, last.OrigCount, last.ReplyCount, last.Start, last.Seen)
			}
			waitSnap(t, sub, "the vanished flow counted", func(s *conntrack.Snapshot) bool { return s.Health.Vanished >= 1 })
			return
		case <-deadline:
			t.Fatal("no ended record within 30 s for the flow deleted without a DESTROY event")
		}
	}
}
