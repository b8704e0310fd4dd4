package kernel

import (
	"encoding/binary"
	"github.com/flowtop/flowtop/conntrack"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	tconntrack "github.com/ti-mo/conntrack"

	"github.com/flowtop/flowtop/conntrack/nstest"
)

func TestSumStats(t *testing.T) {
	perCPU := []tconntrack.Stats{
		{CPUID: 0, Found: 1, Invalid: 2, Insert: 3, InsertFailed: 4, Drop: 5, EarlyDrop: 6, Error: 7, SearchRestart: 8},
		// 32-bit per-CPU counters near their top must not wrap in the sum.
		{CPUID: 1, Found: 1 << 31, Invalid: 1 << 31, Insert: 1, InsertFailed: 1 << 31, Drop: 1 << 31,
			EarlyDrop: 1, Error: 1, SearchRestart: 1 << 31},
		{CPUID: 2, Found: 1 << 31},
	}
	want := conntrack.KernelStats{CPUs: 3, Found: 1 + 1<<32, Invalid: 2 + 1<<31, Insert: 4, InsertFailed: 4 + 1<<31,
		Drop: 5 + 1<<31, EarlyDrop: 7, Error: 8, SearchRestart: 8 + 1<<31}
	if diff := cmp.Diff(want, sumStats(perCPU)); diff != "" {
		t.Errorf("sumStats (-want +got):\n%s", diff)
	}
}

// TestStatsReaderInNamespace sends TCP segments conntrack finds invalid
// (SYN and FIN together) inside a throw-away namespace, then checks that
// the statistics read over ctnetlink count them and agree with
// `conntrack -S` run in the same namespace.
func TestStatsReaderInNamespace(t *testing.T) {
	nstest.Require(t, "nft", "conntrack")
	a, _ := nstest.Pair(t)
	r := openStatsIn(t, a.Path())
	before, err := r.Read()
	if err != nil {
		t.Fatal(err)
	}
	if before.CPUs < 1 {
		t.Fatalf("no per-CPU record: %+v", before)
	}
	if before.Max <= 0 {
		t.Errorf("nf_conntrack_max = %d, want > 0", before.Max)
	}

	const invalid = 5
	var c net.PacketConn
	if err := a.Do(func() (err error) { c, err = net.ListenPacket("ip4:tcp", nstest.AddrA4); return err }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	seg := make([]byte, 20)
	binary.BigEndian.PutUint16(seg[0:], 40000)
	binary.BigEndian.PutUint16(seg[2:], 9)
	seg[12] = 5 << 4      // header length: 5 words
	seg[13] = 0x01 | 0x02 // FIN and SYN: an invalid combination
	for range invalid {
		if _, err := c.WriteTo(seg, &net.IPAddr{IP: net.ParseIP(nstest.AddrB4)}); err != nil {
			t.Fatal(err)
		}
	}

	var got conntrack.KernelStats
	deadline := time.Now().Add(30 * time.Second)
	for {
		if got, err = r.Read(); err != nil {
			t.Fatal(err)
		}
		if got.Invalid >= before.Invalid+invalid || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got.Invalid < before.Invalid+invalid {
		t.Fatalf("invalid = %d after %d invalid segments, was %d", got.Invalid, invalid, before.Invalid)
	}

	// The namespace is quiet now: conntrack -S reads the same numbers.
	cli := sumConntrackS(t, a.Exec(t, "conntrack", "-S"))
	cli.Max = got.Max
	if diff := cmp.Diff(cli, got); diff != "" {
		t.Errorf("statistics differ from conntrack -S (-cli +flowtop):\n%s", diff)
	}
}

// sumConntrackS adds up the per-CPU lines of `conntrack -S`:
//
//	cpu=0 found=0 invalid=5 insert=0 insert_failed=0 drop=0 early_drop=0 error=0 search_restart=0 ...
func sumConntrackS(t *testing.T, out string) conntrack.KernelStats {
	t.Helper()
	var s conntrack.KernelStats
	fields := map[string]*uint64{"found": &s.Found, "invalid": &s.Invalid, "insert": &s.Insert,
		"insert_failed": &s.InsertFailed, "drop": &s.Drop, "early_drop": &s.EarlyDrop, "error": &s.Error,
		"search_restart": &s.SearchRestart}
	for _, line := range strings.Split(out, "\n") {
		if !strings.HasPrefix(line, "cpu=") {
			continue
		}
		s.CPUs++
		for _, kv := range strings.Fields(line) {
			k, v, _ := strings.Cut(kv, "=")
			if p, ok := fields[k]; ok {
				n, err := strconv.ParseUint(v, 10, 64)
				if err != nil {
					t.Fatalf("conntrack -S: %q: %v", kv, err)
				}
				*p += n
			}
		}
	}
	return s
}

// TestStatsCloseDoesNotWaitForRead: Close returns while a Read holds the
// reader (as one stuck in the kernel would), and that Read's socket is
// closed under it, so a stuck scrape cannot hold up flowtop's exit.
func TestStatsCloseDoesNotWaitForRead(t *testing.T) {
	a, _ := nstest.Pair(t)
	r := openStatsIn(t, a.Path())
	r.mu.Lock() // a Read under way
	closed := make(chan error, 1)
	go func() { closed <- r.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close: %v", err)
		}
		r.mu.Unlock()
	case <-time.After(nstest.Patience):
		t.Errorf("Close waited %v for a Read under way", nstest.Patience)
		r.mu.Unlock()
		<-closed // it returns now
	}
	if _, err := r.Read(); err == nil {
		t.Error("Read after Close: no error")
	}
}

// openStatsIn opens a StatsReader in the namespace at nsPath, closed when
// the test ends.
func openStatsIn(t *testing.T, nsPath string) *StatsReader {
	t.Helper()
	ns, err := os.Open(nsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ns.Close()
	r, err := OpenStats(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}
