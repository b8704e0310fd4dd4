package conntrack

import (
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
)

func TestStateName(t *testing.T) {
	tcp := []string{"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT",
		"CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2"}
	for s, want := range tcp {
		f := Flow{Proto: ProtoTCP, State: uint8(s)}
		if got := f.StateName(); got != want {
			t.Errorf("TCP state %d = %q, want %q", s, got, want)
		}
	}
	cases := []struct {
		proto Proto
		state uint8
		want  string
	}{
		{ProtoSCTP, 0, "NONE"},
		{ProtoSCTP, 1, "CLOSED"},
		{ProtoSCTP, 4, "ESTABLISHED"},
		{ProtoSCTP, 7, "SHUTDOWN_ACK_SENT"},
		{ProtoSCTP, 8, "HEARTBEAT_SENT"},
		{ProtoDCCP, 1, "REQUEST"},
		{ProtoDCCP, 4, "OPEN"},
		{ProtoDCCP, 7, "TIMEWAIT"},
		{ProtoDCCP, 9, "INVALID"},
		{ProtoTCP, 10, "STATE_10"},
		{ProtoTCP, 255, "STATE_255"},
		{ProtoSCTP, 42, "STATE_42"},
		{ProtoUDP, 3, ""},
		{ProtoICMP, 0, ""},
		{ProtoICMPv6, 0, ""},
		{ProtoGRE, 2, ""},
	}
	for _, c := range cases {
		f := Flow{Proto: c.proto, State: c.state}
		if got := f.StateName(); got != c.want {
			t.Errorf("%s state %d = %q, want %q", c.proto, c.state, got, c.want)
		}
	}
}

func TestNAT(t *testing.T) {
	a := MustParseAddr
	client, server, public := a("10.0.0.2"), a("93.184.216.34"), a("203.0.113.1")
	inner := a("10.0.0.80")
	cases := []struct {
		name        string
		orig, reply Tuple
		want        NAT
	}{
		{"none", Tuple{Src: client, Dst: server, SrcPort: 40000, DstPort: 443},
			Tuple{Src: server, Dst: client, SrcPort: 443, DstPort: 40000}, NATNone},
		{"snat address", Tuple{Src: client, Dst: server, SrcPort: 40000, DstPort: 443},
			Tuple{Src: server, Dst: public, SrcPort: 443, DstPort: 40000}, NATSNAT},
		{"snat port only (masquerade remap)", Tuple{Src: client, Dst: server, SrcPort: 40000, DstPort: 443},
			Tuple{Src: server, Dst: client, SrcPort: 443, DstPort: 61000}, NATSNAT},
		{"dnat address", Tuple{Src: server, Dst: public, SrcPort: 50000, DstPort: 80},
			Tuple{Src: inner, Dst: server, SrcPort: 80, DstPort: 50000}, NATDNAT},
		{"dnat port only (redirect)", Tuple{Src: client, Dst: server, SrcPort: 40000, DstPort: 80},
			Tuple{Src: server, Dst: client, SrcPort: 3128, DstPort: 40000}, NATDNAT},
		{"both", Tuple{Src: client, Dst: public, SrcPort: 40000, DstPort: 80},
			Tuple{Src: inner, Dst: a("10.0.0.1"), SrcPort: 8080, DstPort: 40000}, NATBoth},
		{"icmp none", Tuple{Src: client, Dst: server}, Tuple{Src: server, Dst: client}, NATNone},
	}
	for _, c := range cases {
		f := Flow{Orig: c.orig, Reply: c.reply}
		if got := f.NAT(); got != c.want {
			t.Errorf("%s: NAT = %v, want %v", c.name, got, c.want)
		}
	}
	names := map[NAT]string{NATNone: "", NATSNAT: "snat", NATDNAT: "dnat", NATBoth: "both"}
	for n, want := range names {
		if n.String() != want {
			t.Errorf("NAT(%d).String() = %q, want %q", n, n.String(), want)
		}
	}
}

func TestStatusNames(t *testing.T) {
	cases := []struct {
		s    Status
		want []string
	}{
		{0, nil},
		{StatusConfirmed, []string{"CONFIRMED"}},
		{StatusSeenReply | StatusAssured | StatusConfirmed | StatusSrcNAT | 1<<7,
			[]string{"SEEN_REPLY", "ASSURED", "CONFIRMED", "SRC_NAT", "SRC_NAT_DONE"}},
		{StatusExpected | StatusDstNAT | StatusDying | StatusOffload | 1<<15,
			[]string{"EXPECTED", "DST_NAT", "DYING", "OFFLOAD", "HW_OFFLOAD"}},
		// Bits without a name are left out rather than invented.
		{1 << 30, nil},
	}
	for _, c := range cases {
		if diff := cmp.Diff(c.want, c.s.Names()); diff != "" {
			t.Errorf("Status(%#x).Names() (-want +got):\n%s", uint32(c.s), diff)
		}
	}
}

func TestProtoAndFamilyNames(t *testing.T) {
	protos := map[Proto]string{ProtoTCP: "tcp", ProtoUDP: "udp", ProtoUDPLite: "udplite", ProtoICMP: "icmp",
		ProtoICMPv6: "icmpv6", ProtoSCTP: "sctp", ProtoDCCP: "dccp", ProtoGRE: "gre", 0: "0", 255: "255", 41: "41"}
	for p, want := range protos {
		if p.String() != want {
			t.Errorf("Proto(%d) = %q, want %q", uint8(p), p.String(), want)
		}
	}
	for _, p := range []Proto{ProtoTCP, ProtoUDP, ProtoUDPLite, ProtoSCTP, ProtoDCCP} {
		if !p.HasPorts() {
			t.Errorf("%s has ports", p)
		}
	}
	for _, p := range []Proto{ProtoICMP, ProtoICMPv6, ProtoGRE, 0} {
		if p.HasPorts() {
			t.Errorf("%s has no ports", p)
		}
	}
	if IPv4.String() != "ipv4" || IPv6.String() != "ipv6" || Family(0).String() != "unknown" {
		t.Errorf("family names: %s %s %s", IPv4, IPv6, Family(0))
	}
}

func TestAge(t *testing.T) {
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	if _, ok := (&Flow{}).Age(now); ok {
		t.Error("a flow without start time has a known age")
	}
	f := Flow{Start: StampOf(now.Add(-90 * time.Second))}
	if age, ok := f.Age(now); !ok || age != 90*time.Second {
		t.Errorf("Age = %v, %v; want 90s, true", age, ok)
	}
	// A start a little in the future (clock skew) is age 0, not negative.
	f.Start = StampOf(now.Add(time.Second))
	if age, ok := f.Age(now); !ok || age != 0 {
		t.Errorf("Age of future start = %v, %v; want 0, true", age, ok)
	}
}

// TestFlowRecordSize: the table holds a record and an entry per flow, and
// every byte of them is 100 KB of a 100k-flow table: a field added here
// should be worth that. (A record is 192 bytes since the ICMP fields and
// the labels moved out of the tuples, 216 before; an entry 24, 32 before.)
func TestFlowRecordSize(t *testing.T) {
	if s := unsafe.Sizeof(Flow{}); s > 192 {
		t.Errorf("a Flow is %d bytes, more than 192", s)
	}
	if s := unsafe.Sizeof(entry{}); s > 24 {
		t.Errorf("a table entry is %d bytes, more than 24", s)
	}
}

// TestSameConnection: what tells two kernel entries apart, ICMP ids
// included (two pings to one host share their addresses).
func TestSameConnection(t *testing.T) {
	a, b := MustParseAddr("192.0.2.1"), MustParseAddr("192.0.2.2")
	ping := Flow{ID: 7, Proto: ProtoICMP, Orig: Tuple{Src: a, Dst: b}, Reply: Tuple{Src: b, Dst: a}, ICMP: ICMP{ID: 1, Type: 8}}
	same := ping
	same.Reply.Dst = MustParseAddr("203.0.113.1") // the reply tuple is not part of the key
	same.OrigCount.Bytes = 100
	if !ping.SameConnection(&same) {
		t.Error("a flow with new counters and reply tuple is not the same connection")
	}
	for name, change := range map[string]func(*Flow){
		"another ping":  func(f *Flow) { f.ICMP.ID = 2 },
		"another type":  func(f *Flow) { f.ICMP.Type = 13 },
		"another zone":  func(f *Flow) { f.Zone = 1 },
		"another proto": func(f *Flow) { f.Proto = ProtoICMPv6 },
		"another src":   func(f *Flow) { f.Orig.Src = MustParseAddr("192.0.2.3") },
	} {
		other := ping
		change(&other)
		if ping.SameConnection(&other) {
			t.Errorf("%s: SameConnection is true", name)
		}
	}
}

// TestKeyAgreesWithSameConnection: two flows have equal keys exactly when
// SameConnection says they are one entry, whatever field differs.
func TestKeyAgreesWithSameConnection(t *testing.T) {
	a, b := MustParseAddr("192.0.2.1"), MustParseAddr("192.0.2.2")
	web := Flow{ID: 7, Family: IPv4, Proto: ProtoTCP, State: 3, Zone: 1,
		Orig:  Tuple{Src: a, Dst: b, SrcPort: 40000, DstPort: 443},
		Reply: Tuple{Src: b, Dst: a, SrcPort: 443, DstPort: 40000}}
	ping := Flow{ID: 8, Family: IPv4, Proto: ProtoICMP, Orig: Tuple{Src: a, Dst: b}, Reply: Tuple{Src: b, Dst: a}, ICMP: ICMP{ID: 1, Type: 8}}
	for name, c := range map[string]struct {
		base   Flow
		change func(*Flow)
	}{
		"nothing":        {web, func(*Flow) {}},
		"another id":     {web, func(f *Flow) { f.ID = 9 }}, // a reused ID is not the key
		"new counters":   {web, func(f *Flow) { f.OrigCount.Bytes, f.OrigRate.Bytes = 100, 5 }},
		"new state":      {web, func(f *Flow) { f.State, f.Status, f.Timeout = 4, StatusAssured, 30 }},
		"another reply":  {web, func(f *Flow) { f.Reply.Dst = MustParseAddr("203.0.113.1") }},
		"another mark":   {web, func(f *Flow) { f.Mark = 3 }},
		"another src":    {web, func(f *Flow) { f.Orig.Src = MustParseAddr("192.0.2.3") }},
		"another dst":    {web, func(f *Flow) { f.Orig.Dst = MustParseAddr("2001:db8::1") }},
		"another sport":  {web, func(f *Flow) { f.Orig.SrcPort++ }},
		"another dport":  {web, func(f *Flow) { f.Orig.DstPort++ }},
		"another proto":  {web, func(f *Flow) { f.Proto = ProtoUDP }},
		"another zone":   {web, func(f *Flow) { f.Zone = 2 }},
		"another ping":   {ping, func(f *Flow) { f.ICMP.ID = 2 }},
		"another type":   {ping, func(f *Flow) { f.ICMP.Type = 13 }},
		"another code":   {ping, func(f *Flow) { f.ICMP.Code = 1 }},
		"ping, new rate": {ping, func(f *Flow) { f.ReplyRate.Bytes = 84 }},
	} {
		other := c.base
		c.change(&other)
		same := c.base.SameConnection(&other)
		if got := c.base.Key() == other.Key(); got != same {
			t.Errorf("%s: keys equal = %v, SameConnection = %v", name, got, same)
		}
	}
	// As a map key: one entry per connection.
	m := map[Key]int{web.Key(): 1, ping.Key(): 2}
	moved := web
	moved.ID, moved.OrigCount.Bytes = 99, 1000
	if m[moved.Key()] != 1 || len(m) != 2 {
		t.Errorf("map by Key: %v", m)
	}
}
