//go:build headless

package main

import (
	"context"
	"errors"
	"io"
)

// runUpdate is -u, left out of the router build: the downloader's HTTP
// client (and its HTTP/2 transport) is 0.8 MB of a mips binary, and the
// databases (GeoLite2-City alone is 60 MB) rarely fit a router's flash.
// Download them with the full build and copy them to --geoip-dir.
func runUpdate(context.Context, *options, io.Writer) error {
	return errors.New("this build (-tags headless) cannot download GeoIP databases: run flowtop -u with the full build and copy the .mmdb files to --geoip-dir")
}
