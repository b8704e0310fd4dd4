//go:build !linux

package main

import (
	"context"
	"errors"
	"io"
)

// Only Linux has netfilter's connection tracking: elsewhere flowtop is a
// viewer of the routers that publish to a broker (--remote).

// errNoKernel is what every mode that reads the local kernel says.
var errNoKernel = errors.New("the connection tracking table is Linux's: on this system flowtop only shows other machines' flows (--remote URL)")

// defaultStateDir is where --state-dir points by default (unused here).
const defaultStateDir = ""

// watchdogArg is never passed on this system: there is no sysctl to watch.
const watchdogArg = "__sysctl-watchdog"

func runWatchdog([]string) int { return 1 }

func runFlowtop(context.Context, *options, io.Writer, io.Writer) error { return errNoKernel }

// trackingAvailable: every local mode fails here anyway (errNoKernel).
func trackingAvailable(*options) error { return nil }
