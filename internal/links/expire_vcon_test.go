package links

import (
	"context"
	"reflect"
	"testing"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

// TestExpireVCon: the link returns the TTL for the pipeline to set when it
// writes the body, and touches no key itself.
func TestExpireVCon(t *testing.T) {
	srv := testenv.StartRedis(t)
	rdb := srv.Client()
	ctx := context.Background()
	tests := []struct {
		name string
		opts map[string]any
		want time.Duration
	}{
		{name: "default one day", opts: nil, want: 86400 * time.Second},
		{name: "seconds as yaml int", opts: map[string]any{"seconds": 120}, want: 120 * time.Second},
		{name: "seconds as float", opts: map[string]any{"seconds": 3600.0}, want: time.Hour},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := rdb.Set(ctx, "vcon:u1", `{"uuid":"u1"}`, 0).Err(); err != nil {
				t.Fatal(err)
			}
			l := mustNew(t, "links.expire_vcon", tc.opts, Deps{Redis: rdb})
			res := run(t, l, parseVCon(t, `{"uuid":"u1"}`))
			if want := (Result{TTL: tc.want}); !reflect.DeepEqual(res, want) {
				t.Fatalf("result %+v, want %+v", res, want)
			}
			if ttl := rdb.TTL(ctx, "vcon:u1").Val(); ttl != -1 {
				t.Fatalf("Run set a TTL of %v on the body itself", ttl)
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
		{name: "string", opts: map[string]any{"seconds": "1h"}, want: `option "seconds": want a whole number, got "1h"`},
	})
	checkBadOptions(t, "links.expire_vcon", Deps{}, []badOptionCase{})
}
