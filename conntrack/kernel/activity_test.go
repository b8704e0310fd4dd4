package kernel

import "testing"

func TestSNMPPackets(t *testing.T) {
	snmp := []byte(`Ip: Forwarding DefaultTTL InReceives InHdrErrors InAddrErrors ForwDatagrams InUnknownProtos InDiscards InDelivers OutRequests OutDiscards
Ip: 2 64 87331 0 0 0 0 0 87331 87254 0
Icmp: InMsgs InErrors
Icmp: 110 0
`)
	if got := snmpPackets(snmp); got != 87331+87254 {
		t.Errorf("snmpPackets = %d, want %d", got, 87331+87254)
	}
	snmp6 := []byte("Ip6InReceives                   \t1\nIp6InHdrErrors 5\nIp6OutRequests                  \t10\n")
	if got := snmp6Packets(snmp6); got != 11 {
		t.Errorf("snmp6Packets = %d, want 11", got)
	}
	if snmpPackets(nil) != 0 || snmp6Packets([]byte("garbage")) != 0 {
		t.Error("unreadable counters must read as 0")
	}
}
