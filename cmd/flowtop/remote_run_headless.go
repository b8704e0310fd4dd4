//go:build headless

package main

import (
	"context"
	"errors"
	"io"
)

// runRemote: the router build (-tags headless) has no fleet view. A
// router publishes; the viewer, its decoder and its lookups are a quarter
// of a megabyte of a mips binary that a router never runs.
func runRemote(context.Context, *options, io.Writer, io.Writer) error {
	return usageError{errors.New("this build (-tags headless) has no fleet view (--remote): use the full build on the machine you watch from")}
}
