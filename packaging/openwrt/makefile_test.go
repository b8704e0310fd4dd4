package openwrt

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// goArgs evaluates the package Makefile under stubs of OpenWrt's
// includes (the feed's lang/golang next to net/) and returns the build tags and the extra arguments its
// Build/Compile gives go build, with the feed's per-package gcflags set to
// defaultGCFlags.
func goArgs(t *testing.T, defaultGCFlags string) (tags string, args []string) {
	t.Helper()
	root := t.TempDir()
	stubs := map[string]string{
		"rules.mk":           "",
		"include/package.mk": "",
		"feeds/lang/golang/golang-package.mk": "GO_PKG_DEFAULT_GCFLAGS:=" + defaultGCFlags + "\n" +
			"define GoPackage/Build/Compile\n\t@echo 'tags=$(GO_PKG_TAGS)'; for a in $(1); do echo \"arg=$$a\"; done\nendef\n" +
			"Build/Compile=$(call GoPackage/Build/Compile)\n",
		"feeds/net/flowtop/show.mk": "show:\n\t$(Build/Compile)\n",
	}
	for name, content := range stubs {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	mk, err := os.ReadFile("flowtop/Makefile")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "feeds/net/flowtop")
	if err := os.WriteFile(filepath.Join(dir, "Makefile"), mk, 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "-s", "-f", "Makefile", "-f", "show.mk", "TOPDIR="+root, "INCLUDE_DIR="+root+"/include", "show")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("make: %v\n%.500s", err, out)
	}
	for line := range strings.Lines(string(out)) {
		line = strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(line, "tags="); ok {
			tags = v
		} else if v, ok := strings.CutPrefix(line, "arg="); ok {
			args = append(args, v)
		}
	}
	return tags, args
}

// TestMakefileBuildsTheLeanBuild: the package builds what scripts/sizes.sh
// measures and CI checks: the same tags, the same gcflags.
func TestMakefileBuildsTheLeanBuild(t *testing.T) {
	sizes, err := os.ReadFile("../../scripts/sizes.sh")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^lean_tags=(\S+)$`).FindSubmatch(sizes)
	if m == nil {
		t.Fatal("no lean_tags= in scripts/sizes.sh")
	}
	gc, err := os.ReadFile("../../scripts/lean-gcflags")
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for line := range strings.Lines(string(gc)) {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			want = append(want, line)
		}
	}
	tags, args := goArgs(t, "")
	if tags != string(m[1]) {
		t.Errorf("GO_PKG_TAGS %q, scripts/sizes.sh builds with %q", tags, m[1])
	}
	if diff := cmp.Diff(want, args); diff != "" {
		t.Errorf("Build/Compile's go arguments differ from scripts/lean-gcflags (-want +got):\n%s", diff)
	}
	// Where the feed compiles every package with its own flags (Spectre
	// mitigations), a later all= pattern would drop them: none is added.
	if _, args := goArgs(t, "-spectre=all"); len(args) != 0 {
		t.Errorf("with the feed's own gcflags, Build/Compile still adds %q", args)
	}
}
