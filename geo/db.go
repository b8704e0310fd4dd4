package geo

import (
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/oschwald/geoip2-golang/v2"
)

// System directories searched after --geoip-dir, in this order.
var systemDirs = []string{"/usr/share/GeoIP", "/var/lib/GeoIP"}

// File names looked for in each directory, best first. The commercial
// GeoIP2 files come before the free GeoLite2 ones because they are a superset
// in accuracy; DB-IP's lite files carry a date in the name, the newest wins.
var (
	cityNames    = []string{"GeoIP2-City.mmdb", "GeoLite2-City.mmdb", "dbip-city-lite*.mmdb"}
	countryNames = []string{"GeoIP2-Country.mmdb", "GeoLite2-Country.mmdb", "dbip-country-lite*.mmdb"}
	asnNames     = []string{"GeoIP2-ISP.mmdb", "GeoLite2-ASN.mmdb", "dbip-asn-lite*.mmdb"}
)

// cacheSize bounds the lookup cache. An entry is an address and an Info,
// roughly 100 bytes with its strings, so the cache stays below ~10 MB.
const cacheSize = 64 << 10

// DB answers lookups from at most one location database (City or Country)
// and one ASN database. It is safe for concurrent use; Lookup may be called
// until and even after Close, which makes it return zero Info.
type DB struct {
	mu    sync.RWMutex // write-held only by Close: readers are memory-mapped
	loc   *geoip2.Reader
	asn   *geoip2.Reader
	files []string
	avail atomic.Bool // a database is open: lets Lookup skip locks and cache
	cache *cache
}

// DefaultDirs returns the directories Open searches: geoipDir (the
// --geoip-dir flag) when set, then /usr/share/GeoIP and /var/lib/GeoIP.
func DefaultDirs(geoipDir string) []string {
	var dirs []string
	if geoipDir != "" {
		dirs = append(dirs, filepath.Clean(geoipDir))
	}
	for _, d := range systemDirs {
		if !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	return dirs
}

// Open looks for databases in dirs and opens the best of each kind: a City
// database (any directory) before a Country database, and an ASN database.
// Within a kind the directories are searched in the order given.
//
// The DB is never nil. A file that cannot be used (corrupt, wrong type,
// unreadable) yields an error naming it, and the next candidate of the same
// kind is tried. When no database file exists at all, the single error
// wraps ErrNoDatabase and says how to get one. Either way the DB works with
// whatever it could open, possibly nothing.
func Open(dirs []string) (*DB, []error) {
	d := &DB{cache: newCache(cacheSize)}
	var errs []error
	for _, dir := range dirs {
		if fi, err := os.Stat(dir); err == nil && !fi.IsDir() {
			errs = append(errs, fmt.Errorf("geoip: %s: not a directory", dir))
		}
	}

	loc := append(find(dirs, cityNames), find(dirs, countryNames)...)
	asn := find(dirs, asnNames)
	if len(loc) == 0 && len(asn) == 0 {
		errs = append(errs, fmt.Errorf("%w in %s (flowtop -u downloads them, -G silences this)",
			ErrNoDatabase, strings.Join(dirs, ", ")))
		return d, errs
	}

	var err []error
	var file string
	d.loc, file, err = openFirst(loc, "City or Country", func(k kind) bool { return k == kindCity || k == kindCountry })
	errs = append(errs, err...)
	if d.loc != nil {
		d.files = append(d.files, file)
	}
	d.asn, file, err = openFirst(asn, "ASN", func(k kind) bool { return k == kindASN })
	errs = append(errs, err...)
	if d.asn != nil {
		d.files = append(d.files, file)
	}
	d.avail.Store(d.loc != nil || d.asn != nil)
	return d, errs
}

// find lists existing files matching names in dirs: names in order of
// preference within a directory, directories in order.
func find(dirs, names []string) []string {
	var out []string
	for _, dir := range dirs {
		for _, name := range names {
			var matches []string
			if strings.ContainsAny(name, "*?[") {
				matches, _ = filepath.Glob(filepath.Join(dir, name)) // only ErrBadPattern, and the patterns are fixed
				slices.Sort(matches)
				slices.Reverse(matches) // dated names: newest first
			} else {
				matches = []string{filepath.Join(dir, name)}
			}
			for _, m := range matches {
				if fi, err := os.Stat(m); err == nil && fi.Mode().IsRegular() {
					out = append(out, m)
				}
			}
		}
	}
	return out
}

// openFirst opens the first of paths that is a valid database of an accepted
// kind and returns it with the errors of the files it skipped.
func openFirst(paths []string, want string, accept func(kind) bool) (*geoip2.Reader, string, []error) {
	var errs []error
	for _, p := range paths {
		r, err := openReader(p)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if t := r.Metadata().DatabaseType; !accept(kindOf(t)) {
			r.Close()
			errs = append(errs, fmt.Errorf("geoip: %s: database type %q is not a %s database", p, t, want))
			continue
		}
		return r, p, errs
	}
	return nil, "", errs
}

// openReader opens path with geoip2 and words failures as one line naming
// the file.
func openReader(path string) (*geoip2.Reader, error) {
	r, err := geoip2.Open(path)
	if err == nil {
		return r, nil
	}
	if r != nil {
		// geoip2 returns an open reader along with UnknownDatabaseTypeError.
		r.Close()
	}
	var pe *fs.PathError
	var ut geoip2.UnknownDatabaseTypeError
	switch {
	case errors.As(err, &pe):
		return nil, fmt.Errorf("geoip: %w", err) // already names the file
	case errors.As(err, &ut):
		return nil, fmt.Errorf("geoip: %s: unsupported database type %q", path, ut.DatabaseType)
	default:
		return nil, fmt.Errorf("geoip: %s: %w", path, invalidDBError{err})
	}
}

// Lookup returns what the databases know about a, or the zero Info.
// IPv4-mapped IPv6 addresses are looked up as IPv4; private, loopback,
// link-local, multicast and unspecified addresses are never in the
// databases and return at once.
func (d *DB) Lookup(a netip.Addr) Info {
	a = a.Unmap().WithZone("")
	if !a.IsValid() || !global(a) || !d.avail.Load() {
		return Info{}
	}
	if v, ok := d.cache.get(a); ok {
		return v
	}
	v, ok := d.lookup(a)
	if ok {
		d.cache.put(a, v)
	}
	return v
}

// lookup asks the databases; ok is false once the DB is closed, so that
// nothing is cached after Close.
func (d *DB) lookup(a netip.Addr) (v Info, ok bool) {
	d.mu.RLock()
	defer d.mu.RUnlock()
	if d.loc == nil && d.asn == nil {
		return Info{}, false
	}
	// A record that fails to decode is treated as a miss: one bad record
	// must not take GeoIP away from every other flow.
	if d.loc != nil {
		if c, err := d.loc.City(a); err == nil {
			v.Country = c.Country.ISOCode
			v.CountryName = c.Country.Names.English
			v.City = c.City.Names.English
		}
	}
	if d.asn != nil {
		if r, err := d.asn.ASN(a); err == nil {
			v.ASN = r.AutonomousSystemNumber
			v.ASOrg = r.AutonomousSystemOrganization
		}
	}
	return v, true
}

// global reports whether a can be in a GeoIP database at all.
func global(a netip.Addr) bool {
	return !(a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() ||
		a.IsMulticast() || a.IsUnspecified())
}

// Available reports whether at least one database is open.
func (d *DB) Available() bool { return d.avail.Load() }

// Files returns the paths of the databases in use, location first.
func (d *DB) Files() []string {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return slices.Clone(d.files)
}

// Close releases the databases. Lookups after Close return the zero Info.
// Calling Close more than once is harmless.
func (d *DB) Close() error {
	d.avail.Store(false)
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	for _, r := range []*geoip2.Reader{d.loc, d.asn} {
		if r != nil {
			if err := r.Close(); err != nil {
				errs = append(errs, fmt.Errorf("geoip: close: %w", err))
			}
		}
	}
	d.loc, d.asn, d.files = nil, nil, nil
	d.cache.clear()
	return errors.Join(errs...)
}
