package links

import (
	"context"
	"testing"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

func TestExpireVCon(t *testing.T) {
	srv := testenv.StartRedis(t)
	rdb := srv.Client()
	ctx := context.Background()
	tests := []struct {
		name   string
		opts   map[string]any
		exists bool
		want   time.Duration
	}{
		{name: "default one day", opts: nil, exists: true, want: 86400 * time.Second},
		{name: "seconds as yaml int", opts: map[string]any{"seconds": 120}, exists: true, want: 120 * time.Second},
		{name: "seconds as float", opts: map[string]any{"seconds": 3600.0}, exists: true, want: time.Hour},
		{name: "missing body is not an error", opts: map[string]any{"seconds": 60}, exists: false, want: -2 * time.Nanosecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := rdb.FlushDB(ctx).Err(); err != nil {
				t.Fatal(err)
			}
			if tc.exists {
				if err := rdb.Set(ctx, "vcon:u1", `{"uuid":"u1"}`, 0).Err(); err != nil {
					t.Fatal(err)
				}
			}
			l := mustNew(t, "links.expire_vcon", tc.opts, Deps{Redis: rdb})
			if res := run(t, l, parseVCon(t, `{"uuid":"u1"}`)); res != Continue {
				t.Fatalf("result %+v, want Continue", res)
			}
			ttl, err := rdb.TTL(ctx, "vcon:u1").Result()
			if err != nil {
				t.Fatal(err)
			}
			if !tc.exists {
				if ttl != tc.want {
					t.Fatalf("TTL %v on a key that should not exist", ttl)
				}
				return
			}
			if ttl > tc.want || ttl < tc.want-5*time.Second {
				t.Fatalf("TTL %v, want about %v", ttl, tc.want)
			}
		})
	}
}

func TestExpireVConBadOptions(t *testing.T) {
	srv := testenv.StartRedis(t)
	deps := Deps{Redis: srv.Client()}
	checkBadOptions(t, "links.expire_vcon", deps, []badOptionCase{
		{name: "zero", opts: map[string]any{"seconds": 0}, want: `option "seconds": want a positive number`},
		{name: "negative", opts: map[string]any{"seconds": -5}, want: `option "seconds"`},
		{name: "fraction", opts: map[string]any{"seconds": 1.5}, want: `option "seconds": want a whole number`},
		{name: "string", opts: map[string]any{"seconds": "1h"}, want: `option "seconds": want a whole number, got a string`},
	})
	checkBadOptions(t, "links.expire_vcon", Deps{}, []badOptionCase{
		{name: "no redis", opts: nil, want: "needs a Redis client"},
	})
}
