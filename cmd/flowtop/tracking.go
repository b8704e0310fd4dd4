//go:build linux && !headless

package main

import (
	"fmt"
	"os"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
)

// trackingTable is the nft table --enable-tracking installs.
const trackingTable = "flowtop_tracking"

// trackingAvailable: this build can install it (the router build cannot).
func trackingAvailable(*options) error { return nil }

// trackingHint ends untrackedHint.
const trackingHint = "; flowtop --enable-tracking installs such a rule until it exits"

// enableTracking installs an inet table whose one rule matches on ct state.
// A rule that uses conntrack is what makes the kernel track a namespace's
// traffic (for IPv4 and IPv6, at every hook). The returned function
// removes the table again.
func enableTracking(ns *os.File) (remove func() error, err error) {
	var opts []nftables.ConnOption
	if ns != nil {
		opts = append(opts, nftables.WithNetNSFd(int(ns.Fd())))
	}
	c, err := nftables.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("--enable-tracking: open nftables: %w", err)
	}
	table := c.AddTable(&nftables.Table{Family: nftables.TableFamilyINet, Name: trackingTable})
	chain := c.AddChain(&nftables.Chain{
		Name:     "track",
		Table:    table,
		Type:     nftables.ChainTypeFilter,
		Hooknum:  nftables.ChainHookPrerouting,
		Priority: nftables.ChainPriorityFilter,
	})
	// ct state invalid counter: matches (almost) nothing, changes nothing.
	c.AddRule(&nftables.Rule{
		Table: table,
		Chain: chain,
		Exprs: []expr.Any{
			&expr.Ct{Register: 1, Key: expr.CtKeySTATE},
			&expr.Bitwise{SourceRegister: 1, DestRegister: 1, Len: 4,
				Mask: binaryutil.NativeEndian.PutUint32(expr.CtStateBitINVALID),
				Xor:  binaryutil.NativeEndian.PutUint32(0)},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(0)},
			&expr.Counter{},
		},
	})
	if err := c.Flush(); err != nil {
		return nil, fmt.Errorf("--enable-tracking: install nft table %s: %w", trackingTable, err)
	}
	return func() error {
		c.DelTable(table)
		if err := c.Flush(); err != nil {
			return fmt.Errorf("remove nft table %s: %w", trackingTable, err)
		}
		return nil
	}, nil
}
