package nstest

import (
	"net"
	"strings"
	"testing"
	"time"
)

func TestPairConnectsAndTracks(t *testing.T) {
	a, b := Pair(t)
	var ln net.Listener
	if err := b.Do(func() (err error) {
		ln, err = net.Listen("tcp", "["+AddrB6+"]:0")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		if c, err := ln.Accept(); err == nil {
			c.Close()
		}
	}()
	if err := a.Do(func() error {
		c, err := net.DialTimeout("tcp", ln.Addr().String(), 2*time.Second)
		if err != nil {
			return err
		}
		return c.Close()
	}); err != nil {
		t.Fatal(err)
	}
	if out := a.Exec(t, "cat", "/proc/sys/net/netfilter/nf_conntrack_count"); strings.TrimSpace(out) == "0" {
		t.Fatalf("conntrack did not track the connection in %s", a.Name)
	}
}
