package conntrack

// Protocol state names, as conntrack(8) prints them.
var (
	tcpStates = [...]string{"NONE", "SYN_SENT", "SYN_RECV", "ESTABLISHED", "FIN_WAIT",
		"CLOSE_WAIT", "LAST_ACK", "TIME_WAIT", "CLOSE", "SYN_SENT2"}
	sctpStates = [...]string{"NONE", "CLOSED", "COOKIE_WAIT", "COOKIE_ECHOED", "ESTABLISHED",
		"SHUTDOWN_SENT", "SHUTDOWN_RECD", "SHUTDOWN_ACK_SENT", "HEARTBEAT_SENT", "HEARTBEAT_ACKED"}
	dccpStates = [...]string{"NONE", "REQUEST", "RESPOND", "PARTOPEN", "OPEN",
		"CLOSEREQ", "CLOSING", "TIMEWAIT", "IGNORE", "INVALID"}
)

// StateName returns the protocol state of a TCP, SCTP or DCCP flow by its
// kernel name ("ESTABLISHED"), and "" for stateless protocols.
func (f *Flow) StateName() string {
	return stateName(f.Proto, f.State)
}

func stateName(p Proto, s uint8) string {
	var names []string
	switch p {
	case ProtoTCP:
		names = tcpStates[:]
	case ProtoSCTP:
		names = sctpStates[:]
	case ProtoDCCP:
		names = dccpStates[:]
	default:
		return ""
	}
	if int(s) < len(names) {
		return names[s]
	}
	return "STATE_" + itoa(uint64(s))
}
