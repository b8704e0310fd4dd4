package kernel

import (
	"os/exec"
	"slices"
	"testing"
)

// Two flowtops on one namespace (a daemon and a screen): the first to
// leave must not switch accounting off under the other, and the last one
// out puts back what the first one found.
func TestSysctlGuardSharedBetweenFlowtops(t *testing.T) {
	ns, f := sysctlNS(t)
	dir := t.TempDir()
	path := statePath(t, dir, f)

	// The other flowtop: a live process that recorded 0 0 and set 1 1.
	other := exec.Command("sleep", "60")
	if err := other.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { other.Process.Kill(); other.Wait() })
	otherPID := other.Process.Pid
	otherOwner := ownerOf(t, otherPID)
	writeState(t, path, guardState{Users: []owner{otherOwner}, Values: map[string]string{SysctlAcct: "0", SysctlTimestamp: "0"}})
	setSysctls(t, ns, [2]string{"1", "1"})

	g, err := EnableAccounting(f, dir)
	if err != nil {
		t.Fatal(err)
	}
	if st := readState(t, path); !slices.Contains(st.Users, otherOwner) || len(st.Users) != 2 {
		t.Fatalf("state users %v, want the other flowtop and us", st.Users)
	}
	if err := g.Restore(); err != nil {
		t.Fatal(err)
	}
	if got := sysctls(t, ns); got != [2]string{"1", "1"} {
		t.Fatalf("after the first flowtop left: %v, want 1 1 (the other still runs)", got)
	}
	if st := readState(t, path); !slices.Equal(st.Users, []owner{otherOwner}) {
		t.Fatalf("state users %v, want only the other flowtop", st.Users)
	}

	// The other one dies without cleaning up; its watchdog restores.
	other.Process.Kill()
	other.Wait()
	if err := RestoreLeftover(f, dir, otherPID); err != nil {
		t.Fatal(err)
	}
	if got := sysctls(t, ns); got != [2]string{"0", "0"} {
		t.Fatalf("after the last flowtop left: %v, want the values found first, 0 0", got)
	}
}
