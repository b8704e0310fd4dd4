//go:build headless

package main

import (
	"context"
	"errors"

	"github.com/flowtop/flowtop/enrich"
	"github.com/flowtop/flowtop/remote"
)

// remoteScreen is left out of the router build with the rest of the
// screen; run refuses the screen before it gets here.
func remoteScreen(context.Context, *options, *remote.Client, enrich.Namer, *warnings) error {
	return errors.New("this build has no screen")
}
