package procs

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/flowtop/flowtop/conntrack/nstest"
)

// helperEnv makes the test binary act as a helper process: it opens the
// sockets its value describes, prints their addresses and holds them
// until its stdin closes. Its PID and name are what Finder must report.
const helperEnv = "FLOWTOP_PROCS_HELPER"

func TestMain(m *testing.M) {
	if spec := os.Getenv(helperEnv); spec != "" {
		if err := runHelper(strings.Fields(spec), os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "helper:", err)
			os.Exit(2)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runHelper opens sockets as args say and prints "LOCAL REMOTE" lines:
//
//	tcp-dial ADDR          connect to ADDR
//	tcp-serve ADDR [close] listen on ADDR (printed), accept one connection
//	                       (printed), and close it if asked
//	udp-dial ADDR          connected UDP socket, one datagram sent
//	udp-sendto NET ADDR    unconnected socket on the wildcard address of
//	                       NET (udp4, udp6), one datagram sent with sendto
//	udp-serve ADDR         unconnected socket on ADDR (printed); answers
//	                       the first datagram and prints its sender
//	udp-many N ADDR        N connected UDP sockets, local ports on one line
func runHelper(args []string, out io.Writer) error {
	if len(args) < 2 {
		return fmt.Errorf("bad spec %q", args)
	}
	var keep []io.Closer // held until exit
	defer func() {
		for _, c := range keep {
			c.Close()
		}
	}()
	switch args[0] {
	case "tcp-dial":
		c, err := net.Dial("tcp", args[1])
		if err != nil {
			return err
		}
		keep = append(keep, c)
		fmt.Fprintln(out, c.LocalAddr(), c.RemoteAddr())
	case "tcp-serve":
		ln, err := net.Listen("tcp", args[1])
		if err != nil {
			return err
		}
		keep = append(keep, ln)
		fmt.Fprintln(out, ln.Addr(), "-")
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		fmt.Fprintln(out, c.LocalAddr(), c.RemoteAddr())
		if len(args) > 2 && args[2] == "close" {
			c.Close()
		} else {
			keep = append(keep, c)
		}
	case "udp-dial":
		c, err := net.Dial("udp", args[1])
		if err != nil {
			return err
		}
		keep = append(keep, c)
		if _, err := c.Write([]byte("x")); err != nil {
			return err
		}
		fmt.Fprintln(out, c.LocalAddr(), c.RemoteAddr())
	case "udp-sendto":
		c, err := net.ListenPacket(args[1], ":0")
		if err != nil {
			return err
		}
		keep = append(keep, c)
		to, err := net.ResolveUDPAddr(args[1], args[2])
		if err != nil {
			return err
		}
		if _, err := c.WriteTo([]byte("x"), to); err != nil {
			return err
		}
		fmt.Fprintln(out, c.LocalAddr(), to)
	case "udp-serve":
		c, err := net.ListenPacket("udp", args[1])
		if err != nil {
			return err
		}
		keep = append(keep, c)
		fmt.Fprintln(out, c.LocalAddr(), "-")
		buf := make([]byte, 64)
		_, from, err := c.ReadFrom(buf)
		if err != nil {
			return err
		}
		if _, err := c.WriteTo([]byte("y"), from); err != nil {
			return err
		}
		fmt.Fprintln(out, c.LocalAddr(), from)
	case "udp-many":
		n, err := strconv.Atoi(args[1])
		if err != nil || len(args) < 3 {
			return fmt.Errorf("udp-many N ADDR: %q", args)
		}
		w := bufio.NewWriter(out)
		for range n {
			c, err := net.Dial("udp", args[2])
			if err != nil {
				return err
			}
			keep = append(keep, c)
			fmt.Fprint(w, c.LocalAddr().(*net.UDPAddr).Port, " ")
		}
		fmt.Fprintln(w)
		w.Flush()
	default:
		return fmt.Errorf("unknown helper mode %q", args[0])
	}
	// Hold the sockets until the test closes stdin.
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// helperProc is a helper running in a test namespace.
type helperProc struct {
	t     testing.TB
	pid   int
	lines chan string
	stdin io.Closer
}

// startHelper runs the test binary as a helper inside ns.
func startHelper(t testing.TB, ns *nstest.NS, spec ...string) *helperProc {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := ns.Command(exe)
	// Under -race a binary sleeps a second at exit unless told not to.
	cmd.Env = append(os.Environ(), helperEnv+"="+strings.Join(spec, " "), "GORACE=atexit_sleep_ms=0")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start helper %v: %v", spec, err)
	}
	h := &helperProc{t: t, pid: cmd.Process.Pid, lines: make(chan string, 16), stdin: stdin}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
	}()
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return h
}

// line returns the helper's next output line.
func (h *helperProc) line() string {
	h.t.Helper()
	select {
	case l, ok := <-h.lines:
		if !ok {
			h.t.Fatal("helper exited early")
		}
		return l
	case <-time.After(10 * time.Second):
		h.t.Fatal("helper printed nothing for 10s")
	}
	return ""
}

// addrs parses a "LOCAL REMOTE" line.
func (h *helperProc) addrs() (local, remote string) {
	h.t.Helper()
	f := strings.Fields(h.line())
	if len(f) != 2 {
		h.t.Fatalf("helper line %q: want two addresses", f)
	}
	return f[0], f[1]
}
