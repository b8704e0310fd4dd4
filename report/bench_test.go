package report

import (
	"encoding/json"
	"io"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack"
)

func benchSnapshot(n int) *conntrack.Snapshot {
	r := rand.New(rand.NewPCG(3, 4))
	flows := make([]conntrack.Flow, n)
	for i := range flows {
		flows[i] = conntrack.Flow{ID: uint32(i), Family: conntrack.IPv4, Proto: conntrack.ProtoTCP,
			Orig:        conntrack.Tuple{Src: conntrack.MustParseAddr("192.0.2.1"), Dst: conntrack.MustParseAddr("198.51.100.1"), SrcPort: uint16(i), DstPort: 443},
			HasCounters: true, OrigCount: conntrack.Counter{Packets: 10, Bytes: uint64(r.IntN(1 << 20))},
			OrigRate: conntrack.Rate{Bytes: float32(r.IntN(1 << 16))}}
	}
	return &conntrack.Snapshot{Time: time.Unix(1_700_000_000, 0), Flows: conntrack.Pointers(flows), TableFlows: n}
}

// BenchmarkTop is the sort behind every JSON document: the top 10 of 100k
// flows (--limit 10) and a full sort.
func BenchmarkTop(b *testing.B) {
	s := benchSnapshot(100_000)
	for _, limit := range []int{10, 0} {
		b.Run("limit"+strconv.Itoa(limit), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Top(s.Flows, SortRate, s.Time, limit)
			}
		})
	}
}

// BenchmarkBuild makes a whole document of 100k flows, listing the top 100.
func BenchmarkBuild(b *testing.B) {
	s := benchSnapshot(100_000)
	b.ReportAllocs()
	for b.Loop() {
		Build(s, Options{Host: "bench", Limit: 100})
	}
}

// BenchmarkEncode writes the document of every flow of a 100k table (no
// --limit): Prepared.Encode, one flow at a time, against encoding/json of
// the whole document.
func BenchmarkEncode(b *testing.B) {
	s := benchSnapshot(100_000)
	b.Run("prepared", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := Prepare(s, Options{Host: "bench"}).Encode(io.Discard); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encoding-json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if err := json.NewEncoder(io.Discard).Encode(Build(s, Options{Host: "bench"})); err != nil {
				b.Fatal(err)
			}
		}
	})
}
