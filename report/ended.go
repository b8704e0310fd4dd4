package report

import (
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
)

// Ended is the accounting record of a flow the kernel destroyed: both
// tuples, the final counters each way, and when it started and stopped.
// Exporters publish these in batches (a JSON array of Ended).
type Ended struct {
	ID         uint32 `json:"id"`
	Family     string `json:"family"`
	Proto      string `json:"proto"`
	ProtoNum   uint8  `json:"proto_num"`
	State      string `json:"state"`
	Src        string `json:"src"`
	Sport      uint16 `json:"sport"`
	Dst        string `json:"dst"`
	Dport      uint16 `json:"dport"`
	ReplySrc   string `json:"reply_src"`
	ReplySport uint16 `json:"reply_sport"`
	ReplyDst   string `json:"reply_dst"`
	ReplyDport uint16 `json:"reply_dport"`
	// ICMP flows have no ports; they carry type, code and id instead.
	ICMPType *uint8   `json:"icmp_type,omitempty"`
	ICMPCode *uint8   `json:"icmp_code,omitempty"`
	ICMPID   *uint16  `json:"icmp_id,omitempty"`
	NAT      string   `json:"nat"`
	Status   []string `json:"status"`
	// Counted is false when the flow began while accounting was off: its
	// counters are then null, not zero.
	Counted bool   `json:"counted"`
	Orig    Counts `json:"orig"`
	Reply   Counts `json:"reply"`
	// Start is null when the flow began while timestamps were off; so is
	// DurationS then.
	Start     *time.Time `json:"start"`
	Stop      time.Time  `json:"stop"`
	DurationS *float64   `json:"duration_s"`
	Mark      uint32     `json:"mark"`
	Zone      uint16     `json:"zone"`
	Labels    string     `json:"labels,omitempty"`

	// Enrichment, present when known.
	Service  string   `json:"service,omitempty"`
	SService string   `json:"sservice,omitempty"`
	SrcName  string   `json:"src_name,omitempty"`
	DstName  string   `json:"dst_name,omitempty"`
	SrcGeo   *Geo     `json:"src_geo,omitempty"`
	DstGeo   *Geo     `json:"dst_geo,omitempty"`
	Process  *Process `json:"process,omitempty"`
}

// Counts holds the final counters of one direction; both are null when
// the flow was not counted.
type Counts struct {
	Bytes   *uint64 `json:"bytes"`
	Packets *uint64 `json:"packets"`
}

// BuildEnded makes the records of ended flows, in the order given. names
// may be nil.
func BuildEnded(ended []conntrack.Ended, names enrich.Namer) []Ended {
	out := make([]Ended, len(ended))
	for i := range ended {
		out[i] = endedDoc(&ended[i], names)
	}
	return out
}

func endedDoc(e *conntrack.Ended, names enrich.Namer) Ended {
	// Share the tuple, state and ICMP rendering with the snapshot's flows.
	f := flowDoc(&e.Flow, e.Stop)
	if names != nil {
		addNames(&f, names.Names(&e.Flow))
	}
	d := Ended{
		ID: f.ID, Family: f.Family, Proto: f.Proto, ProtoNum: f.ProtoNum, State: f.State,
		Src: f.Src, Sport: f.Sport, Dst: f.Dst, Dport: f.Dport,
		ReplySrc: f.ReplySrc, ReplySport: f.ReplySport, ReplyDst: f.ReplyDst, ReplyDport: f.ReplyDport,
		ICMPType: f.ICMPType, ICMPCode: f.ICMPCode, ICMPID: f.ICMPID,
		NAT: f.NAT, Status: f.Status, Counted: f.Counted,
		Orig:  Counts{Bytes: f.Orig.Bytes, Packets: f.Orig.Packets},
		Reply: Counts{Bytes: f.Reply.Bytes, Packets: f.Reply.Packets},
		Stop:  e.Stop.UTC(),
		Mark:  f.Mark, Zone: f.Zone, Labels: f.Labels,
		Service: f.Service, SService: f.SService, SrcName: f.SrcName, DstName: f.DstName,
		SrcGeo: f.SrcGeo, DstGeo: f.DstGeo, Process: f.Process,
	}
	if !e.Start.IsZero() {
		start := e.Start.Time().UTC()
		d.Start = &start
		secs := 0.0
		if dur := e.Stop.Sub(e.Start.Time()); dur > 0 {
			secs = dur.Seconds()
		}
		d.DurationS = &secs
	}
	return d
}
