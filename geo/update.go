//go:build !headless

// The GeoIP downloader (flowtop -u) is not in the headless router build: it
// is the only part of geo that needs net/http, which weighs some 0.7 MB of a
// mips binary (docs/BENCHMARKS.md, "Binary sizes").

package geo

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/oschwald/maxminddb-golang/v2"
)

// DefaultUpdateDir is where Update installs databases when UpdateConfig.Dir
// is empty: downloaded, changing data belongs under /var/lib, while
// /usr/share/GeoIP is left to the package manager. Open searches both.
const DefaultUpdateDir = "/var/lib/GeoIP"

// DefaultEditions are downloaded when UpdateConfig.Editions is empty. City
// includes everything Country has, so Country is not fetched by default.
var DefaultEditions = []string{"GeoLite2-City", "GeoLite2-ASN"}

// LicenseKeyEnv is the environment variable read for the MaxMind licence key
// when neither UpdateConfig.LicenseKey nor LicenseFile is set.
const LicenseKeyEnv = "MAXMIND_LICENSE_KEY"

const (
	maxDownload   = 1 << 30          // no GeoIP file comes near; stops a runaway or a gzip bomb
	stallTimeout  = 60 * time.Second // no byte for this long and the mirror is given up
	progressEvery = time.Second
)

// UpdateConfig says what Update downloads, from where, to where.
type UpdateConfig struct {
	// ConfFile is the mirror list (see ParseMirrors). Empty: the first of
	// /etc/flowtop/geoip.conf, /etc/netsniff-ng/geoip.conf, else the
	// built-in copy.
	ConfFile string
	// Dir receives the .mmdb files; it is created if needed. Empty:
	// DefaultUpdateDir.
	Dir string
	// Editions to fetch, e.g. "GeoLite2-Country"; empty: DefaultEditions.
	// Each is saved as Dir/<edition>.mmdb.
	Editions []string
	// LicenseKey for templates with {key}. Empty: read from LicenseFile,
	// else from $MAXMIND_LICENSE_KEY. Without a key those mirrors are skipped.
	LicenseKey string
	// LicenseFile holds the licence key (--geoip-license-file); the first
	// line that is not blank or a '#' comment is used.
	LicenseFile string
	// Client does the downloads; nil means a client with sane timeouts.
	// Redirects to anything but https are refused either way.
	Client *http.Client
}

var editionRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Update downloads the configured editions, trying the mirrors in order for
// each, and installs every file that verifies: checksum when the mirror
// offers one, a MaxMind DB that passes the library's full verification, and a
// database type matching the edition. A file replaces the old one atomically,
// so a running flowtop and a failed download never see half a file.
//
// Progress goes to progress (nil: discarded). The licence key never appears
// there or in the error. An edition whose mirrors all fail is reported with
// each mirror's error; the other editions are still fetched.
func Update(ctx context.Context, cfg UpdateConfig, progress io.Writer) error {
	if progress == nil {
		progress = io.Discard
	}
	key, err := licenseKey(cfg)
	if err != nil {
		return err
	}
	secrets := []string{key, url.QueryEscape(key)}
	if key == "" {
		secrets = nil
	}
	mirrors, src, err := loadMirrors(cfg.ConfFile, progress)
	if err != nil {
		return err
	}
	editions := cfg.Editions
	if len(editions) == 0 {
		editions = DefaultEditions
	}
	for _, ed := range editions {
		if !editionRE.MatchString(ed) {
			return fmt.Errorf("geoip: update: bad edition name %q", ed)
		}
	}
	dir := cfg.Dir
	if dir == "" {
		dir = DefaultUpdateDir
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("geoip: update: %w", err)
	}
	u := &updater{
		client:   httpsOnly(cfg.Client),
		dir:      dir,
		key:      key,
		secrets:  secrets,
		progress: progress,
	}
	u.printf("geoip: mirrors from %s, installing into %s\n", src, dir)

	var errs []error
	for _, ed := range editions {
		if err := u.edition(ctx, ed, mirrors); err != nil {
			errs = append(errs, redactedError{err, secrets})
			if ctx.Err() != nil {
				break
			}
		}
	}
	return errors.Join(errs...)
}

// licenseKey picks the key from the config, its file, or the environment.
func licenseKey(cfg UpdateConfig) (string, error) {
	key := cfg.LicenseKey
	if key == "" && cfg.LicenseFile != "" {
		b, err := os.ReadFile(cfg.LicenseFile)
		if err != nil {
			return "", fmt.Errorf("geoip: licence key: %w", err)
		}
		for line := range strings.Lines(string(b)) {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				key = line
				break
			}
		}
		if key == "" {
			return "", fmt.Errorf("geoip: licence key: %s holds no key", cfg.LicenseFile)
		}
	}
	if key == "" {
		key = os.Getenv(LicenseKeyEnv)
	}
	key = strings.TrimSpace(key)
	if strings.ContainsAny(key, " \t\r\n") {
		return "", errors.New("geoip: licence key: contains blanks") // the key itself stays unprinted
	}
	return key, nil
}

// httpsOnly returns a copy of c (or a default client) that refuses to follow
// redirects away from https.
func httpsOnly(c *http.Client) *http.Client {
	if c == nil {
		t := http.DefaultTransport.(*http.Transport).Clone()
		t.ResponseHeaderTimeout = stallTimeout
		c = &http.Client{Transport: t}
	}
	cc := *c
	next := c.CheckRedirect
	cc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		// Never from https down to http; a loopback http mirror may
		// redirect within loopback.
		fromHTTPS := len(via) > 0 && via[0].URL.Scheme == "https"
		if req.URL.Scheme != "https" && (fromHTTPS || !secureURL(req.URL)) {
			return fmt.Errorf("redirect to %s://%s refused: only https is allowed", req.URL.Scheme, req.URL.Host)
		}
		if next != nil {
			return next(req, via)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &cc
}

// updater holds what every download of one Update call shares.
type updater struct {
	client   *http.Client
	dir      string
	key      string
	secrets  []string
	progress io.Writer
}

func (u *updater) printf(format string, args ...any) {
	fmt.Fprint(u.progress, redact(fmt.Sprintf(format, args...), u.secrets))
}

// edition fetches one edition from the first mirror that delivers a good
// file.
func (u *updater) edition(ctx context.Context, ed string, mirrors []string) error {
	var failed []string
	for _, tpl := range mirrors {
		if strings.Contains(tpl, phKey) && u.key == "" {
			failed = append(failed, fmt.Sprintf("%s: skipped: needs a licence key (--geoip-license-file or %s)", tpl, LicenseKeyEnv))
			continue
		}
		rawURL := expand(tpl, ed, u.key)
		shown := redact(rawURL, u.secrets)
		u.printf("%s: trying %s\n", ed, shown)
		dst, err := u.fetch(ctx, ed, rawURL)
		if err == nil {
			u.printf("%s: installed %s\n", ed, dst)
			u.noteShadowed(ed)
			return nil
		}
		msg := redact(err.Error(), u.secrets)
		u.printf("%s: failed: %s\n", ed, msg)
		if ctx.Err() != nil {
			return fmt.Errorf("geoip: update %s: %w", ed, ctx.Err())
		}
		failed = append(failed, shown+": "+msg)
	}
	return fmt.Errorf("geoip: update %s: every mirror failed:\n  %s", ed, strings.Join(failed, "\n  "))
}

// noteShadowed warns when Open would pick a file of the same name from a
// directory it searches before the one just written.
func (u *updater) noteShadowed(ed string) {
	for _, d := range DefaultDirs("") {
		if filepath.Clean(d) == filepath.Clean(u.dir) {
			return
		}
		if p := filepath.Join(d, ed+".mmdb"); fileExists(p) {
			u.printf("%s: note: %s is searched first and shadows the new file\n", ed, p)
			return
		}
	}
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}

// fetch downloads rawURL, checks and unpacks it and installs the result as
// dir/<ed>.mmdb. It returns the installed path. Nothing in dir changes unless
// every check passed.
func (u *updater) fetch(ctx context.Context, ed, rawURL string) (string, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	dl, err := os.CreateTemp(u.dir, "."+ed+"-*.download")
	if err != nil {
		return "", err
	}
	defer os.Remove(dl.Name())
	defer dl.Close()

	sum, err := u.download(ctx, cancel, ed, rawURL, dl)
	if err != nil {
		return "", err
	}
	wantSum, err := u.checksum(ctx, ed, rawURL)
	if err != nil {
		return "", err
	}
	if wantSum != nil && !bytes.Equal(sum, wantSum) {
		return "", fmt.Errorf("checksum mismatch: got sha256 %x, mirror says %x", sum, wantSum)
	}
	if wantSum != nil {
		u.printf("%s: sha256 matches\n", ed)
	}

	mmdb, err := u.unpack(ed, dl)
	if err != nil {
		return "", err
	}
	if mmdb != dl {
		defer os.Remove(mmdb.Name())
		defer mmdb.Close()
	}
	if err := mmdb.Sync(); err != nil {
		return "", err
	}
	if err := u.verify(ed, mmdb.Name()); err != nil {
		return "", err
	}
	return u.install(ed, mmdb)
}

// checksum fetches the SHA-256 the mirror publishes for rawURL. nil, nil
// means the mirror offers none.
func (u *updater) checksum(ctx context.Context, ed, rawURL string) ([]byte, error) {
	resp, err := u.get(ctx, checksumURL(rawURL))
	if err != nil {
		return nil, fmt.Errorf("checksum: %w", err)
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound, http.StatusGone, http.StatusForbidden: // S3-style stores say 403 for a missing object
		u.printf("%s: mirror offers no checksum\n", ed)
		return nil, nil
	default:
		return nil, fmt.Errorf("checksum: %s", httpStatus(resp))
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return nil, fmt.Errorf("checksum: %w", err)
	}
	// "<hex>  <file name>" as written by sha256sum; the name is ignored.
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return nil, errors.New("checksum: empty checksum file")
	}
	sum, err := hex.DecodeString(fields[0])
	if err != nil || len(sum) != sha256.Size {
		return nil, fmt.Errorf("checksum: %q is not a SHA-256", truncate(fields[0], 80))
	}
	return sum, nil
}

// download streams rawURL into f, reporting progress, and returns its
// SHA-256. A transfer that stalls for stallTimeout is cancelled.
func (u *updater) download(ctx context.Context, cancel context.CancelCauseFunc, ed, rawURL string, f *os.File) ([]byte, error) {
	errStalled := fmt.Errorf("no data for %v", stallTimeout)
	stall := time.AfterFunc(stallTimeout, func() { cancel(errStalled) })
	defer stall.Stop()

	resp, err := u.get(ctx, rawURL)
	if err != nil {
		if cause := context.Cause(ctx); errors.Is(cause, errStalled) {
			return nil, cause
		}
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, errors.New(httpStatus(resp))
	}

	h := sha256.New()
	pw := &progressWriter{u: u, ed: ed, total: resp.ContentLength, stall: stall}
	n, err := io.Copy(io.MultiWriter(f, h, pw), io.LimitReader(resp.Body, maxDownload+1))
	switch {
	case err != nil:
		if cause := context.Cause(ctx); errors.Is(cause, errStalled) {
			return nil, cause
		}
		return nil, fmt.Errorf("download: %w", err)
	case n > maxDownload:
		return nil, fmt.Errorf("download: larger than %s, refused", size(maxDownload))
	case resp.ContentLength >= 0 && n != resp.ContentLength:
		return nil, fmt.Errorf("download: got %d of %d bytes", n, resp.ContentLength)
	}
	u.printf("%s: downloaded %s\n", ed, size(n))
	return h.Sum(nil), nil
}

func (u *updater) get(ctx context.Context, rawURL string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("User-Agent", "flowtop-geoip-update")
	resp, err := u.client.Do(req)
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // the caller names the URL already
	}
	return resp, err
}

// httpStatus describes a failed response with the start of its body, which
// is where MaxMind explains a bad key or an unknown edition.
func httpStatus(resp *http.Response) string {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
	body := strings.Join(strings.Fields(string(b)), " ")
	if body == "" || strings.HasPrefix(body, "<") { // skip HTML error pages
		return "HTTP " + resp.Status
	}
	return fmt.Sprintf("HTTP %s: %s", resp.Status, truncate(body, 120))
}

// unpack returns a file holding the bare .mmdb from dl, which may be one
// already, or a .gz, .tar or .tar.gz holding it. The file is dl itself or a
// new temporary file in dir.
func (u *updater) unpack(ed string, dl *os.File) (*os.File, error) {
	if _, err := dl.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	br := bufio.NewReader(dl)
	var r io.Reader = br
	gz := false
	if magic, _ := br.Peek(2); bytes.Equal(magic, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("unpack: %w", err)
		}
		defer zr.Close()
		r, gz = zr, true
	}
	tr := bufio.NewReader(r)
	isTar := false
	if hdr, _ := tr.Peek(262); len(hdr) == 262 && string(hdr[257:262]) == "ustar" {
		isTar = true
	}
	if !gz && !isTar {
		return dl, nil // a plain .mmdb
	}

	var src io.Reader = tr
	if isTar {
		entry, err := findInTar(tar.NewReader(tr), ed)
		if err != nil {
			return nil, err
		}
		src = entry
	}
	out, err := os.CreateTemp(u.dir, "."+ed+"-*.mmdb")
	if err != nil {
		return nil, err
	}
	n, err := io.Copy(out, io.LimitReader(src, maxDownload+1))
	if err == nil && n > maxDownload {
		err = fmt.Errorf("larger than %s unpacked, refused", size(maxDownload))
	}
	if err != nil {
		out.Close()
		os.Remove(out.Name())
		return nil, fmt.Errorf("unpack: %w", err)
	}
	return out, nil
}

// findInTar positions tr at the first .mmdb in the archive (MaxMind's hold
// one: GeoLite2-City_20240102/GeoLite2-City.mmdb). Which database it is gets
// checked afterwards, like any other download.
func findInTar(tr *tar.Reader, ed string) (io.Reader, error) {
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return nil, fmt.Errorf("unpack: no .mmdb file in the archive for %s", ed)
		}
		if err != nil {
			return nil, fmt.Errorf("unpack: %w", err)
		}
		if h.Typeflag == tar.TypeReg && strings.HasSuffix(h.Name, ".mmdb") {
			return tr, nil
		}
	}
}

// verify opens file as a MaxMind DB, checks its type against the edition
// and runs the library's full consistency check.
func (u *updater) verify(ed, file string) error {
	r, err := maxminddb.Open(file)
	if err != nil {
		return fmt.Errorf("not a usable MaxMind DB: %w", invalidDBError{err})
	}
	defer r.Close()
	got := r.Metadata.DatabaseType
	ok := got == ed
	if want := kindOf(ed); want != kindUnknown {
		ok = kindOf(got) == want // GeoIP2-City or DB-IP's city file will do for GeoLite2-City
	}
	if !ok {
		return fmt.Errorf("database type %q is not a %s database", got, ed)
	}
	if err := r.Verify(); err != nil {
		return fmt.Errorf("%s database fails verification: %w", got, err)
	}
	u.printf("%s: verified %s database built %s\n", ed, got, r.Metadata.BuildTime().UTC().Format(time.DateOnly))
	return nil
}

// install moves the verified temporary file into place. rename(2) within
// one directory is atomic: readers see the old file or the new one.
func (u *updater) install(ed string, f *os.File) (string, error) {
	if err := f.Chmod(0o644); err != nil {
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	dst := filepath.Join(u.dir, ed+".mmdb")
	if err := os.Rename(f.Name(), dst); err != nil {
		return "", fmt.Errorf("install: %w", err)
	}
	// Make the rename itself durable; a failure here leaves a good file.
	if d, err := os.Open(u.dir); err == nil {
		d.Sync()
		d.Close()
	}
	return dst, nil
}

// progressWriter reports the bytes of one download at most once a second
// and keeps the stall timer from firing while data flows.
type progressWriter struct {
	u     *updater
	ed    string
	total int64
	n     int64
	last  time.Time
	stall *time.Timer
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.n += int64(len(b))
	p.stall.Reset(stallTimeout)
	if now := time.Now(); now.Sub(p.last) >= progressEvery {
		p.last = now
		if p.total > 0 {
			p.u.printf("%s: %s of %s (%d%%)\n", p.ed, size(p.n), size(p.total), p.n*100/p.total)
		} else {
			p.u.printf("%s: %s\n", p.ed, size(p.n))
		}
	}
	return len(b), nil
}

// size formats a byte count for people.
func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
