//go:build !headless

package main

import (
	"context"

	"github.com/flowtop/flowtop/enrich"
	"github.com/flowtop/flowtop/remote"
	"github.com/flowtop/flowtop/ui"
)

// remoteScreen shows the broker's nodes until q or a signal. The laptop
// names what the routers did not (names are its lookups); processes come
// only from the routers.
func remoteScreen(ctx context.Context, o *options, c *remote.Client, names enrich.Namer, warns *warnings) error {
	return ui.Run(ctx, ui.Config{
		Fleet:    c,
		Node:     o.mqtt.node,
		Names:    names,
		Version:  version,
		Interval: o.intervalDuration(),
		Bits:     o.bits,
		ShowSrc:  o.showSrc,
		Numeric:  o.noDNS,
		Warnings: warns.list,
	})
}
