//go:build !headless

package main

import (
	"context"
	"errors"

	"github.com/flowtop/flowtop/enrich"
	"github.com/flowtop/flowtop/remote"
)

// remoteScreen shows the broker's nodes until q or a signal. The laptop
// names what the routers did not (names are its lookups); processes come
// only from the routers.
func remoteScreen(ctx context.Context, o *options, c *remote.Client, names enrich.Namer, warns *warnings) error {
	return errors.New("the remote screen is not wired yet")
}
