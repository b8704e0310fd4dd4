package main

import (
	"context"
	"log/slog"
	"strings"
	"sync"
)

// warnings collects what flowtop would log while the screen owns the
// terminal, to show it in the screen's header instead. It keeps the last
// few distinct messages.
type warnings struct {
	mu   sync.Mutex
	msgs []string
}

const maxWarnings = 4

func (w *warnings) add(msg string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range w.msgs {
		if m == msg {
			return
		}
	}
	w.msgs = append(w.msgs, msg)
	if len(w.msgs) > maxWarnings {
		w.msgs = w.msgs[len(w.msgs)-maxWarnings:]
	}
}

func (w *warnings) list() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.msgs...)
}

// handler is a slog.Handler that records warnings and errors as one line.
func (w *warnings) handler() slog.Handler { return &warnHandler{w: w} }

type warnHandler struct {
	w     *warnings
	attrs []slog.Attr
}

func (h *warnHandler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelWarn }

func (h *warnHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	add := func(a slog.Attr) bool {
		b.WriteString(" " + a.Key + "=" + a.Value.String())
		return true
	}
	for _, a := range h.attrs {
		add(a)
	}
	r.Attrs(add)
	h.w.add(b.String())
	return nil
}

func (h *warnHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &warnHandler{w: h.w, attrs: append(append([]slog.Attr(nil), h.attrs...), as...)}
}

func (h *warnHandler) WithGroup(string) slog.Handler { return h }
