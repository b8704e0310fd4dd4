package nstest

import (
	"slices"
	"testing"
)

func TestConntrackTuples(t *testing.T) {
	line := "ipv4     2 tcp      6 431999 ESTABLISHED src=192.0.2.1 dst=192.0.2.2 sport=1 dport=2 packets=5 bytes=300 " +
		"src=192.0.2.2 dst=192.0.2.1 sport=2 dport=1 packets=4 bytes=200 [ASSURED] mark=0 use=1"
	words, o, r, ok := ConntrackTuples(line)
	if !ok || !slices.Equal(words, []string{"ipv4", "2", "tcp", "6", "431999", "ESTABLISHED"}) {
		t.Fatalf("words %q ok %v", words, ok)
	}
	if o["sport"] != "1" || o["bytes"] != "300" || r["src"] != "192.0.2.2" || r["packets"] != "4" || r["mark"] != "0" {
		t.Errorf("orig %v reply %v", o, r)
	}
	if _, _, _, ok := ConntrackTuples("conntrack v1.4.7 (conntrack-tools): 1 flow entries have been shown."); ok {
		t.Error("a summary line parsed as a flow")
	}
}
