// Package logging builds the binaries' structured loggers. Values that
// reach a log line often come from outside (a uuid popped from a list a
// producer filled, a vendor's error text): the handler bounds each one, so
// a 5 MB "uuid" makes a short line instead of a 5 MB one.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"unicode/utf8"
)

// MaxValueBytes bounds each attribute value and the message of a record.
const MaxValueBytes = 256

// NewJSON returns the JSON logger the binaries write to w.
func NewJSON(w io.Writer, opts *slog.HandlerOptions) *slog.Logger {
	return slog.New(Bounded(slog.NewJSONHandler(w, opts)))
}

// Bounded wraps h so that every string, error and Stringer value of a
// record (nested groups included) is cut to MaxValueBytes with a note of
// the size it had.
func Bounded(h slog.Handler) slog.Handler { return bounded{h} }

type bounded struct{ inner slog.Handler }

func (b bounded) Enabled(ctx context.Context, l slog.Level) bool { return b.inner.Enabled(ctx, l) }

func (b bounded) Handle(ctx context.Context, r slog.Record) error {
	out := slog.NewRecord(r.Time, r.Level, cut(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(boundAttr(a))
		return true
	})
	return b.inner.Handle(ctx, out)
}

func (b bounded) WithAttrs(attrs []slog.Attr) slog.Handler {
	bs := make([]slog.Attr, len(attrs))
	for i, a := range attrs {
		bs[i] = boundAttr(a)
	}
	return bounded{b.inner.WithAttrs(bs)}
}

func (b bounded) WithGroup(name string) slog.Handler { return bounded{b.inner.WithGroup(name)} }

func boundAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		if len(v.String()) > MaxValueBytes {
			return slog.String(a.Key, cut(v.String()))
		}
	case slog.KindGroup:
		group := v.Group()
		bs := make([]any, len(group))
		for i, g := range group {
			bs[i] = boundAttr(g)
		}
		return slog.Group(a.Key, bs...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, cut(x.Error()))
		case fmt.Stringer:
			return slog.String(a.Key, cut(x.String()))
		case []byte:
			return slog.String(a.Key, cut(string(x)))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

// cut shortens s to MaxValueBytes on a rune boundary and says how long it
// was.
func cut(s string) string {
	if len(s) <= MaxValueBytes {
		return s
	}
	n := MaxValueBytes
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:n], len(s))
}
