package queue

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
)

func tracedContext(t *testing.T) context.Context {
	t.Helper()
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID:    trace.TraceID{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16},
		SpanID:     trace.SpanID{1, 2, 3, 4, 5, 6, 7, 8},
		TraceFlags: trace.FlagsSampled,
	})
	return trace.ContextWithSpanContext(context.Background(), sc)
}

func TestQueuePush(t *testing.T) {
	rdb := newClient(t)
	for _, tc := range []struct {
		name     string
		traced   bool
		ttl      time.Duration
		uuids    []string
		commands []string // the queued commands, name and first key
	}{
		{"nothing to push", true, time.Hour, nil, nil},
		{"untraced: the uuid alone", false, time.Hour, []string{"u1"}, []string{"rpush L"}},
		{"traced: record, expiry, uuid", true, time.Hour, []string{"u1"},
			[]string{"rpush context:L:u1", "expire context:L:u1", "rpush L"}},
		{"traced without a ttl: no expiry", true, 0, []string{"u1"},
			[]string{"rpush context:L:u1", "rpush L"}},
		{"several: every record before one push", true, time.Hour, []string{"u1", "u2"},
			[]string{"rpush context:L:u1", "expire context:L:u1", "rpush context:L:u2", "expire context:L:u2", "rpush L"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			if tc.traced {
				ctx = tracedContext(t)
			}
			list := "push-" + strings.ReplaceAll(tc.name, " ", "-")
			pipe := rdb.Pipeline()
			QueuePush(ctx, pipe, list, tc.ttl, tc.uuids...)
			var got []string
			for _, c := range pipe.Cmds() {
				got = append(got, fmt.Sprintf("%s %s", c.Name(), strings.Replace(fmt.Sprint(c.Args()[1]), list, "L", 1)))
			}
			if !slices.Equal(got, tc.commands) {
				t.Fatalf("queued %q, want %q", got, tc.commands)
			}
			if len(got) == 0 {
				return
			}
			if _, err := pipe.Exec(ctx); err != nil {
				t.Fatal(err)
			}
			if got := lrange(t, rdb, list); !slices.Equal(got, tc.uuids) {
				t.Fatalf("list = %v, want %v", got, tc.uuids)
			}
			for _, u := range tc.uuids {
				records := lrange(t, rdb, ContextKey(list, u))
				if !tc.traced {
					if len(records) != 0 {
						t.Fatalf("untraced push wrote context records %v", records)
					}
					continue
				}
				want, _ := TraceContextFrom(ctx)
				if len(records) != 1 || records[0] != want.JSON() {
					t.Fatalf("context records of %s = %v, want [%s]", u, records, want.JSON())
				}
				ttl := rdb.TTL(ctx, ContextKey(list, u)).Val()
				if tc.ttl > 0 && (ttl <= 0 || ttl > tc.ttl) || tc.ttl == 0 && ttl != -1 {
					t.Fatalf("context TTL = %v, want %v (-1ns: none)", ttl, tc.ttl)
				}
			}
		})
	}
}
