package storage

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

func TestRedisStorage(t *testing.T) {
	client := testenv.StartRedis(t).Client()
	ctx := context.Background()
	const uuid = "0190d6f0-1c2d-7a00-8000-0000000000e1"

	tests := []struct {
		name      string
		opts      map[string]any
		pipelined bool
		wantKey   string
		wantTTL   time.Duration
	}{
		{"defaults", nil, false, "vcon_storage:" + uuid, 604800 * time.Second},
		{"prefix and expires", map[string]any{"prefix": "archive", "expires": "60"}, false, "archive:" + uuid, 60 * time.Second},
		{"queued into the worker's pipeline", map[string]any{"prefix": "piped", "expires": 120}, true, "piped:" + uuid, 120 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := New(ctx, "redis", "storage.redis_storage", tc.opts, Deps{Redis: client})
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			s := st.(*redisStorage)
			v := testVCon(t, uuid, "2024-03-05T10:00:00Z", "hello")
			body, err := v.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			if tc.pipelined {
				// The worker finishes a vCon in one MULTI; the SET must ride in it.
				pipe := client.TxPipeline()
				pipe.RPush(ctx, "egress", uuid)
				st.(Pipelined).AppendSave(pipe, v, body)
				if _, err := pipe.Exec(ctx); err != nil {
					t.Fatalf("Exec: %v", err)
				}
			} else if err := s.Save(ctx, v); err != nil {
				t.Fatalf("Save: %v", err)
			}
			stored, err := client.Get(ctx, tc.wantKey).Bytes()
			if err != nil {
				t.Fatalf("GET %s: %v", tc.wantKey, err)
			}
			if !bytes.Equal(stored, body) {
				t.Errorf("stored %s, want %s", stored, body)
			}
			ttl, err := client.TTL(ctx, tc.wantKey).Result()
			if err != nil {
				t.Fatal(err)
			}
			if ttl <= tc.wantTTL-5*time.Second || ttl > tc.wantTTL {
				t.Errorf("TTL = %v, want about %v", ttl, tc.wantTTL)
			}
			got, err := s.Get(ctx, uuid)
			if err != nil || !bytes.Equal(got, body) {
				t.Errorf("Get = %s, %v; want %s", got, err, body)
			}
			if err := s.Delete(ctx, uuid); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if _, err := s.Get(ctx, uuid); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get after Delete: err = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestRedisStorageRefusals(t *testing.T) {
	client := testenv.StartRedis(t).Client()
	tests := []struct {
		name    string
		opts    map[string]any
		deps    Deps
		wantErr string
	}{
		{"prefix not a string", map[string]any{"prefix": 3}, Deps{Redis: client}, `"prefix"`},
		{"expires not a number", map[string]any{"expires": "soon"}, Deps{Redis: client}, `"expires"`},
		{"expires zero", map[string]any{"expires": 0}, Deps{Redis: client}, `"expires"`},
		{"no Redis", nil, Deps{}, "no Redis client"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(context.Background(), "redis", "storage.redis_storage", tc.opts, tc.deps)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err = %v, want one containing %s", err, tc.wantErr)
			}
		})
	}
}
