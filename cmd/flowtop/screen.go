//go:build !headless && linux

package main

import (
	"context"
	"github.com/flowtop/flowtop/conntrack/kernel"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/ui"
)

// screen is the default: the tview screen until q or a signal.
func (s *session) screen(ctx context.Context) error {
	s.cancelSub() // the screen reads Latest on its own tick
	o := s.o
	uiErr := make(chan error, 1)
	uiCtx, stopUI := context.WithCancel(ctx)
	defer stopUI()
	go func() {
		uiErr <- ui.Run(uiCtx, ui.Config{
			Source:   uiSource{s.table, s.k.src},
			Names:    s.names.names,
			Version:  version,
			Netns:    o.netns,
			Interval: o.intervalDuration(),
			Bits:     o.bits,
			ShowSrc:  o.showSrc,
			Numeric:  o.noDNS,
			Status:   s.exp.Status,
			Warnings: s.warnings,
		})
	}()
	select {
	case err := <-uiErr:
		return err
	case err := <-s.tableErr:
		stopUI()
		<-uiErr
		return err
	}
}

// uiSource is what the screen needs from the kernel side.
type uiSource struct {
	*conntrack.Table
	src *kernel.Source
}

func (u uiSource) Delete(f *conntrack.Flow) error { return u.src.Delete(f) }
