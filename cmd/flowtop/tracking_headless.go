//go:build linux && headless

package main

import (
	"errors"
	"os"
)

// trackingTable is the nft table --enable-tracking installs in the full
// build.
const trackingTable = "flowtop_tracking"

// errNoTracking: the router build (-tags headless) leaves out
// --enable-tracking. nftables and its dependencies are a quarter of a
// megabyte of a mips binary, and a router's firewall (OpenWrt's fw4)
// already has ct state rules, so the kernel tracks its traffic anyway.
var errNoTracking = errors.New("this build (-tags headless) has no --enable-tracking: add a firewall rule that uses conntrack " +
	"(e.g. nft add rule inet filter input ct state established accept) or use the full build")

// trackingHint ends untrackedHint: no --enable-tracking to point to here.
const trackingHint = ""

// trackingAvailable refuses --enable-tracking before anything is opened.
func trackingAvailable(o *options) error {
	if o.enableTracking {
		return errNoTracking
	}
	return nil
}

func enableTracking(*os.File) (func() error, error) { return nil, errNoTracking }
