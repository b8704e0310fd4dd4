package export

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/flowtop/flowtop/conntrack"
	"github.com/flowtop/flowtop/report"
)

// File is the --write exporter: the snapshot document, replaced
// atomically (report.WriteFile) at start and every Every.
type File struct {
	Path  string
	Every time.Duration
	// Latest is the snapshot source (Env.Latest); Document makes its
	// document, health included, as the other outputs write it.
	Latest   func() *conntrack.Snapshot
	Document func(*conntrack.Snapshot) *report.Prepared
	Logger   *slog.Logger

	published, errs atomic.Uint64
}

// Name is "file".
func (f *File) Name() string { return "file" }

// Health counts the files written and the writes that failed.
func (f *File) Health() report.ExporterHealth {
	return report.ExporterHealth{Published: f.published.Load(), Errors: f.errs.Load()}
}

// Run writes the file until ctx ends. A failed write is logged, counted
// and tried again at the next tick.
func (f *File) Run(ctx context.Context) error {
	f.write()
	t := time.NewTicker(f.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			f.write()
		}
	}
}

func (f *File) write() {
	s := f.Latest()
	if s == nil {
		return
	}
	if err := report.WriteFile(f.Path, f.Document(s)); err != nil {
		f.errs.Add(1)
		if f.Logger != nil {
			f.Logger.Error(err.Error())
		}
		return
	}
	f.published.Add(1)
}
