package ui

import (
	"cmp"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/enrich"
)

// tabID names a tab of the screen.
type tabID int

const (
	tabFlows tabID = iota
	tabProcesses
	tabHosts
	tabRemote
	numTabs
)

var tabNames = [numTabs]string{"Flows", "Processes", "Hosts", "Remote"}

// colID names a column. Columns belong to one tab, listed in tabColumns.
type colID int

const (
	// Flows tab.
	cProcess colID = iota
	cPID
	cProto
	cState
	cAge
	cSource
	cDest
	cPort
	cGeo
	cBytesSrc
	cRateSrc
	cBytesDst
	cRateDst
	cRate
	// Processes tab (with cProcess, cPID, cBytes*, cRate*).
	cUser
	cFlows
	// Hosts and Remote tabs.
	cHost
	cName
	cCountry
	cAS
	cBytesUp
	cRateUp
	cBytesDown
	cRateDown
	numCols
)

// colDef describes a column. prio decides which columns a narrow terminal
// drops first (the lowest); max caps names so one long name cannot push
// every other column off the screen (longer text ends in an ellipsis).
type colDef struct {
	title   string
	right   bool // right-aligned (numbers)
	numeric bool // sorts descending first
	prio    int
	max     int
}

var cols = [numCols]colDef{
	cProcess:   {title: "PROCESS", prio: 60, max: 16},
	cPID:       {title: "PID", right: true, numeric: true, prio: 20},
	cProto:     {title: "PROTO", prio: 70},
	cState:     {title: "STATE", prio: 30},
	cAge:       {title: "AGE", right: true, numeric: true, prio: 40},
	cSource:    {title: "SOURCE", prio: 95, max: 40},
	cDest:      {title: "DESTINATION", prio: 100, max: 40},
	cPort:      {title: "PORT", prio: 80, max: 16},
	cGeo:       {title: "GEO", prio: 25},
	cBytesSrc:  {title: "BYTES_SRC", right: true, numeric: true, prio: 35},
	cRateSrc:   {title: "RATE_SRC", right: true, numeric: true, prio: 50},
	cBytesDst:  {title: "BYTES_DST", right: true, numeric: true, prio: 45},
	cRateDst:   {title: "RATE_DST", right: true, numeric: true, prio: 55},
	cRate:      {title: "RATE", right: true, numeric: true, prio: 90},
	cUser:      {title: "USER", prio: 30, max: 16},
	cFlows:     {title: "FLOWS", right: true, numeric: true, prio: 85},
	cHost:      {title: "ADDRESS", prio: 100, max: 40},
	cName:      {title: "NAME", prio: 65, max: 40},
	cCountry:   {title: "COUNTRY", prio: 28, max: 24},
	cAS:        {title: "AS", prio: 22, max: 30},
	cBytesUp:   {title: "BYTES_UP", right: true, numeric: true, prio: 45},
	cRateUp:    {title: "RATE_UP", right: true, numeric: true, prio: 75},
	cBytesDown: {title: "BYTES_DOWN", right: true, numeric: true, prio: 40},
	cRateDown:  {title: "RATE_DOWN", right: true, numeric: true, prio: 78},
}

// tabColumns lists each tab's columns in display order. cSource shows only
// with -s / the s key.
var tabColumns = [numTabs][]colID{
	tabFlows: {cProcess, cPID, cProto, cState, cAge, cSource, cDest, cPort, cGeo,
		cBytesSrc, cRateSrc, cBytesDst, cRateDst, cRate},
	tabProcesses: {cProcess, cPID, cUser, cFlows, cBytesSrc, cRateSrc, cBytesDst, cRateDst, cRate},
	tabHosts:     {cHost, cName, cFlows, cBytesUp, cRateUp, cBytesDown, cRateDown, cRate},
	tabRemote: {cHost, cName, cGeo, cCountry, cAS, cFlows, cBytesUp, cRateUp, cBytesDown,
		cRateDown, cRate},
}

// defaultSort is each tab's starting order: total rate, descending.
func defaultSort() [numTabs]sortSpec {
	var s [numTabs]sortSpec
	for i := range s {
		s[i] = sortSpec{col: cRate, desc: true}
	}
	return s
}

// sortSpec is a tab's sort column and direction.
type sortSpec struct {
	col  colID
	desc bool
}

// minWidth is the narrowest a column may be, so that numbers do not make
// it jitter as they change: rates and byte counts get room for their
// widest value.
func minWidth(c colID, bits bool) int {
	switch c {
	case cRateSrc, cRateDst, cRate, cRateUp, cRateDown:
		return rateWidth(bits)
	case cBytesSrc, cBytesDst, cBytesUp, cBytesDown:
		return len("999.9MB")
	case cAge:
		return 3
	}
	return 0
}

// fmtOpts are the display toggles that change cell text.
type fmtOpts struct {
	now     time.Time // the snapshot's time, for ages
	bits    bool
	numeric bool
}

// addrOrName prints name when names are on and one is known, else the
// address.
func addrOrName(a netip.Addr, name string, numeric bool) string {
	if !numeric && name != "" {
		return name
	}
	return addrString(a)
}

// portText is the PORT column: the service name when known, else the
// number; ICMP shows type/code.
func portText(f *conntrack.Flow, n *enrich.Names) string {
	switch {
	case f.Proto.HasPorts():
		if n.Service != "" {
			return n.Service
		}
		return strconv.Itoa(int(f.Orig.DstPort))
	case f.Proto == conntrack.ProtoICMP || f.Proto == conntrack.ProtoICMPv6:
		return strconv.Itoa(int(f.ICMP.Type)) + "/" + strconv.Itoa(int(f.ICMP.Code))
	}
	return ""
}

func pidText(pid int) string {
	if pid == 0 {
		return ""
	}
	return strconv.Itoa(pid)
}

// counted prints a counter, "-" when the flow has none (accounting was off
// when it began: unknown, not zero).
func counted(ok bool, s string) string {
	if !ok {
		return "-"
	}
	return s
}

// flowCell is the text of column c for flow f (not yet escaped).
func flowCell(c colID, f *conntrack.Flow, n *enrich.Names, o *fmtOpts) string {
	switch c {
	case cProcess:
		return n.Process.Name
	case cPID:
		return pidText(n.Process.PID)
	case cProto:
		return f.Proto.String()
	case cState:
		return f.StateName()
	case cAge:
		return flowAge(f, o.now)
	case cSource:
		return addrOrName(f.Orig.Src.IP(), n.SrcName, o.numeric)
	case cDest:
		return addrOrName(f.Orig.Dst.IP(), n.DstName, o.numeric)
	case cPort:
		return portText(f, n)
	case cGeo:
		return n.DstGeo.Country
	case cBytesSrc:
		return counted(f.HasCounters, fmtBytes(f.OrigCount.Bytes))
	case cRateSrc:
		return counted(f.HasCounters, fmtRate(float64(f.OrigRate.Bytes), o.bits))
	case cBytesDst:
		return counted(f.HasCounters, fmtBytes(f.ReplyCount.Bytes))
	case cRateDst:
		return counted(f.HasCounters, fmtRate(float64(f.ReplyRate.Bytes), o.bits))
	case cRate:
		return counted(f.HasCounters, fmtRate(f.TotalRate(), o.bits))
	}
	return ""
}

// sortKey is what a row sorts by in one column: a number, or a string, or
// an address (compared as addresses, not as text).
type sortKey struct {
	num  float64
	str  string
	addr netip.Addr
}

func compareKeys(a, b *sortKey) int {
	if c := cmp.Compare(a.num, b.num); c != 0 {
		return c
	}
	if c := strings.Compare(a.str, b.str); c != 0 {
		return c
	}
	return a.addr.Compare(b.addr)
}

// needsNames reports whether sorting by c needs each flow's names.
func needsNames(c colID, numeric bool) bool {
	switch c {
	case cProcess, cPID, cPort, cGeo, cUser, cCountry, cAS:
		return true
	case cSource, cDest, cName:
		return !numeric
	}
	return false
}

// addrKey sorts by name when one is shown, else by address.
func addrKey(a netip.Addr, name string, numeric bool) sortKey {
	if !numeric && name != "" {
		return sortKey{str: strings.ToLower(name)}
	}
	// Addresses sort after names and among themselves numerically.
	return sortKey{str: addrMarker, addr: a.Unmap()}
}

// addrMarker is the string key of rows that sort by address: larger than
// any name.
const addrMarker = "\xff"

// flowKey is the sort key of flow f in column c; n may be nil when
// needsNames(c) is false.
func flowKey(c colID, f *conntrack.Flow, n *enrich.Names, o *fmtOpts) sortKey {
	switch c {
	case cProcess:
		return sortKey{str: n.Process.Name}
	case cPID:
		return sortKey{num: float64(n.Process.PID)}
	case cProto:
		return sortKey{str: f.Proto.String()}
	case cState:
		return sortKey{str: f.StateName()}
	case cAge:
		age, ok := f.Age(o.now)
		if !ok {
			return sortKey{num: -1}
		}
		return sortKey{num: age.Seconds()}
	case cSource:
		return addrKey(f.Orig.Src.IP(), nameOf(n, true), o.numeric)
	case cDest:
		return addrKey(f.Orig.Dst.IP(), nameOf(n, false), o.numeric)
	case cPort:
		if f.Proto.HasPorts() {
			return sortKey{num: float64(f.Orig.DstPort), str: n.Service}
		}
		return sortKey{num: -1}
	case cGeo:
		return sortKey{str: n.DstGeo.Country}
	case cBytesSrc:
		return sortKey{num: float64(f.OrigCount.Bytes)}
	case cRateSrc:
		return sortKey{num: float64(f.OrigRate.Bytes)}
	case cBytesDst:
		return sortKey{num: float64(f.ReplyCount.Bytes)}
	case cRateDst:
		return sortKey{num: float64(f.ReplyRate.Bytes)}
	}
	return sortKey{num: f.TotalRate()}
}

func nameOf(n *enrich.Names, src bool) string {
	if n == nil {
		return ""
	}
	if src {
		return n.SrcName
	}
	return n.DstName
}
