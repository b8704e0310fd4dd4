package enrich

import (
	"net/netip"
	"testing"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/geo"
	"github.com/google/go-cmp/cmp"
)

func matchTuple(src string, sport uint16, dst string, dport uint16) conntrack.Tuple {
	return conntrack.Tuple{
		Src: conntrack.AddrFrom(netip.MustParseAddr(src)), SrcPort: sport,
		Dst: conntrack.AddrFrom(netip.MustParseAddr(dst)), DstPort: dport,
	}
}

// TestMatcher is the one table of what a filter finds, on the screen (/)
// and in MQTT requests alike.
func TestMatcher(t *testing.T) {
	flows := []conntrack.Flow{
		{ID: 1, Family: conntrack.IPv4, Proto: conntrack.ProtoTCP, State: 3, // SNAT to the web
			Orig: matchTuple("192.168.1.10", 51000, "93.184.216.34", 443), Reply: matchTuple("93.184.216.34", 443, "203.0.113.5", 61000)},
		{ID: 2, Family: conntrack.IPv4, Proto: conntrack.ProtoTCP, State: 3, // ssh
			Orig: matchTuple("192.168.1.11", 40000, "192.168.1.1", 22), Reply: matchTuple("192.168.1.1", 22, "192.168.1.11", 40000)},
		{ID: 3, Family: conntrack.IPv4, Proto: conntrack.ProtoTCP, State: 7, // port 2222
			Orig: matchTuple("192.168.1.12", 40001, "192.168.1.1", 2222), Reply: matchTuple("192.168.1.1", 2222, "192.168.1.12", 40001)},
		{ID: 4, Family: conntrack.IPv6, Proto: conntrack.ProtoUDP,
			Orig: matchTuple("2001:db8::10", 5353, "2001:db8::53", 53), Reply: matchTuple("2001:db8::53", 53, "2001:db8::10", 5353)},
		{ID: 5, Family: conntrack.IPv4, Proto: conntrack.ProtoICMP, ICMP: conntrack.ICMP{ID: 22, Type: 8},
			Orig: matchTuple("192.168.1.10", 0, "192.168.1.1", 0), Reply: matchTuple("192.168.1.1", 0, "192.168.1.10", 0)},
	}
	names := map[uint32]Names{
		1: {Service: "https", DstName: "example.com", DstGeo: geo.Info{Country: "US", CountryName: "United States", ASOrg: "Edgecast"},
			Process: Process{Name: "firefox", PID: 4242, User: "alice"}},
		2: {Service: "ssh", Process: Process{Name: "ssh", PID: 22, User: "bob"}},
		3: {Service: "EtherNet/IP-1"},
		4: {Service: "domain"},
	}
	var m Matcher
	for _, c := range []struct {
		query string
		want  []uint32
	}{
		{"", []uint32{1, 2, 3, 4, 5}},
		{"ssh", []uint32{2}},                  // service and process
		{"FIREFOX", []uint32{1}},              // case-insensitive
		{"22", []uint32{2}},                   // a whole port or PID: not 2222, not an ICMP id
		{"2222", []uint32{3}},                 //
		{"4242", []uint32{1}},                 // PID
		{"203.0.113.5", []uint32{1}},          // the NAT address of the reply tuple
		{"192.168.1.1", []uint32{1, 2, 3, 5}}, // a substring of addresses
		{"=192.168.1.1", []uint32{2, 3, 5}},   // a whole address
		{"2001:db8::53", []uint32{4}},         // IPv6
		{"tcp established", []uint32{1, 2}},   // every word must match
		{"time_wait", []uint32{3}},            // the state
		{"edgecast", []uint32{1}},             // AS organisation
		{"united", []uint32{1}},               // country name
		{"icmp", []uint32{5}},                 // protocol
		{"nothing-matches", nil},              //
		{"ssh nothing-matches", nil},          //
		{"  SSH  ", []uint32{2}},              // spaces and case
	} {
		q := ParseQuery(c.query)
		var got []uint32
		for i := range flows {
			n := names[flows[i].ID]
			if m.Match(&flows[i], &n, q) {
				got = append(got, flows[i].ID)
			}
		}
		if d := cmp.Diff(c.want, got); d != "" {
			t.Errorf("query %q (-want +got):\n%s", c.query, d)
		}
	}
}
