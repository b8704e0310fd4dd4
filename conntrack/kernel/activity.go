package kernel

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"strconv"
)

// IPActivity counts the IP packets a namespace received and sent (IPv4 and
// IPv6 together), to tell an idle namespace from one whose traffic
// conntrack does not track.
type IPActivity struct {
	snmp, snmp6 *os.File
}

// OpenIPActivity opens the namespace's /proc/net/snmp and snmp6.
func OpenIPActivity(ns *os.File) (*IPActivity, error) {
	files, err := openInNetns(ns, os.O_RDONLY, "/proc/thread-self/net/snmp", "/proc/thread-self/net/snmp6")
	if err != nil {
		return nil, fmt.Errorf("open IP counters: %w", err)
	}
	return &IPActivity{files[0], files[1]}, nil
}

// Packets returns received plus sent IP packets; 0 when unknown.
func (a *IPActivity) Packets() uint64 {
	if a == nil {
		return 0
	}
	return snmpPackets(readAll(a.snmp)) + snmp6Packets(readAll(a.snmp6))
}

// Close closes the files.
func (a *IPActivity) Close() error {
	if a == nil {
		return nil
	}
	a.snmp.Close()
	return a.snmp6.Close()
}

func readAll(f *os.File) []byte {
	b, err := io.ReadAll(io.NewSectionReader(f, 0, 1<<20))
	if err != nil {
		return nil
	}
	return b
}

// snmpPackets sums InReceives and OutRequests of the "Ip:" lines of
// /proc/net/snmp: a header line of names, then a line of values.
func snmpPackets(b []byte) uint64 {
	var names [][]byte
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) == 0 || string(f[0]) != "Ip:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		var sum uint64
		for i, n := range names {
			if i < len(f) && (string(n) == "InReceives" || string(n) == "OutRequests") {
				v, _ := strconv.ParseUint(string(f[i]), 10, 64)
				sum += v
			}
		}
		return sum
	}
	return 0
}

// snmp6Packets sums Ip6InReceives and Ip6OutRequests of /proc/net/snmp6.
func snmp6Packets(b []byte) uint64 {
	var sum uint64
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) == 2 && (string(f[0]) == "Ip6InReceives" || string(f[0]) == "Ip6OutRequests") {
			v, _ := strconv.ParseUint(string(f[1]), 10, 64)
			sum += v
		}
	}
	return sum
}
