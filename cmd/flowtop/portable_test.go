package main

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestPortablePackagesLinkNoKernel: the packages of flow values, names,
// documents, the broker reader and the screen depend on no netlink or
// nftables package, on Linux too (where those would build): only the
// kernel adapter and the process finder do.
func TestPortablePackagesLinkNoKernel(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pkgs := []string{"../../conntrack", "../../enrich", "../../report", "../../remote", "../../ui", "../../export", "../../mqttexport"}
	out, err := exec.CommandContext(ctx, "go", append([]string{"list", "-deps"}, pkgs...)...).Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	for dep := range strings.Lines(string(out)) {
		dep = strings.TrimSpace(dep)
		for _, kernel := range []string{"github.com/mdlayher/netlink", "github.com/ti-mo/", "github.com/google/nftables", "github.com/flowtop/flowtop/conntrack/kernel", "github.com/flowtop/flowtop/procs"} {
			if strings.HasPrefix(dep, kernel) {
				t.Errorf("a portable package depends on %s", dep)
			}
		}
	}
}
