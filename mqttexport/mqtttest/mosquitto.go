package mqtttest

import (
	"bytes"
	"net"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Mosquitto is a mosquitto process of a test, run from the configuration
// file Conf and listening on Addr; it can be stopped and started again
// on the same address.
type Mosquitto struct {
	Bin, Conf, Addr string

	mu  sync.Mutex
	cmd *exec.Cmd
	log bytes.Buffer
}

// Start runs mosquitto and waits, at most patience, until it accepts
// connections on Addr.
func (m *Mosquitto) Start(t testing.TB, patience time.Duration) {
	t.Helper()
	cmd := exec.Command(m.Bin, "-c", m.Conf)
	cmd.Stderr = lockedWriter{&m.mu, &m.log}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mosquitto: %v", err)
	}
	m.mu.Lock()
	m.cmd = cmd
	m.mu.Unlock()
	deadline := time.Now().Add(patience)
	for {
		c, err := net.DialTimeout("tcp", m.Addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("mosquitto did not listen on %s: %v\n%s", m.Addr, err, m.Log(600))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Stop ends mosquitto (SIGTERM, then SIGKILL after 5 s) and waits for it.
func (m *Mosquitto) Stop() {
	m.mu.Lock()
	cmd := m.cmd
	m.cmd = nil
	m.mu.Unlock()
	if cmd == nil {
		return
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Process is the running mosquitto, nil when stopped.
func (m *Mosquitto) Process() *exec.Cmd {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.cmd
}

// Log is the end of what mosquitto printed, at most keep bytes.
func (m *Mosquitto) Log(keep int) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.log.String()
	if len(s) <= keep {
		return s
	}
	return "..." + s[len(s)-keep:]
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
