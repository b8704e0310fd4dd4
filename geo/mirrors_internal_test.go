//go:build !headless

package geo

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestChecksumURL(t *testing.T) {
	tests := []struct{ in, want string }{
		{"https://m.example/GeoLite2-City.mmdb", "https://m.example/GeoLite2-City.mmdb.sha256"},
		{"https://m.example/GeoLite2-City.mmdb?token=abc", "https://m.example/GeoLite2-City.mmdb.sha256?token=abc"},
		{
			"https://download.maxmind.com/app/geoip_download?edition_id=GeoLite2-ASN&license_key=K&suffix=tar.gz",
			"https://download.maxmind.com/app/geoip_download?edition_id=GeoLite2-ASN&license_key=K&suffix=tar.gz.sha256",
		},
	}
	for _, tt := range tests {
		if got := checksumURL(tt.in); got != tt.want {
			t.Errorf("checksumURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestLoadMirrors(t *testing.T) {
	dir := t.TempDir()
	legacy := filepath.Join(dir, "netsniff-ng.conf")
	own := filepath.Join(dir, "flowtop.conf")
	bad := filepath.Join(dir, "bad.conf")
	for p, body := range map[string]string{
		legacy: "geolite.maxmind.com\ncryptoism.org\n",
		own:    "https://m.example/{edition}.mmdb\n",
		bad:    "http://m.example/{edition}.mmdb\n",
	} {
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	saved := confPaths
	t.Cleanup(func() { confPaths = saved })

	tests := []struct {
		name     string
		paths    []string
		conf     string
		want     []string
		wantSrc  string
		wantErr  string
		wantNote string
	}{
		{name: "first found", paths: []string{filepath.Join(dir, "missing"), own, legacy}, want: []string{"https://m.example/{edition}.mmdb"}, wantSrc: own},
		{name: "legacy skipped", paths: []string{legacy, own}, want: []string{"https://m.example/{edition}.mmdb"}, wantSrc: own, wantNote: "ignoring " + legacy},
		{name: "built in", paths: []string{legacy}, wantSrc: "geoip.conf (built in)", want: []string{
			"https://download.maxmind.com/app/geoip_download?edition_id={edition}&license_key={key}&suffix=tar.gz",
			"https://github.com/P3TERX/GeoLite.mmdb/raw/download/{edition}.mmdb",
		}},
		{name: "bad file is an error", paths: []string{bad, own}, wantErr: "geoip: " + bad + ":1: "},
		{name: "explicit legacy is an error", conf: legacy, wantErr: "host name instead of URL template"},
		{name: "explicit missing", conf: filepath.Join(dir, "missing"), wantErr: "geoip: mirror list: open "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			confPaths = tt.paths
			var note bytes.Buffer
			got, src, err := loadMirrors(tt.conf, &note)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("mirrors (-want +got):\n%s", diff)
			}
			if src != tt.wantSrc {
				t.Errorf("source = %q, want %q", src, tt.wantSrc)
			}
			if !strings.Contains(note.String(), tt.wantNote) {
				t.Errorf("progress = %q, want %q", note.String(), tt.wantNote)
			}
		})
	}
}
