package ipfix

import (
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack/nstest"
	"github.com/flowtop/flowtop/report"
)

func TestMain(m *testing.M) {
	code := m.Run()
	nstest.RemoveFlowtop()
	os.Exit(code)
}

// TestE2EFlowtopIPFIX runs the flowtop binary headless with --ipfix to a
// collector on loopback and real traffic in a namespace pair: an ended UDP
// flow arrives with the kernel's counters, a long TCP connection is
// exported on --ipfix-active-timeout before it ends, and
// health.exporters.ipfix counts what was sent.
func TestE2EFlowtopIPFIX(t *testing.T) {
	nstest.Require(t, "nft", "conntrack")
	a, b := nstest.Pair(t)
	bin := nstest.Flowtop(t)
	col := udpCollector(t)
	doc := filepath.Join(t.TempDir(), "flows.json")
	var stderr nstest.SyncBuffer
	cmd := exec.Command(bin, "-n", "--no-ui", "--netns", a.Path(), "-46TUI", "-t", "0.3",
		"--ipfix", "udp://"+col.addr, "--ipfix-active-timeout", "1s",
		"--write", doc, "--write-interval", "1s", "--state-dir", t.TempDir())
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
		if t.Failed() {
			t.Logf("flowtop: %s", tail(stderr.String(), 600))
		}
	})
	waitFor(t, 60*time.Second, "flowtop's first document", func() bool {
		_, err := os.Stat(doc)
		return err == nil
	})

	// A long TCP connection, exported on the active timeout while open.
	conn := dialTCP(t, a, nstest.EchoTCP(t, b, nstest.AddrB4+":0"))
	la := conn.c.LocalAddr().(*net.TCPAddr)
	waitFor(t, 30*time.Second, "an active-timeout record of the open TCP connection", func() bool {
		conn.echo(t, 500)
		byID, _, _ := col.records()
		for _, rs := range byID {
			for _, r := range rs {
				if r.u(ieSourceTransportPort) == uint64(la.Port) && r.u(ieFlowEndReason) == endActiveTimeout && r.u(ieOctetDeltaCount) > 0 {
					return true
				}
			}
		}
		return false
	})

	// An ended UDP flow: one record with the counters of its DESTROY.
	destroys := watchDestroys(t, a)
	echo := nstest.EchoUDP(t, b, nstest.AddrB4+":0")
	waitFor(t, 20*time.Second, "conntrack -E to listen", func() bool {
		k := udpExchange(t, a, echo, 1)
		a.Command("conntrack", "-D", "-p", "udp").Run()
		for range 10 {
			if _, ok := destroys.get(k); ok {
				return true
			}
			time.Sleep(20 * time.Millisecond)
		}
		return false
	})
	key := udpExchange(t, a, echo, 3)
	a.Exec(t, "conntrack", "-D", "-p", "udp")
	var ke kernelEnd
	waitFor(t, 20*time.Second, "the DESTROY event", func() bool {
		var ok bool
		ke, ok = destroys.get(key)
		return ok
	})
	var got []dataRecord
	waitFor(t, 20*time.Second, "the ended UDP flow's record", func() bool {
		got = got[:0]
		byID, _, _ := col.records()
		for _, rs := range byID {
			for _, r := range rs {
				if r.u(ieProtocolIdentifier) == 17 && "17 "+r.addr(ieSourceIPv4Address)+":"+strconv.Itoa(int(r.u(ieSourceTransportPort)))+">"+
					r.addr(ieDestinationIPv4Address)+":"+strconv.Itoa(int(r.u(ieDestinationTransportPort))) == key {
					got = append(got, r)
				}
			}
		}
		return len(got) > 0
	})
	if r := got[0]; len(got) != 1 || r.u(ieOctetDeltaCount) != ke.origBytes || r.u(iePacketDeltaCount) != ke.origPackets ||
		r.rev(ieOctetDeltaCount) != ke.replyBytes || r.rev(iePacketDeltaCount) != ke.replyPackets {
		t.Errorf("%s: %d records, first %d B/%d p and %d B/%d p; the kernel's DESTROY %+v", key, len(got),
			r.u(ieOctetDeltaCount), r.u(iePacketDeltaCount), r.rev(ieOctetDeltaCount), r.rev(iePacketDeltaCount), ke)
	}

	waitFor(t, 20*time.Second, "health.exporters.ipfix in the document", func() bool {
		b, err := os.ReadFile(doc)
		if err != nil {
			return false
		}
		var d struct {
			Health struct {
				Exporters map[string]report.ExporterHealth `json:"exporters"`
			} `json:"health"`
		}
		if err := json.Unmarshal(b, &d); err != nil {
			return false
		}
		h, ok := d.Health.Exporters["ipfix"]
		return ok && h.Published >= 2 && h.Dropped == 0
	})
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
		if code := cmd.ProcessState.ExitCode(); code != 0 {
			t.Errorf("exit status %d after SIGTERM, want 0", code)
		}
	case <-time.After(15 * time.Second):
		t.Error("flowtop still running 15 s after SIGTERM")
	}
	col.check(t)
}
