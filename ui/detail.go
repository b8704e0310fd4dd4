package ui

import (
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
	"github.com/flowtop/flowtop/geo"
)

// refreshDetail shows the newest state of the flow in the detail view; a
// flow no longer in the snapshot keeps its last values, marked ended.
func (a *App) refreshDetail() {
	named := &a.detailFlow
	if s := a.view.snap; s != nil {
		// The snapshot is in no order, and IDs can collide: find the flow
		// by ID and key, in a linear scan (~0.1 ms for 100k flows, once
		// per tick).
		id, key := a.detailFlow.ID, a.detailFlow.Key()
		a.detailGone = true
		for _, f := range s.Flows {
			if f.ID == id && f.Key() == key && a.view.onNode(f, a.detailNode) {
				a.detailFlow, a.detailGone = *f, false
				named = f // a router's names are those of its record
				break
			}
		}
	}
	n := a.view.namer(a.names).Names(named)
	text := a.detailText(&a.detailFlow, &n)
	if nodeOf := a.view.nodeOf; nodeOf != nil && named != &a.detailFlow {
		// After the head line: which router the flow is on.
		at := strings.Index(text, "\n\n") + 2
		text = text[:at] + "[::b]Node        [::-] " + esc(nodeOf(named)) + "\n" + text[at:]
	}
	a.detail.SetText(text)
}

// flowSummary is a one-line description of a flow: "tcp 10.0.0.5:51234 →
// 93.184.216.34:443".
func flowSummary(f *conntrack.Flow) string {
	hp := f.Proto.HasPorts()
	return f.Proto.String() + " " + endpoint(f.Orig.Src.IP(), f.Orig.SrcPort, hp) + " → " +
		endpoint(f.Orig.Dst.IP(), f.Orig.DstPort, hp)
}

// detailText is the detail view of f: everything flowtop knows about it.
func (a *App) detailText(f *conntrack.Flow, n *enrich.Names) string {
	now := snapTime(a.view.snap, a.now)
	hp := f.Proto.HasPorts()
	var d detailDoc
	head := "[::b]Flow " + strconv.FormatUint(uint64(f.ID), 10) + "[::-]  " + f.Proto.String() + "  " + f.Family.String()
	if st := f.StateName(); st != "" {
		head += "  " + st
	}
	if a.detailGone {
		head += "  [red::b](ended)[-::-]"
	}
	d.WriteString(head + "\n\n")

	d.line("Original", esc(endpoint(f.Orig.Src.IP(), f.Orig.SrcPort, hp)+" → "+endpoint(f.Orig.Dst.IP(), f.Orig.DstPort, hp))+icmpText(f))
	d.line("Reply", esc(endpoint(f.Reply.Src.IP(), f.Reply.SrcPort, hp)+" → "+endpoint(f.Reply.Dst.IP(), f.Reply.DstPort, hp)))
	d.line("NAT", esc(natText(f)))
	d.WriteString("\n")
	d.process(n)
	d.end("Source", endpoint(f.Orig.Src.IP(), f.Orig.SrcPort, hp), n.SrcName, n.SrcService, &n.SrcGeo)
	d.end("Destination", endpoint(f.Orig.Dst.IP(), f.Orig.DstPort, hp), n.DstName, n.Service, &n.DstGeo)
	d.WriteString("\n")
	d.counters(f, a.p.bits)
	d.WriteString("\n")
	d.state(f, now, a.loc)
	return d.String()
}

// detailDoc is the text of the detail view being written.
type detailDoc struct{ strings.Builder }

// line writes a labelled line.
func (d *detailDoc) line(label, text string) {
	fmt.Fprintf(d, "[::b]%-12s[::-] %s\n", label, text)
}

// process writes the process owning the flow's socket, if any.
func (d *detailDoc) process(n *enrich.Names) {
	p := n.Process
	if !p.Known() {
		d.line("Process", "- (none found: forwarded, or not a local socket)")
		return
	}
	user := p.User
	if user == "" {
		user = "?"
	}
	d.line("Process", esc(p.Name)+"  [::b]PID[::-] "+strconv.Itoa(p.PID)+"  [::b]user[::-] "+esc(user))
	if p.Cmdline != "" {
		d.line("Command", esc(p.Cmdline))
	}
}

// end writes one end of the flow: address, name, service and GeoIP.
func (d *detailDoc) end(label, addr, name, svc string, g *geo.Info) {
	text := esc(addr)
	if name != "" {
		text += "  " + esc(name)
	}
	if svc != "" {
		text += "  [::b]service[::-] " + esc(svc)
	}
	d.line(label, text)
	if gt := geoText(g); gt != "" {
		d.line("", esc(gt))
	}
}

// counters writes the counters and rates of both directions, each column
// as wide as its widest value.
func (d *detailDoc) counters(f *conntrack.Flow, bits bool) {
	rows := [][]string{{"", "bytes", "packets", "rate", "avg 2s", "avg 10s", "avg 40s", "pkt/s"}}
	dir := func(name string, c conntrack.Counter, r conntrack.Rate) {
		bytes, pkts := "-", "-"
		if f.HasCounters {
			bytes, pkts = fmtBytes(c.Bytes), fmtCount(c.Packets)
		}
		rows = append(rows, []string{name, bytes, pkts, fmtRate(float64(r.Bytes), bits), fmtRate(float64(r.Avg2), bits),
			fmtRate(float64(r.Avg10), bits), fmtRate(float64(r.Avg40), bits), strconv.FormatFloat(float64(r.Packets), 'f', 1, 64)})
	}
	dir("src → dst", f.OrigCount, f.OrigRate)
	dir("dst → src", f.ReplyCount, f.ReplyRate)
	widths := make([]int, len(rows[0]))
	for _, r := range rows {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for ri, r := range rows {
		if ri == 0 {
			d.WriteString("[::b]")
		}
		for i, c := range r {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i == 0 {
				d.WriteString(c + pad)
			} else {
				d.WriteString("  " + pad + c)
			}
		}
		if ri == 0 {
			d.WriteString("[::-]")
		}
		d.WriteString("\n")
	}
	if !f.HasCounters {
		d.WriteString("(no counters: accounting was off when the flow began)\n")
	}
}

// state writes the kernel's state of the entry: status bits, mark, zone,
// labels, timeout and start (in loc).
func (d *detailDoc) state(f *conntrack.Flow, now time.Time, loc *time.Location) {
	status := strings.Join(f.Status.Names(), " ")
	if status == "" {
		status = "-"
	}
	d.line("Status", status)
	labels := "-"
	if l := f.Labels.Get(); l != (conntrack.Labels{}) {
		labels = hex.EncodeToString(l[:])
	}
	d.line("Mark", fmt.Sprintf("0x%08x  [::b]Zone[::-] %d  [::b]Labels[::-] %s", f.Mark, f.Zone, labels))
	d.line("Timeout", strconv.FormatUint(uint64(f.TimeLeft(now).Seconds()), 10)+"s")
	if f.Start.IsZero() {
		d.line("Start", "unknown (timestamps were off when it began)")
		return
	}
	age, _ := f.Age(now)
	d.line("Start", f.Start.Time().In(loc).Format("2006-01-02 15:04:05 MST")+"  (age "+fmtAge(age)+")")
}

func icmpText(f *conntrack.Flow) string {
	if f.Proto != conntrack.ProtoICMP && f.Proto != conntrack.ProtoICMPv6 {
		return ""
	}
	return fmt.Sprintf("  type %d code %d id %d", f.ICMP.Type, f.ICMP.Code, f.ICMP.ID)
}

// natText explains the translation: what the source appears as (SNAT)
// and where the destination really is (DNAT).
func natText(f *conntrack.Flow) string {
	hp := f.Proto.HasPorts()
	var parts []string
	switch f.NAT() {
	case conntrack.NATNone:
		return "none"
	case conntrack.NATSNAT, conntrack.NATBoth:
		parts = append(parts, "SNAT: source "+endpoint(f.Orig.Src.IP(), f.Orig.SrcPort, hp)+
			" appears as "+endpoint(f.Reply.Dst.IP(), f.Reply.DstPort, hp))
	}
	if n := f.NAT(); n == conntrack.NATDNAT || n == conntrack.NATBoth {
		parts = append(parts, "DNAT: destination "+endpoint(f.Orig.Dst.IP(), f.Orig.DstPort, hp)+
			" is really "+endpoint(f.Reply.Src.IP(), f.Reply.SrcPort, hp))
	}
	return strings.Join(parts, "; ")
}

// geoText prints a GeoIP record: "DE Germany, Berlin, AS3320 Deutsche
// Telekom".
func geoText(g *geo.Info) string {
	if !g.Known() {
		return ""
	}
	var parts []string
	place := strings.TrimSpace(g.Country + " " + g.CountryName)
	if place != "" {
		parts = append(parts, place)
	}
	if g.City != "" {
		parts = append(parts, g.City)
	}
	if g.ASN != 0 {
		parts = append(parts, strings.TrimSpace("AS"+strconv.FormatUint(uint64(g.ASN), 10)+" "+g.ASOrg))
	}
	return strings.Join(parts, ", ")
}
