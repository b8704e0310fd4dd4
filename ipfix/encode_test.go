package ipfix

import (
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/flowtop/flowtop/conntrack"
)

var (
	t0   = time.Date(2025, 3, 1, 12, 0, 0, 250e6, time.UTC)
	boot = t0.Add(-48 * time.Hour).UnixMilli()
)

func tuple(src string, sport uint16, dst string, dport uint16) conntrack.Tuple {
	return conntrack.Tuple{Src: conntrack.MustParseAddr(src), Dst: conntrack.MustParseAddr(dst), SrcPort: sport, DstPort: dport}
}

// Flows of every kind: plain, source-NATed (masquerade), IPv6 with NAT,
// ICMP.
var (
	tcp4 = conntrack.Flow{ID: 101, Family: conntrack.IPv4, Proto: conntrack.ProtoTCP, State: 7,
		Orig: tuple("192.0.2.1", 40000, "192.0.2.2", 443), Reply: tuple("192.0.2.2", 443, "192.0.2.1", 40000)}
	masq4 = conntrack.Flow{ID: 102, Family: conntrack.IPv4, Proto: conntrack.ProtoUDP,
		Orig: tuple("10.1.0.2", 5000, "198.51.100.7", 53), Reply: tuple("198.51.100.7", 53, "198.51.100.1", 61000)}
	nat6 = conntrack.Flow{ID: 103, Family: conntrack.IPv6, Proto: conntrack.ProtoTCP, State: 3,
		Orig: tuple("fd00::2", 41000, "2001:db8::80", 80), Reply: tuple("2001:db8::80", 80, "2001:db8::1", 1024)}
	icmp6 = conntrack.Flow{ID: 104, Family: conntrack.IPv6, Proto: conntrack.ProtoICMPv6,
		ICMP: conntrack.ICMP{ID: 7, Type: 128},
		Orig: tuple("2001:db8::1", 0, "2001:db8::2", 0), Reply: tuple("2001:db8::2", 0, "2001:db8::1", 0)}
	icmp4 = conntrack.Flow{ID: 105, Family: conntrack.IPv4, Proto: conntrack.ProtoICMP,
		ICMP: conntrack.ICMP{ID: 9, Type: 8, Code: 0},
		Orig: tuple("192.0.2.1", 0, "192.0.2.2", 0), Reply: tuple("192.0.2.2", 0, "192.0.2.1", 0)}
)

// want is what a decoded record should hold, by element.
type want map[string]any

// view turns a decoded record into a want, reading each element as the
// registry types it (addresses as text, the rest as numbers).
func view(r dataRecord) want {
	w := want{}
	for k, b := range r.fields {
		switch k.id {
		case ieSourceIPv4Address, ieDestinationIPv4Address, ieSourceIPv6Address, ieDestinationIPv6Address,
			iePostNATSourceIPv4Address, iePostNATDestinationIPv4Address, iePostNATSourceIPv6Address, iePostNATDestinationIPv6Address:
			if k.pen == 0 {
				w[k.String()] = r.addr(k.id)
				continue
			}
		}
		_ = b
		w[k.String()] = r.uk(k)
	}
	return w
}

func TestEncodeRoundTrip(t *testing.T) {
	start, end := t0.Add(-90*time.Second).UnixMilli(), t0.UnixMilli()
	o, r := conntrack.Counter{Packets: 12, Bytes: 3400}, conntrack.Counter{Packets: 30, Bytes: 45000}
	for _, tc := range []struct {
		name   string
		format Format
		rec    record
		tmpl   uint16
		want   want
	}{
		{"ipfix tcp4 closed", FormatIPFIX, flowRecord(&tcp4, o, r, start, end, endReason(&tcp4)), tmplIPv4, want{
			"148": uint64(101), "152": uint64(start), "153": uint64(end),
			"1": uint64(3400), "2": uint64(12), "29305/1": uint64(45000), "29305/2": uint64(30),
			"4": uint64(6), "136": uint64(endOfFlow), "61": uint64(0), "239": uint64(1),
			"7": uint64(40000), "11": uint64(443), "32": uint64(0),
			"8": "192.0.2.1", "12": "192.0.2.2",
		}},
		{"ipfix masquerade: post-NAT from the reply tuple", FormatIPFIX, flowRecord(&masq4, o, r, start, end, endActiveTimeout), tmplIPv4NAT, want{
			"148": uint64(102), "152": uint64(start), "153": uint64(end),
			"1": uint64(3400), "2": uint64(12), "29305/1": uint64(45000), "29305/2": uint64(30),
			"4": uint64(17), "136": uint64(endActiveTimeout), "61": uint64(0), "239": uint64(1),
			"7": uint64(5000), "11": uint64(53), "32": uint64(0),
			"8": "10.1.0.2", "12": "198.51.100.7",
			"225": "198.51.100.1", "226": "198.51.100.7", "227": uint64(61000), "228": uint64(53),
		}},
		{"ipfix nat6", FormatIPFIX, flowRecord(&nat6, o, r, start, end, endReason(&nat6)), tmplIPv6NAT, want{
			"148": uint64(103), "152": uint64(start), "153": uint64(end),
			"1": uint64(3400), "2": uint64(12), "29305/1": uint64(45000), "29305/2": uint64(30),
			"4": uint64(6), "136": uint64(endIdleTimeout), "61": uint64(0), "239": uint64(1),
			"7": uint64(41000), "11": uint64(80), "139": uint64(0),
			"27": "fd00::2", "28": "2001:db8::80",
			"281": "2001:db8::1", "282": "2001:db8::80", "227": uint64(1024), "228": uint64(80),
		}},
		{"ipfix icmpv6", FormatIPFIX, flowRecord(&icmp6, o, r, start, end, endReason(&icmp6)), tmplIPv6, want{
			"148": uint64(104), "152": uint64(start), "153": uint64(end),
			"1": uint64(3400), "2": uint64(12), "29305/1": uint64(45000), "29305/2": uint64(30),
			"4": uint64(58), "136": uint64(endIdleTimeout), "61": uint64(0), "239": uint64(1),
			"7": uint64(0), "11": uint64(0), "139": uint64(128 << 8),
			"27": "2001:db8::1", "28": "2001:db8::2",
		}},
		{"ipfix NAT44 create event", FormatIPFIX, natEventRecord(&masq4, natSessionCreate, start), tmplNATEvent, want{
			"323": uint64(start), "148": uint64(102), "230": uint64(4), "4": uint64(17),
			"8": "10.1.0.2", "225": "198.51.100.1", "12": "198.51.100.7", "226": "198.51.100.7",
			"7": uint64(5000), "227": uint64(61000), "11": uint64(53), "228": uint64(53),
		}},
		{"nf9 masquerade", FormatNF9, flowRecord(&masq4, o, r, start, end, endReason(&masq4)), tmplIPv4NAT, want{
			"22": uint64(start - boot), "21": uint64(end - boot),
			"1": uint64(3400), "2": uint64(12), "23": uint64(45000), "24": uint64(30),
			"4": uint64(17), "61": uint64(0), "7": uint64(5000), "11": uint64(53), "32": uint64(0),
			"8": "10.1.0.2", "12": "198.51.100.7",
			"225": "198.51.100.1", "226": "198.51.100.7", "227": uint64(61000), "228": uint64(53),
		}},
		{"nf9 icmp4", FormatNF9, flowRecord(&icmp4, o, r, start, end, endReason(&icmp4)), tmplIPv4, want{
			"22": uint64(start - boot), "21": uint64(end - boot),
			"1": uint64(3400), "2": uint64(12), "23": uint64(45000), "24": uint64(30),
			"4": uint64(1), "61": uint64(0), "7": uint64(0), "11": uint64(0), "32": uint64(8 << 8),
			"8": "192.0.2.1", "12": "192.0.2.2",
		}},
		{"nf9 ipv6", FormatNF9, flowRecord(&icmp6, o, r, start, end, endReason(&icmp6)), tmplIPv6, want{
			"22": uint64(start - boot), "21": uint64(end - boot),
			"1": uint64(3400), "2": uint64(12), "23": uint64(45000), "24": uint64(30),
			"4": uint64(58), "61": uint64(0), "7": uint64(0), "11": uint64(0), "32": uint64(128 << 8),
			"27": "2001:db8::1", "28": "2001:db8::2",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc := newEncoder(tc.format, 1372, 42, boot)
			for k := range kinds {
				if !enc.addTemplate(k) {
					t.Fatalf("template %d does not fit", k)
				}
			}
			if !enc.add(&tc.rec) {
				t.Fatal("record does not fit")
			}
			c := newCollectorState()
			m, err := c.decode(enc.finish(t0))
			if err != nil {
				t.Fatal(err)
			}
			if m.domain != 42 || m.unknownSets != 0 || len(m.records) != 1 {
				t.Fatalf("domain %d, %d unknown sets, %d records; want 42, 0, 1", m.domain, m.unknownSets, len(m.records))
			}
			if tc.format == FormatNF9 && m.count != 0 {
				t.Errorf("v9 header count off by %d", -m.count)
			}
			if got := m.records[0].template; got != tc.tmpl {
				t.Errorf("template %d, want %d", got, tc.tmpl)
			}
			if diff := cmp.Diff(tc.want, view(m.records[0])); diff != "" {
				t.Errorf("record (-want +got):\n%s", diff)
			}
		})
	}
}

// TestNF9Times: a collector finds the boot time as unix_secs*1000 -
// sysUptime (nfdump does), and from it the flow's times to the
// millisecond, although the header's clock counts whole seconds.
func TestNF9Times(t *testing.T) {
	start, end := t0.Add(-1500*time.Millisecond).UnixMilli(), t0.Add(-250*time.Millisecond).UnixMilli()
	enc := newEncoder(FormatNF9, 1372, 0, boot)
	for k := range kinds {
		enc.addTemplate(k)
	}
	rec := flowRecord(&tcp4, conntrack.Counter{}, conntrack.Counter{}, start, end, 1)
	enc.add(&rec)
	m, err := newCollectorState().decode(enc.finish(t0))
	if err != nil {
		t.Fatal(err)
	}
	bootSeen := int64(m.exportSecs)*1000 - int64(m.sysUptime)
	r := m.records[0]
	if got := bootSeen + int64(r.u(nf9FirstSwitched)); got != start {
		t.Errorf("first switched gives %v, want %v", time.UnixMilli(got).UTC(), time.UnixMilli(start).UTC())
	}
	if got := bootSeen + int64(r.u(nf9LastSwitched)); got != end {
		t.Errorf("last switched gives %v, want %v", time.UnixMilli(got).UTC(), time.UnixMilli(end).UTC())
	}
	if m.exportSecs != uint32(t0.Unix()) {
		t.Errorf("unix_secs %d, want %d", m.exportSecs, t0.Unix())
	}
}

// TestMessagesFitAndCount fills messages of the smallest size allowed
// and of the default one: each holds as many records as fit and no more,
// every record comes out, v9 flowsets are padded to four bytes, and the
// sequence numbers count data records (IPFIX) or messages (v9).
func TestMessagesFitAndCount(t *testing.T) {
	recs := []record{
		flowRecord(&tcp4, conntrack.Counter{Packets: 1, Bytes: 2}, conntrack.Counter{Packets: 3, Bytes: 4}, 1, 2, 1),
		flowRecord(&masq4, conntrack.Counter{Packets: 1, Bytes: 2}, conntrack.Counter{Packets: 3, Bytes: 4}, 1, 2, 1),
		flowRecord(&nat6, conntrack.Counter{Packets: 1, Bytes: 2}, conntrack.Counter{Packets: 3, Bytes: 4}, 1, 2, 1),
		flowRecord(&icmp6, conntrack.Counter{Packets: 1, Bytes: 2}, conntrack.Counter{Packets: 3, Bytes: 4}, 1, 2, 1),
	}
	for _, format := range []Format{FormatIPFIX, FormatNF9} {
		for _, size := range []int{minMessage(format), DefaultMTU - ipv4UDPHeaders} {
			t.Run(string(format)+"/"+strconv.Itoa(size), func(t *testing.T) {
				enc := newEncoder(format, size, 0, boot)
				c := newCollectorState()
				var got, msgs, wantSeq int
				send := func() {
					if enc.empty() {
						return
					}
					n := enc.records()
					b := enc.finish(t0)
					if len(b) > size {
						t.Fatalf("message of %d bytes, limit %d", len(b), size)
					}
					m, err := c.decode(b)
					if err != nil {
						t.Fatal(err)
					}
					if format == FormatNF9 && (m.count != 0 || m.paddingBytes > 3) {
						t.Fatalf("v9: header count off by %d, %d padding bytes", -m.count, m.paddingBytes)
					}
					if format == FormatIPFIX && m.paddingBytes != 0 {
						t.Fatalf("IPFIX: %d stray bytes", m.paddingBytes)
					}
					if int(m.seq) != wantSeq {
						t.Fatalf("message %d: sequence %d, want %d", msgs, m.seq, wantSeq)
					}
					if format == FormatNF9 {
						wantSeq++
					} else {
						wantSeq += n
					}
					got += len(m.records)
					msgs++
					enc.reset()
				}
				for k := range kinds {
					if !enc.addTemplate(k) {
						send()
						if !enc.addTemplate(k) {
							t.Fatalf("template %d alone does not fit in %d bytes", k, size)
						}
					}
				}
				const n = 500
				for i := range n {
					r := recs[i%len(recs)]
					if !enc.add(&r) {
						send()
						if !enc.add(&r) {
							t.Fatalf("a record alone does not fit in %d bytes", size)
						}
					}
				}
				send()
				if got != n {
					t.Errorf("%d records decoded, want %d", got, n)
				}
				t.Logf("%d records in %d messages of at most %d bytes", n, msgs, size)
			})
		}
	}
}
