package main

import (
	"context"
	"fmt"
	"time"

	"github.com/flowtop/flowtop/remote"
)

// watchNode is the node name the watched daemon publishes as.
const watchNode = "bench"

// watchRun is one phase of a watched router: its CPU and what it sent.
type watchRun struct {
	cpu                     float64
	bytes, liveBytes, lives uint64
	secs                    float64
}

// measureWatch runs the router daemon (--no-ui --mqtt with an
// --mqtt-interval of an hour, so that no periodic snapshot of the whole
// table falls in a phase: -daemon-rss measures those) on a table of n
// flows, gzip off and on,
// and measures it for d unwatched and then for d while a viewer (the
// remote package's Client, as flowtop --remote uses it) holds a watch
// lease at 1 s: the router's CPU in each phase, and the bytes it sent to
// the broker per second.
func measureWatch(bin string, n int, d time.Duration) error {
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
	fmt.Printf("\nwatch: %s --no-ui --mqtt --mqtt-interval 1h on %d flows (the kernel holds %d), %v per phase, a viewer watching at 1 s with the default limit (%d flows)\n",
		bin, n, x.count(), d, remote.DefaultWatchLimit)
	for _, gz := range []bool{false, true} {
		quiet, watched, err := runWatched(bin, x, b, gz, d)
		if err != nil {
			return err
		}
		name := "gzip off"
		if gz {
			name = "gzip on "
		}
		fmt.Printf("  %s unwatched: CPU %5.2f%% of one core, %8.0f B/s to the broker\n", name, quiet.cpu, float64(quiet.bytes)/quiet.secs)
		fmt.Printf("  %s watched:   CPU %5.2f%% of one core, %8.0f B/s to the broker (live: %d documents, %.0f B/s); watched / unwatched CPU %.2f x (load %s)\n",
			name, watched.cpu, float64(watched.bytes)/watched.secs, watched.lives, float64(watched.liveBytes)/watched.secs, watched.cpu/quiet.cpu, loadAvg())
	}
	return nil
}

// runWatched is one daemon: d unwatched, then d watched.
func runWatched(bin string, x *ns, b *broker, gz bool, d time.Duration) (quiet, watched watchRun, err error) {
	args := []string{"--no-ui", "--netns", x.path(), "--mqtt", b.url, "--mqtt-node", watchNode, "--mqtt-interval", "1h", "-46TUI", "-n", "-G", "--state-dir", stateDir}
	if gz {
		args = append(args, "--mqtt-gzip")
	}
	m0 := b.messages.Load()
	p, err := startProc(envWithout("GOGC", "GODEBUG"), bin, args...)
	if err != nil {
		return quiet, watched, err
	}
	defer p.stop()
	err = waitFor(60*time.Second, "the daemon's first MQTT message", func() (bool, error) {
		return b.messages.Load() > m0, p.running()
	})
	if err != nil {
		return quiet, watched, err
	}
	// The first snapshot (after the connect) is out of the way: measure.
	time.Sleep(3 * time.Second)
	quiet = phase(p, b, d)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c, err := remote.Open(ctx, remote.Config{URL: b.url, Interval: time.Second})
	if err != nil {
		return quiet, watched, err
	}
	defer c.Close()
	c.Watch(watchNode)
	l0 := b.liveMessages.Load()
	err = waitFor(30*time.Second, "the first live document", func() (bool, error) {
		return b.liveMessages.Load() > l0, p.running()
	})
	if err != nil {
		return quiet, watched, err
	}
	watched = phase(p, b, d)
	return quiet, watched, p.running()
}

// phase measures the daemon's CPU and the broker's traffic over d.
func phase(p *proc, b *broker, d time.Duration) watchRun {
	b0, lb0, lm0 := b.bytes.Load(), b.liveBytes.Load(), b.liveMessages.Load()
	c0 := cpuTicks(p.pid())
	t0 := time.Now()
	time.Sleep(d)
	secs := time.Since(t0).Seconds()
	const hz = 100 // USER_HZ
	return watchRun{
		cpu:       float64(cpuTicks(p.pid())-c0) / hz / secs * 100,
		bytes:     b.bytes.Load() - b0,
		liveBytes: b.liveBytes.Load() - lb0,
		lives:     b.liveMessages.Load() - lm0,
		secs:      secs,
	}
}
