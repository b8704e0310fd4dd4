package main

import (
	"bufio"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// broker is a mosquitto of the bench's own on loopback, with a subscriber
// that counts what flowtop publishes.
type broker struct {
	url             string
	mosquitto       *proc
	sub             *exec.Cmd
	messages, bytes atomic.Uint64
	// live counts what went to the watch stream (<prefix>/<node>/live).
	liveMessages, liveBytes atomic.Uint64
	subDone                 chan struct{}
	done                    func()
}

func startBroker() (*broker, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	m, err := startProc(nil, "mosquitto", "-p", strconv.Itoa(port))
	if err != nil {
		return nil, fmt.Errorf("%w (apt-get install -y mosquitto mosquitto-clients)", err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	err = waitFor(10*time.Second, "mosquitto", func() (bool, error) {
		if err := m.running(); err != nil {
			return false, err
		}
		c, err := net.Dial("tcp", addr)
		if err != nil {
			return false, nil
		}
		c.Close()
		return true, nil
	})
	if err != nil {
		m.stop()
		return nil, err
	}
	b := &broker{url: "tcp://" + addr, mosquitto: m, subDone: make(chan struct{})}
	// One line per message: its topic and its payload's length.
	b.sub = exec.Command("mosquitto_sub", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-t", "flowtop/#", "-F", "%t %l")
	out, err := b.sub.StdoutPipe()
	if err == nil {
		err = b.sub.Start()
	}
	if err != nil {
		m.stop()
		return nil, fmt.Errorf("mosquitto_sub: %w (apt-get install -y mosquitto-clients)", err)
	}
	go func() {
		defer close(b.subDone)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			topic, size, _ := strings.Cut(sc.Text(), " ")
			n, _ := strconv.Atoi(strings.TrimSpace(size))
			b.messages.Add(1)
			b.bytes.Add(uint64(n))
			if strings.HasSuffix(topic, "/live") || strings.HasSuffix(topic, "/live/gz") {
				b.liveMessages.Add(1)
				b.liveBytes.Add(uint64(n))
			}
		}
	}()
	b.done = atInterrupt(func() {
		b.sub.Process.Kill()
		<-b.subDone
		b.sub.Wait()
	})
	return b, nil
}

func (b *broker) stop() {
	b.done()
	b.mosquitto.stop()
}

// daemonRun is one run of the router daemon.
type daemonRun struct {
	memLimit        string
	rss, hwm        int // kB
	cpu             float64
	load            string
	messages, bytes uint64
}

// measureDaemon runs the daemon build of flowtop --no-ui --mqtt on a table
// of n flows for d, with and without GOMEMLIMIT=16MiB, and reads its RSS.
func measureDaemon(bin string, n, runs int, d time.Duration) error {
	if runs <= 0 || d <= 0 {
		return fmt.Errorf("-daemon-rss needs -runs > 0 and -daemon-seconds > 0")
	}
	x, closeNS, err := heldTable(n)
	if err != nil {
		return err
	}
	defer closeNS()
	b, err := startBroker()
	if err != nil {
		return err
	}
	defer b.stop()
	fmt.Printf("\ndaemon: %s --no-ui --mqtt on %d flows (the kernel holds %d), RSS after %v\n", bin, n, x.count(), d+2*time.Second)
	var res []daemonRun
	for range runs {
		for _, limit := range []string{"", "16MiB"} {
			r, err := runDaemon(bin, x, b, limit, d)
			if err != nil {
				return err
			}
			res = append(res, r)
			name := "GOMEMLIMIT unset"
			if limit != "" {
				name = "GOMEMLIMIT=" + limit
			}
			fmt.Printf("  %-17s VmRSS %5.1f MB, VmHWM %5.1f MB, CPU %4.2f%% of one core (load %s); %d MQTT messages, %d bytes\n",
				name, mb(r.rss), mb(r.hwm), r.cpu, r.load, r.messages, r.bytes)
		}
	}
	if len(res) >= 2 {
		off, on := res[len(res)-2], res[len(res)-1]
		fmt.Printf("  last pair, 16MiB / unset: VmRSS %.2f x, VmHWM %.2f x, CPU %.2f x\n",
			float64(on.rss)/float64(off.rss), float64(on.hwm)/float64(off.hwm), on.cpu/off.cpu)
	}
	return nil
}

func mb(kb int) float64 { return float64(kb) / 1024 }

func runDaemon(bin string, x *ns, b *broker, memLimit string, d time.Duration) (daemonRun, error) {
	r := daemonRun{memLimit: memLimit}
	env := envWithout("GOMEMLIMIT", "GOGC", "GODEBUG")
	if memLimit != "" {
		env = append(env, "GOMEMLIMIT="+memLimit)
	}
	m0, b0 := b.messages.Load(), b.bytes.Load()
	p, err := startProc(env, bin, "--no-ui", "--netns", x.path(), "--mqtt", b.url, "-46TUI", "-n", "-G", "--state-dir", stateDir)
	if err != nil {
		return r, err
	}
	defer p.stop()
	err = waitFor(60*time.Second, "the daemon's first MQTT message", func() (bool, error) {
		return b.messages.Load() > m0, p.running()
	})
	if err != nil {
		return r, err
	}
	r.cpu = steadyCPUOf(p.pid(), d)
	if err := p.running(); err != nil {
		return r, err
	}
	r.rss, r.hwm = procStatus(p.pid(), "VmRSS"), procStatus(p.pid(), "VmHWM")
	r.load = loadAvg()
	r.messages, r.bytes = b.messages.Load()-m0, b.bytes.Load()-b0
	return r, nil
}
