package ipfix

import (
	"testing"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/export"
)

// BenchmarkEncode packs records into messages of the default size, as a
// sender does (a message is finished and started again when full): the
// cost per record, allocations included.
//
//	go test -run '^$' -bench Encode -benchmem ./ipfix/
func BenchmarkEncode(b *testing.B) {
	o, r := conntrack.Counter{Packets: 12, Bytes: 3400}, conntrack.Counter{Packets: 30, Bytes: 45000}
	recs := []record{
		flowRecord(&tcp4, o, r, 1, 2, 3),
		flowRecord(&masq4, o, r, 1, 2, 3),
		flowRecord(&nat6, o, r, 1, 2, 3),
		flowRecord(&icmp4, o, r, 1, 2, 3),
	}
	for _, format := range []Format{FormatIPFIX, FormatNF9} {
		b.Run(string(format), func(b *testing.B) {
			enc := newEncoder(format, DefaultMTU-ipv4UDPHeaders, 0, boot)
			bytes := 0
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				rec := &recs[i%len(recs)]
				if !enc.add(rec) {
					bytes += len(enc.finish(t0))
					enc.reset()
					enc.add(rec)
				}
			}
			b.ReportMetric(float64(bytes)/float64(b.N), "B/record")
		})
	}
}

// BenchmarkEnded is the exporter's side of an ended flow: the filter, the
// record made from the flow, the hand-over to a collector's queue (drained
// here as the sender would).
func BenchmarkEnded(b *testing.B) {
	ft := newFakeTable()
	ft.publish(t0, allFilter())
	e, err := New(Config{URLs: []string{"udp://127.0.0.1:9"}}, export.Env{Latest: ft.Latest})
	if err != nil {
		b.Fatal(err)
	}
	e.senders[0].prepare()
	flows := []conntrack.Ended{
		{Flow: counted(tcp4, t0, 1000, 2000), Stop: t0.Add(1e9)},
		{Flow: counted(masq4, t0, 1000, 2000), Stop: t0.Add(1e9)},
	}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		e.ended(&flows[i%len(flows)])
		<-e.senders[0].q
	}
}
