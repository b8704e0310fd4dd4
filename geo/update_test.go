//go:build !headless

package geo_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/flowtop/flowtop/geo"
	"github.com/flowtop/flowtop/geo/geotest"
)

const testKey = "s3cr3tKEY_42"

// mirror is a local HTTPS server playing the mirrors of the tests:
//
//	/plain/{edition}.mmdb          the .mmdb, no checksum
//	/gz/{edition}.mmdb             the .mmdb gzipped
//	/sum/{edition}.mmdb(.sha256)   the .mmdb with a correct checksum
//	/badsum/{edition}.mmdb(.sha256) the .mmdb with a wrong checksum
//	/wrong/{edition}.mmdb          an ASN database whatever was asked
//	/maxmind?edition_id=..&license_key=..&suffix=tar.gz(.sha256)
//	/fail/...                      503
type mirror struct {
	*httptest.Server
	dbs map[string][]byte // edition -> database
}

func newMirror(t *testing.T) *mirror {
	m := &mirror{dbs: map[string][]byte{
		"GeoLite2-City":    geotest.Build(t, geotest.City, cityRecs),
		"GeoLite2-Country": geotest.Build(t, geotest.Country, cityRecs),
		"GeoLite2-ASN":     geotest.Build(t, geotest.ASN, asnRecs),
	}}
	mux := http.NewServeMux()
	serve := func(prefix string, body func(ed string, db []byte) []byte, sum func(body []byte) string) {
		mux.HandleFunc(prefix+"{file}", func(w http.ResponseWriter, r *http.Request) {
			file := r.PathValue("file")
			ed, isSum := strings.CutSuffix(file, ".mmdb.sha256")
			if !isSum {
				ed, _ = strings.CutSuffix(file, ".mmdb")
			}
			db, ok := m.dbs[ed]
			if !ok || (isSum && sum == nil) {
				http.NotFound(w, r)
				return
			}
			b := body(ed, db)
			if isSum {
				fmt.Fprintf(w, "%s  %s.mmdb\n", sum(b), ed)
				return
			}
			w.Write(b)
		})
	}
	same := func(_ string, db []byte) []byte { return db }
	good := func(b []byte) string { return fmt.Sprintf("%x", sha256.Sum256(b)) }
	serve("/plain/", same, nil)
	serve("/gz/", func(_ string, db []byte) []byte { return gzipped(t, db) }, nil)
	serve("/sum/", same, good)
	serve("/badsum/", same, func([]byte) string { return strings.Repeat("ab", 32) })
	serve("/wrong/", func(string, []byte) []byte { return m.dbs["GeoLite2-ASN"] }, nil)
	mux.HandleFunc("/maxmind", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("license_key") != testKey {
			http.Error(w, "Invalid license key", http.StatusUnauthorized)
			return
		}
		db, ok := m.dbs[q.Get("edition_id")]
		if !ok {
			http.Error(w, "Invalid product ID or subscription expired", http.StatusBadRequest)
			return
		}
		tgz := tarGz(t, q.Get("edition_id"), db)
		switch q.Get("suffix") {
		case "tar.gz":
			w.Write(tgz)
		case "tar.gz.sha256":
			fmt.Fprintf(w, "%x  %s_20240102.tar.gz\n", sha256.Sum256(tgz), q.Get("edition_id"))
		default:
			http.Error(w, "bad suffix", http.StatusBadRequest)
		}
	})
	mux.HandleFunc("/fail/", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "mirror on fire", http.StatusServiceUnavailable)
	})
	m.Server = httptest.NewTLSServer(mux)
	t.Cleanup(m.Close)
	return m
}

func gzipped(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write(b)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// tarGz packs db like MaxMind does: a dated directory with the .mmdb and
// licence files.
func tarGz(t *testing.T, ed string, db []byte) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	dir := ed + "_20240102/"
	for _, f := range []struct {
		name string
		body []byte
	}{
		{dir + "COPYRIGHT.txt", []byte("Database and Contents Copyright (c) MaxMind, Inc.\n")},
		{dir + ed + ".mmdb", db},
		{dir + "LICENSE.txt", []byte("licence\n")},
	} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write(f.body)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// conf writes a mirror list of templates relative to the server.
func (m *mirror) conf(t *testing.T, templates ...string) string {
	var b strings.Builder
	b.WriteString("# test mirrors\n\n")
	for _, tpl := range templates {
		if !strings.HasPrefix(tpl, "https://") {
			tpl = m.URL + tpl
		}
		b.WriteString(tpl + "\n")
	}
	p := filepath.Join(t.TempDir(), "geoip.conf")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func (m *mirror) update(t *testing.T, dir, key string, editions []string, templates ...string) (string, error) {
	t.Helper()
	t.Setenv(geo.LicenseKeyEnv, "")
	var out bytes.Buffer
	err := geo.Update(context.Background(), geo.UpdateConfig{
		ConfFile:   m.conf(t, templates...),
		Dir:        dir,
		Editions:   editions,
		LicenseKey: key,
		Client:     m.Client(),
	}, &out)
	return out.String(), err
}

// dirFiles lists dir, to see that no temporary file is left behind.
func dirFiles(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func TestUpdateInstalls(t *testing.T) {
	m := newMirror(t)
	tests := []struct {
		name      string
		key       string
		templates []string
		progress  []string // each must appear in the progress output
	}{
		{"plain", "", []string{"/plain/{edition}.mmdb"}, []string{"mirror offers no checksum", "downloaded"}},
		{"gzip", "", []string{"/gz/{edition}.mmdb"}, []string{"downloaded"}},
		{"checksum", "", []string{"/sum/{edition}.mmdb"}, []string{"sha256 matches"}},
		{"maxmind tar.gz", testKey, []string{"/maxmind?edition_id={edition}&license_key={key}&suffix=tar.gz"}, []string{"sha256 matches"}},
		{"skips keyed mirror without key", "", []string{"/maxmind?edition_id={edition}&license_key={key}&suffix=tar.gz", "/plain/{edition}.mmdb"}, nil},
		{"falls through to second", "", []string{"/fail/{edition}.mmdb", "/sum/{edition}.mmdb"}, []string{"HTTP 503 Service Unavailable: mirror on fire", "sha256 matches"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "GeoIP") // created by Update
			out, err := m.update(t, dir, tt.key, []string{"GeoLite2-City", "GeoLite2-ASN"}, tt.templates...)
			if err != nil {
				t.Fatalf("Update: %v\nprogress:\n%s", err, out)
			}
			for _, want := range tt.progress {
				if !strings.Contains(out, want) {
					t.Errorf("progress lacks %q:\n%s", want, out)
				}
			}
			if diff := cmp.Diff([]string{"GeoLite2-ASN.mmdb", "GeoLite2-City.mmdb"}, dirFiles(t, dir)); diff != "" {
				t.Errorf("files in %s (-want +got):\n%s", dir, diff)
			}
			db, errs := openT(t, dir)
			if len(errs) != 0 {
				t.Fatalf("Open after update: %v", errs)
			}
			want := geo.Info{"JP", "Japan", "Tokyo", 64498, "Example Six"}
			if got := db.Lookup(netip.MustParseAddr("2001:db8::1")); got != want {
				t.Errorf("Lookup = %+v, want %+v", got, want)
			}
		})
	}
}

func TestUpdateRejects(t *testing.T) {
	m := newMirror(t)
	old := geotest.Build(t, geotest.City, map[string]geo.Info{"192.0.2.0/24": v4b})
	tests := []struct {
		name     string
		template string
		want     string
	}{
		{"bad checksum", "/badsum/{edition}.mmdb", "checksum mismatch"},
		{"wrong type", "/wrong/{edition}.mmdb", `database type "GeoLite2-ASN" is not a GeoLite2-City database`},
		{"not found", "/plain/GeoLite2-Nope.mmdb?e={edition}", "HTTP 404 Not Found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			file := filepath.Join(dir, "GeoLite2-City.mmdb")
			if err := os.WriteFile(file, old, 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := m.update(t, dir, "", []string{"GeoLite2-City"}, tt.template)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Update error = %v, want one saying %q\nprogress:\n%s", err, tt.want, out)
			}
			got, _ := os.ReadFile(file)
			if !bytes.Equal(got, old) {
				t.Error("the old database was changed")
			}
			if diff := cmp.Diff([]string{"GeoLite2-City.mmdb"}, dirFiles(t, dir)); diff != "" {
				t.Errorf("files left in %s (-want +got):\n%s", dir, diff)
			}
		})
	}
}

func TestUpdateAllMirrorsDown(t *testing.T) {
	m := newMirror(t)
	dir := t.TempDir()
	templates := []string{
		"/fail/{edition}.mmdb",
		"https://127.0.0.1:1/{edition}.mmdb?license_key={key}", // nothing listens on port 1
		"/maxmind?edition_id={edition}&license_key={key}&suffix=tar.gz",
	}
	out, err := m.update(t, dir, "wrong-"+testKey, []string{"GeoLite2-ASN"}, templates...)
	if err == nil {
		t.Fatal("Update succeeded with every mirror down")
	}
	msg := err.Error()
	for _, want := range []string{
		"geoip: update GeoLite2-ASN: every mirror failed:",
		m.URL + "/fail/GeoLite2-ASN.mmdb: HTTP 503",
		"https://127.0.0.1:1/GeoLite2-ASN.mmdb?license_key=REDACTED: ",
		"license_key=REDACTED&suffix=tar.gz: HTTP 401 Unauthorized: Invalid license key",
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	for what, s := range map[string]string{"error": msg, "progress": out} {
		if strings.Contains(s, testKey) {
			t.Errorf("the licence key appears in the %s:\n%s", what, s)
		}
	}
	if files := dirFiles(t, dir); len(files) != 0 {
		t.Errorf("files left in %s: %v", dir, files)
	}
}

func TestUpdateKeyNeverPrinted(t *testing.T) {
	m := newMirror(t)
	dir := t.TempDir()
	keyFile := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(keyFile, []byte("# MaxMind\n"+testKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	err := geo.Update(context.Background(), geo.UpdateConfig{
		ConfFile: m.conf(t,
			"https://127.0.0.1:1/x/{edition}?k={key}",
			"/maxmind?edition_id={edition}&license_key={key}&suffix=tar.gz"),
		Dir:         dir,
		Editions:    []string{"GeoLite2-City", "GeoLite2-Nope"},
		LicenseFile: keyFile,
		Client:      m.Client(),
	}, &out)
	if err == nil || !strings.Contains(err.Error(), "GeoLite2-Nope") {
		t.Fatalf("Update error = %v, want GeoLite2-Nope to fail", err)
	}
	if strings.Contains(err.Error(), "GeoLite2-City:") {
		t.Errorf("GeoLite2-City failed: %v", err)
	}
	for what, s := range map[string]string{"error": err.Error(), "progress": out.String()} {
		if strings.Contains(s, testKey) {
			t.Errorf("the licence key appears in the %s:\n%s", what, s)
		}
		if !strings.Contains(s, "REDACTED") {
			t.Errorf("the %s shows no redacted URL:\n%s", what, s)
		}
	}
	if !fileExistsT(filepath.Join(dir, "GeoLite2-City.mmdb")) {
		t.Error("GeoLite2-City.mmdb not installed")
	}
}

func TestUpdateKeyFromEnv(t *testing.T) {
	m := newMirror(t)
	dir := t.TempDir()
	conf := m.conf(t, "/maxmind?edition_id={edition}&license_key={key}&suffix=tar.gz")
	t.Setenv(geo.LicenseKeyEnv, testKey)
	var out bytes.Buffer
	err := geo.Update(context.Background(), geo.UpdateConfig{
		ConfFile: conf, Dir: dir, Editions: []string{"GeoLite2-Country"}, Client: m.Client(),
	}, &out)
	if err != nil {
		t.Fatalf("Update: %v\n%s", err, out.String())
	}
	if strings.Contains(out.String(), testKey) {
		t.Errorf("the licence key appears in the progress:\n%s", out.String())
	}
	if !fileExistsT(filepath.Join(dir, "GeoLite2-Country.mmdb")) {
		t.Error("GeoLite2-Country.mmdb not installed")
	}
}

func TestUpdateRefusesHTTPRedirect(t *testing.T) {
	m := newMirror(t)
	plain := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(plain.Close)
	redirect := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, plain.URL+r.URL.Path, http.StatusFound)
	}))
	t.Cleanup(redirect.Close)
	// Both TLS test servers share the test certificate, so m's client
	// trusts the redirector too.
	_, err := m.update(t, t.TempDir(), "", []string{"GeoLite2-City"}, redirect.URL+"/{edition}.mmdb")
	if err == nil || !strings.Contains(err.Error(), "only https is allowed") {
		t.Fatalf("Update error = %v, want the http redirect refused", err)
	}
}

func fileExistsT(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

func TestParseMirrors(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr string
	}{
		{
			name: "templates and comments",
			in: "# mirrors\n\n  https://a.example/{edition}.mmdb  # trailing comment\n" +
				"https://b.example/dl?e={edition}&k={key}#frag\n",
			want: []string{"https://a.example/{edition}.mmdb", "https://b.example/dl?e={edition}&k={key}#frag"},
		},
		{name: "http", in: "# x\nhttp://a.example/{edition}.mmdb\n", wantErr: "geoip.conf:2: \"http://a.example/{edition}.mmdb\": only https:// mirrors are allowed"},
		{name: "no edition", in: "https://a.example/GeoLite2-City.mmdb\n", wantErr: "geoip.conf:1: \"https://a.example/GeoLite2-City.mmdb\": no {edition} placeholder"},
		{name: "unknown placeholder", in: "https://a.example/{edition}/{date}\n", wantErr: "geoip.conf:1: \"https://a.example/{edition}/{date}\": unknown placeholder {date}"},
		{name: "netsniff-ng host", in: "geolite.maxmind.com\ncryptoism.org\n", wantErr: "geoip.conf:1: \"geolite.maxmind.com\": host name instead of URL template (old netsniff-ng format)"},
		{name: "two words", in: "https://a.example/{edition} https://b.example/{edition}\n", wantErr: "geoip.conf:1: "},
		{name: "no host", in: "https:///{edition}\n", wantErr: "geoip.conf:1: \"https:///{edition}\": no host"},
		{name: "empty", in: "# nothing\n", wantErr: "geoip.conf: no mirror URL templates"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := geo.ParseMirrors(strings.NewReader(tt.in), "geoip.conf")
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want it to start with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseMirrorsDefaultConf(t *testing.T) {
	f, err := os.Open("../etc/geoip.conf")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := geo.ParseMirrors(f, "etc/geoip.conf")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"https://download.maxmind.com/app/geoip_download?edition_id={edition}&license_key={key}&suffix=tar.gz",
		"https://github.com/P3TERX/GeoLite.mmdb/raw/download/{edition}.mmdb",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

// A mirror on this machine's loopback may be plain http (a local cache, a
// test server): nothing crosses a network.
func TestUpdateAcceptsLoopbackHTTP(t *testing.T) {
	city := geotest.Build(t, "GeoLite2-City", map[string]geo.Info{"192.0.2.0/24": {Country: "NL"}})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/GeoLite2-City.mmdb" {
			http.NotFound(w, r)
			return
		}
		w.Write(city)
	}))
	t.Cleanup(srv.Close)
	conf := filepath.Join(t.TempDir(), "geoip.conf")
	if err := os.WriteFile(conf, []byte(srv.URL+"/{edition}.mmdb\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var progress strings.Builder
	err := geo.Update(context.Background(), geo.UpdateConfig{ConfFile: conf, Dir: dir, Editions: []string{"GeoLite2-City"}}, &progress)
	if err != nil {
		t.Fatalf("Update from %s: %v", srv.URL, err)
	}
	db, errs := geo.Open([]string{dir})
	defer db.Close()
	if len(errs) > 0 || db.Lookup(netip.MustParseAddr("192.0.2.7")).Country != "NL" {
		t.Fatalf("downloaded database: errors %v, lookup %+v", errs, db.Lookup(netip.MustParseAddr("192.0.2.7")))
	}
}
