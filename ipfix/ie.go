package ipfix

// Information element numbers from IANA's IPFIX registry
// (https://www.iana.org/assignments/ipfix), the only ones flowtop sends.
// NetFlow v9 shares the numbers below 128 and the NAT ones (Cisco's NSEL
// and NEL use 225-230 and 323 the same way).
const (
	ieOctetDeltaCount                  = 1
	iePacketDeltaCount                 = 2
	ieProtocolIdentifier               = 4
	ieSourceTransportPort              = 7
	ieSourceIPv4Address                = 8
	ieDestinationTransportPort         = 11
	ieDestinationIPv4Address           = 12
	ieSourceIPv6Address                = 27
	ieDestinationIPv6Address           = 28
	ieIcmpTypeCodeIPv4                 = 32
	ieFlowDirection                    = 61
	ieFlowEndReason                    = 136
	ieIcmpTypeCodeIPv6                 = 139
	ieFlowID                           = 148
	ieFlowStartMilliseconds            = 152
	ieFlowEndMilliseconds              = 153
	iePostNATSourceIPv4Address         = 225
	iePostNATDestinationIPv4Address    = 226
	iePostNAPTSourceTransportPort      = 227
	iePostNAPTDestinationTransportPort = 228
	ieNatEvent                         = 230
	ieBiflowDirection                  = 239
	iePostNATSourceIPv6Address         = 281
	iePostNATDestinationIPv6Address    = 282
	ieObservationTimeMilliseconds      = 323
)

// NetFlow v9 field types (RFC 3954) that differ from IPFIX's: v9 counts
// the reply direction as OUT_BYTES/OUT_PKTS in the same record, and times
// are milliseconds of system uptime.
const (
	nf9InBytes       = 1
	nf9InPkts        = 2
	nf9LastSwitched  = 21
	nf9FirstSwitched = 22
	nf9OutBytes      = 23
	nf9OutPkts       = 24
	nf9ICMPType      = 32 // type<<8 | code, for ICMPv6 too
)

// reversePEN is the enterprise number of RFC 5103's reverse elements: an
// element with it counts the reply direction of a biflow.
const reversePEN = 29305

// Values of flowEndReason (IE 136).
const (
	endIdleTimeout   = 1
	endActiveTimeout = 2
	endOfFlow        = 3
)

// Values of natEvent (IE 230) for NAT44 sessions (RFC 8158).
const (
	natSessionCreate = 4
	natSessionDelete = 5
)

// biflowInitiator is biflowDirection 1: the source address is the
// connection's initiator (conntrack's original direction).
const biflowInitiator = 1

// flowIngress is flowDirection 0: the record describes the flow as it
// came in, before NAT (its post-NAT addresses are separate elements).
const flowIngress = 0

// value names what a template field carries, so that a template is plain
// data and one switch fills every field of every template.
type value uint8

const (
	vFlowID value = iota
	vStartMs
	vEndMs
	vFirstSwitched // NetFlow v9: start, in milliseconds of uptime
	vLastSwitched
	vSrc4
	vDst4
	vSrc6
	vDst6
	vSrcPort
	vDstPort
	vProto
	vICMPTypeCode
	vOrigOctets
	vOrigPackets
	vReplyOctets
	vReplyPackets
	vEndReason
	vFlowDirection
	vBiflowDirection
	vPostSrc4
	vPostDst4
	vPostSrc6
	vPostDst6
	vPostSrcPort
	vPostDstPort
	vNATEvent
	vObsTimeMs
)

// field is one field specifier of a template.
type field struct {
	id   uint16
	pen  uint32 // enterprise number, 0 for IANA's elements
	size uint16
	v    value
}

// template is a template record: its fields in order and the length of
// every data record made with it.
type template struct {
	id     uint16
	fields []field
	size   int
}

func newTemplate(id uint16, fields ...field) *template {
	t := &template{id: id, fields: fields}
	for _, f := range fields {
		t.size += int(f.size)
	}
	return t
}

// Template IDs (data set IDs start at 256 in both protocols).
const (
	tmplIPv4 = 256 + iota
	tmplIPv4NAT
	tmplIPv6
	tmplIPv6NAT
	tmplNATEvent
)

// templateSet is the templates of one format, indexed by recordKind.
type templateSet [kinds]*template

// recordKind picks a record's template.
type recordKind uint8

const (
	kindIPv4 recordKind = iota
	kindIPv4NAT
	kindIPv6
	kindIPv6NAT
	kindNATEvent
	kinds
)

// ipfixTemplates are the IPFIX templates. The order of the common fields
// is the same in all four flow templates.
func ipfixTemplates() templateSet {
	head := []field{
		{ieFlowID, 0, 8, vFlowID},
		{ieFlowStartMilliseconds, 0, 8, vStartMs},
		{ieFlowEndMilliseconds, 0, 8, vEndMs},
		{ieOctetDeltaCount, 0, 8, vOrigOctets},
		{iePacketDeltaCount, 0, 8, vOrigPackets},
		{ieOctetDeltaCount, reversePEN, 8, vReplyOctets},
		{iePacketDeltaCount, reversePEN, 8, vReplyPackets},
		{ieProtocolIdentifier, 0, 1, vProto},
		{ieFlowEndReason, 0, 1, vEndReason},
		{ieFlowDirection, 0, 1, vFlowDirection},
		{ieBiflowDirection, 0, 1, vBiflowDirection},
		{ieSourceTransportPort, 0, 2, vSrcPort},
		{ieDestinationTransportPort, 0, 2, vDstPort},
	}
	v4 := append(head[:len(head):len(head)],
		field{ieIcmpTypeCodeIPv4, 0, 2, vICMPTypeCode},
		field{ieSourceIPv4Address, 0, 4, vSrc4},
		field{ieDestinationIPv4Address, 0, 4, vDst4})
	v6 := append(head[:len(head):len(head)],
		field{ieIcmpTypeCodeIPv6, 0, 2, vICMPTypeCode},
		field{ieSourceIPv6Address, 0, 16, vSrc6},
		field{ieDestinationIPv6Address, 0, 16, vDst6})
	ports := []field{
		{iePostNAPTSourceTransportPort, 0, 2, vPostSrcPort},
		{iePostNAPTDestinationTransportPort, 0, 2, vPostDstPort},
	}
	return templateSet{
		kindIPv4: newTemplate(tmplIPv4, v4...),
		kindIPv4NAT: newTemplate(tmplIPv4NAT, append(append(v4[:len(v4):len(v4)],
			field{iePostNATSourceIPv4Address, 0, 4, vPostSrc4},
			field{iePostNATDestinationIPv4Address, 0, 4, vPostDst4}), ports...)...),
		kindIPv6: newTemplate(tmplIPv6, v6...),
		kindIPv6NAT: newTemplate(tmplIPv6NAT, append(append(v6[:len(v6):len(v6)],
			field{iePostNATSourceIPv6Address, 0, 16, vPostSrc6},
			field{iePostNATDestinationIPv6Address, 0, 16, vPostDst6}), ports...)...),
		kindNATEvent: natEventTemplate(),
	}
}

// nf9Templates are the NetFlow v9 templates: both directions' counters in
// one record as IN and OUT, times in milliseconds of uptime, no enterprise
// elements, and neither the flow ID nor the end reason (with CONN_ID, 148,
// nfdump takes v9 records for Cisco NSEL firewall events). NAT events are
// IPFIX only (RFC 8158).
func nf9Templates() templateSet {
	head := []field{
		{nf9FirstSwitched, 0, 4, vFirstSwitched},
		{nf9LastSwitched, 0, 4, vLastSwitched},
		{nf9InBytes, 0, 8, vOrigOctets},
		{nf9InPkts, 0, 8, vOrigPackets},
		{nf9OutBytes, 0, 8, vReplyOctets},
		{nf9OutPkts, 0, 8, vReplyPackets},
		{ieProtocolIdentifier, 0, 1, vProto},
		{ieFlowDirection, 0, 1, vFlowDirection},
		{ieSourceTransportPort, 0, 2, vSrcPort},
		{ieDestinationTransportPort, 0, 2, vDstPort},
		{nf9ICMPType, 0, 2, vICMPTypeCode},
	}
	v4 := append(head[:len(head):len(head)],
		field{ieSourceIPv4Address, 0, 4, vSrc4},
		field{ieDestinationIPv4Address, 0, 4, vDst4})
	v6 := append(head[:len(head):len(head)],
		field{ieSourceIPv6Address, 0, 16, vSrc6},
		field{ieDestinationIPv6Address, 0, 16, vDst6})
	ports := []field{
		{iePostNAPTSourceTransportPort, 0, 2, vPostSrcPort},
		{iePostNAPTDestinationTransportPort, 0, 2, vPostDstPort},
	}
	return templateSet{
		kindIPv4: newTemplate(tmplIPv4, v4...),
		kindIPv4NAT: newTemplate(tmplIPv4NAT, append(append(v4[:len(v4):len(v4)],
			field{iePostNATSourceIPv4Address, 0, 4, vPostSrc4},
			field{iePostNATDestinationIPv4Address, 0, 4, vPostDst4}), ports...)...),
		kindIPv6: newTemplate(tmplIPv6, v6...),
		kindIPv6NAT: newTemplate(tmplIPv6NAT, append(append(v6[:len(v6):len(v6)],
			field{iePostNATSourceIPv6Address, 0, 16, vPostSrc6},
			field{iePostNATDestinationIPv6Address, 0, 16, vPostDst6}), ports...)...),
	}
}

// natEventTemplate is RFC 8158's NAT44 session create/delete event
// (section 4.1.1), plus the conntrack ID to tie it to the flow records.
func natEventTemplate() *template {
	return newTemplate(tmplNATEvent,
		field{ieObservationTimeMilliseconds, 0, 8, vObsTimeMs},
		field{ieFlowID, 0, 8, vFlowID},
		field{ieSourceIPv4Address, 0, 4, vSrc4},
		field{iePostNATSourceIPv4Address, 0, 4, vPostSrc4},
		field{ieDestinationIPv4Address, 0, 4, vDst4},
		field{iePostNATDestinationIPv4Address, 0, 4, vPostDst4},
		field{ieSourceTransportPort, 0, 2, vSrcPort},
		field{iePostNAPTSourceTransportPort, 0, 2, vPostSrcPort},
		field{ieDestinationTransportPort, 0, 2, vDstPort},
		field{iePostNAPTDestinationTransportPort, 0, 2, vPostDstPort},
		field{ieProtocolIdentifier, 0, 1, vProto},
		field{ieNatEvent, 0, 1, vNATEvent},
	)
}
