//go:build !headless

package main

import (
	"context"
	"io"
	"path/filepath"

	"github.com/flowtop/flowtop/geo"
)

// runUpdate is -u: fetch the GeoIP databases.
func runUpdate(ctx context.Context, o *options, stdout io.Writer) error {
	cfg := geo.UpdateConfig{Dir: o.geoipDir, LicenseFile: o.geoipLicenseFile}
	if o.configDir != "" {
		if conf := filepath.Join(o.configDir, "geoip.conf"); fileExists(conf) {
			cfg.ConfFile = conf
		}
	}
	return geo.Update(ctx, cfg, stdout)
}
