// Package ipfix exports ended and long-lived flows to IPFIX (RFC 7011) or
// NetFlow v9 (RFC 3954) collectors over UDP or TCP, as routers do: one
// record per connection when the kernel destroys it, with its final
// counters, and for long connections a record every active timeout with
// the counters since the previous one (docs/ipfix.md lists the elements).
//
// A record is an RFC 5103 biflow: the original direction is the source,
// its counters are octetDeltaCount and packetDeltaCount, and the reply
// direction's are the same elements under the reverse enterprise number
// 29305 (NetFlow v9: IN_BYTES/IN_PKTS and OUT_BYTES/OUT_PKTS). A NATed
// flow carries the post-NAT addresses and ports of its reply tuple.
//
// The set of elements is small and fixed, so the encoder is written here
// with the element numbers as named constants rather than taken from a
// general IPFIX library (see docs/ipfix.md for the size this saves).
//
// The Exporter is one of flowtop's exporters (package export): made by
// Config.New from an export.Env, it reads the table only through the
// Env's Latest and its own Ended subscription and never blocks either:
// ended flows are turned into records at once and handed to each
// collector's sender through a bounded queue; what does not fit is
// dropped and counted.
package ipfix
