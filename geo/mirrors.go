//go:build !headless

package geo

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"strings"

	"github.com/flowtop/flowtop/etc"
)

// Placeholders in a mirror URL template.
const (
	phEdition = "{edition}" // GeoLite2-City, GeoLite2-Country, GeoLite2-ASN
	phKey     = "{key}"     // MaxMind licence key
)

// confPaths are searched, in order, when UpdateConfig.ConfFile is empty; the
// copy built into the binary is the last resort.
var confPaths = []string{"/etc/flowtop/geoip.conf", "/etc/netsniff-ng/geoip.conf"}

// errLegacyHost marks a line of netsniff-ng's old geoip.conf, which lists
// bare host names of the long gone legacy .dat mirrors.
var errLegacyHost = errors.New("host name instead of URL template")

var (
	placeholderRE = regexp.MustCompile(`\{[^{}]*\}`)
	hostRE        = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?(:[0-9]+)?$`)
)

// ParseMirrors reads a geoip.conf: one URL template per line, tried in
// order; blank lines and text from a '#' at the start of a line or after a
// blank are comments. A template must use https:// and contain {edition};
// {key} is replaced by the licence key. file names the source in errors,
// which read "file:line: ...".
func ParseMirrors(r io.Reader, file string) ([]string, error) {
	var mirrors []string
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if i := strings.Index(line, "#"); i == 0 || (i > 0 && (line[i-1] == ' ' || line[i-1] == '\t')) {
			line = line[:i]
		}
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if err := checkTemplate(line); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", file, n, err)
		}
		mirrors = append(mirrors, line)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if len(mirrors) == 0 {
		return nil, fmt.Errorf("%s: no mirror URL templates", file)
	}
	return mirrors, nil
}

// checkTemplate says what is wrong with one mirror line, if anything.
func checkTemplate(tpl string) error {
	if strings.ContainsAny(tpl, " \t") {
		return fmt.Errorf("%q: one URL template per line, no blanks", tpl)
	}
	if !strings.Contains(tpl, "://") && hostRE.MatchString(tpl) {
		return fmt.Errorf("%q: %w (old netsniff-ng format); want an https:// URL with %s",
			tpl, errLegacyHost, phEdition)
	}
	for _, ph := range placeholderRE.FindAllString(tpl, -1) {
		if ph != phEdition && ph != phKey {
			return fmt.Errorf("%q: unknown placeholder %s (known: %s, %s)", tpl, ph, phEdition, phKey)
		}
	}
	if !strings.Contains(tpl, phEdition) {
		return fmt.Errorf("%q: no %s placeholder, every edition would get the same file", tpl, phEdition)
	}
	u, err := url.Parse(expand(tpl, "GeoLite2-City", "KEY"))
	if err != nil {
		return fmt.Errorf("%q: not a URL: %w", tpl, errors.Unwrap(err))
	}
	if !secureURL(u) {
		return fmt.Errorf("%q: only https:// mirrors are allowed (databases are code-like input; plain http can be tampered with), or http:// on this machine's loopback", tpl)
	}
	if u.Host == "" {
		return fmt.Errorf("%q: no host", tpl)
	}
	return nil
}

// secureURL accepts https, and plain http to a loopback address: a mirror
// on this machine (a local cache, a test server) crosses no network that
// could tamper with it.
func secureURL(u *url.URL) bool {
	switch strings.ToLower(u.Scheme) {
	case "https":
		return true
	case "http":
		h := u.Hostname()
		if h == "localhost" {
			return true
		}
		a, err := netip.ParseAddr(h)
		return err == nil && a.IsLoopback()
	}
	return false
}

// expand fills in a template. The key is query-escaped: it normally sits in
// a query string, and escaping is a no-op for MaxMind's [A-Za-z0-9_] keys.
func expand(tpl, edition, key string) string {
	return strings.NewReplacer(phEdition, edition, phKey, url.QueryEscape(key)).Replace(tpl)
}

// checksumURL is where a mirror offers the SHA-256 of rawURL: MaxMind's
// download takes suffix=tar.gz.sha256 instead of suffix=tar.gz, everyone
// else appends .sha256 to the path.
func checksumURL(rawURL string) string {
	u, err := url.Parse(rawURL)
	if err != nil {
		return rawURL + ".sha256"
	}
	if q := u.Query(); q.Get("suffix") != "" {
		q.Set("suffix", q.Get("suffix")+".sha256")
		u.RawQuery = q.Encode()
		return u.String()
	}
	u.Path += ".sha256"
	if u.RawPath != "" {
		u.RawPath += ".sha256"
	}
	return u.String()
}

// loadMirrors reads conf, or, when conf is empty, the first of confPaths
// that exists, or the built-in geoip.conf. It returns the templates and the
// name of the file they came from.
func loadMirrors(conf string, progress io.Writer) ([]string, string, error) {
	if conf != "" {
		m, err := parseFile(conf)
		return m, conf, err
	}
	for _, p := range confPaths {
		m, err := parseFile(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case errors.Is(err, errLegacyHost):
			// netsniff-ng installs this file with its old host list;
			// it says nothing about .mmdb mirrors, so it is no reason to fail.
			fmt.Fprintf(progress, "geoip: ignoring %s: old netsniff-ng mirror list\n", p)
			continue
		}
		return m, p, err
	}
	f, err := etc.Files.Open("geoip.conf")
	if err != nil {
		return nil, "", fmt.Errorf("geoip: built-in geoip.conf: %w", err)
	}
	defer f.Close()
	const name = "geoip.conf (built in)"
	m, err := ParseMirrors(f, name)
	if err != nil {
		return nil, name, fmt.Errorf("geoip: %w", err)
	}
	return m, name, nil
}

func parseFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("geoip: mirror list: %w", err)
	}
	defer f.Close()
	m, err := ParseMirrors(f, path)
	if err != nil {
		return nil, fmt.Errorf("geoip: %w", err)
	}
	return m, nil
}
