package vconstore

// The RedisJSON path is tested with RECORDED COMMANDS against fakeRedis, an
// in-process RESP server, because Debian's redis-server (what the tests can
// start) has no JSON module, and no server that has one can be had here
// (docs/migrating-from-conserver.md lists what was tried). The tests pin
// the exact command sequence a RedisJSON server receives; store_test.go
// runs the plain-string path against a real redis-server.

import (
	"context"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func fakeClient(t *testing.T, f *fakeRedis) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: f.addr, MaxRetries: -1})
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// pexpireMillis checks that cmd is "PEXPIRE key ms" with ms in (min, max].
func pexpireMillis(t *testing.T, cmd, key string, min, max int64) {
	t.Helper()
	ms, err := strconv.ParseInt(strings.TrimPrefix(cmd, "PEXPIRE "+key+" "), 10, 64)
	if !strings.HasPrefix(cmd, "PEXPIRE "+key+" ") || err != nil || ms <= min || ms > max {
		t.Fatalf("command %q: want PEXPIRE %s with milliseconds in (%d, %d]", cmd, key, min, max)
	}
}

func TestRecordedJSONRead(t *testing.T) {
	tests := []struct {
		name     string
		seed     func(f *fakeRedis)
		wantBody Body
		wantErr  error
	}{
		{
			name:     "JSON body with TTL",
			seed:     func(f *fakeRedis) { f.set("vcon:a", "ReJSON-RL", `{"uuid":"a"}`, time.Minute) },
			wantBody: Body{Data: []byte(`{"uuid":"a"}`), Format: FormatJSON, PTTL: time.Minute},
		},
		{
			name:     "string body beside the module",
			seed:     func(f *fakeRedis) { f.set("vcon:a", "string", `{"uuid":"a"}`, 0) },
			wantBody: Body{Data: []byte(`{"uuid":"a"}`), Format: FormatString, PTTL: -1},
		},
		{
			name:    "missing",
			seed:    func(*fakeRedis) {},
			wantErr: ErrNotFound,
		},
		{
			name:    "a list",
			seed:    func(f *fakeRedis) { f.set("vcon:a", "list", "", 0) },
			wantErr: ErrWrongType,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := startFakeRedis(t, true)
			tt.seed(f)
			s := New(fakeClient(t, f), Options{})
			got, err := s.Get(context.Background(), "a")
			if want := []string{"PTTL vcon:a", "JSON.GET vcon:a", "GET vcon:a"}; !reflect.DeepEqual(f.commands(), want) {
				t.Fatalf("commands = %q, want %q", f.commands(), want)
			}
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("Get error = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if string(got.Data) != string(tt.wantBody.Data) || got.Format != tt.wantBody.Format {
				t.Fatalf("Get = %s %v, want %s %v", got.Data, got.Format, tt.wantBody.Data, tt.wantBody.Format)
			}
			if tt.wantBody.PTTL < 0 && got.PTTL >= 0 || tt.wantBody.PTTL > 0 && (got.PTTL > tt.wantBody.PTTL || got.PTTL < tt.wantBody.PTTL-5*time.Second) {
				t.Fatalf("PTTL = %v, want about %v", got.PTTL, tt.wantBody.PTTL)
			}
		})
	}
}

func TestRecordedJSONRewrite(t *testing.T) {
	tests := []struct {
		name    string
		ttl     time.Duration
		want    []string // the rewrite's commands; "PEXPIRE" is checked for its range
		wantTTL bool
	}{
		{"keeps the TTL", time.Minute, []string{"MULTI", `JSON.SET vcon:a $ {"v":2}`, "PEXPIRE", "EXEC"}, true},
		{"no TTL stays none", 0, []string{`JSON.SET vcon:a $ {"v":2}`}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := startFakeRedis(t, true)
			f.set("vcon:a", "ReJSON-RL", `{"v":1}`, tt.ttl)
			s := New(fakeClient(t, f), Options{})
			prev, err := s.Get(ctx, "a")
			if err != nil {
				t.Fatal(err)
			}
			f.resetLog()
			if err := s.Put(ctx, "a", []byte(`{"v":2}`), prev); err != nil {
				t.Fatalf("Put: %v", err)
			}
			got := f.commands()
			if len(got) != len(tt.want) {
				t.Fatalf("commands = %q, want %q", got, tt.want)
			}
			for i, w := range tt.want {
				if w == "PEXPIRE" {
					pexpireMillis(t, got[i], "vcon:a", tt.ttl.Milliseconds()-5000, tt.ttl.Milliseconds())
				} else if got[i] != w {
					t.Fatalf("commands = %q, want %q", got, tt.want)
				}
			}
			e := f.entry("vcon:a")
			if e == nil || e.typ != "ReJSON-RL" || e.val != `{"v":2}` || e.expireAt.IsZero() != !tt.wantTTL {
				t.Fatalf("stored %+v, want the new JSON document with TTL=%v", e, tt.wantTTL)
			}
		})
	}
}

func TestRecordedCreateDetectsFormat(t *testing.T) {
	tests := []struct {
		name    string
		hasJSON bool
		opts    Options
		first   []string
		second  []string
	}{
		{
			name:    "auto chooses RedisJSON, asks once",
			hasJSON: true,
			first:   []string{"COMMAND INFO JSON.SET", "MULTI", `JSON.SET vcon:a $ {"v":1}`, "PEXPIRE vcon:a 3600000", "EXEC"},
			second:  []string{"MULTI", `JSON.SET vcon:b $ {"v":1}`, "PEXPIRE vcon:b 3600000", "EXEC"},
		},
		{
			name:    "auto chooses strings without the module",
			hasJSON: false,
			first:   []string{"COMMAND INFO JSON.SET", `SET vcon:a {"v":1} PX 3600000`},
			second:  []string{`SET vcon:b {"v":1} PX 3600000`},
		},
		{
			name:    "forced string format does not ask",
			hasJSON: true,
			opts:    Options{NewKeyFormat: NewKeyString},
			first:   []string{`SET vcon:a {"v":1} PX 3600000`},
			second:  []string{`SET vcon:b {"v":1} PX 3600000`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := startFakeRedis(t, tt.hasJSON)
			s := New(fakeClient(t, f), tt.opts)
			if err := s.Create(ctx, "a", []byte(`{"v":1}`), time.Hour); err != nil {
				t.Fatalf("Create: %v", err)
			}
			if got := f.commands(); !reflect.DeepEqual(got, tt.first) {
				t.Fatalf("first create: commands = %q, want %q", got, tt.first)
			}
			f.resetLog()
			if err := s.Create(ctx, "b", []byte(`{"v":1}`), time.Hour); err != nil {
				t.Fatalf("Create: %v", err)
			}
			if got := f.commands(); !reflect.DeepEqual(got, tt.second) {
				t.Fatalf("second create: commands = %q, want %q", got, tt.second)
			}
		})
	}
}

// The worker finishes a vCon in one round trip: body rewrite and egress push
// in the same pipeline.
func TestRecordedQueuePutInCallerPipeline(t *testing.T) {
	ctx := context.Background()
	f := startFakeRedis(t, true)
	f.set("vcon:a", "ReJSON-RL", `{"v":1}`, time.Minute)
	f.set("vcon:b", "string", `{"v":1}`, time.Minute)
	client := fakeClient(t, f)
	s := New(client, Options{})

	pipe := client.Pipeline()
	pa := s.QueueGet(ctx, pipe, "a")
	pb := s.QueueGet(ctx, pipe, "b")
	pm := s.QueueGet(ctx, pipe, "missing")
	if _, err := ExecIgnoringBodyErrors(ctx, pipe, pa, pb, pm); err != nil {
		t.Fatalf("ExecIgnoringBodyErrors: %v", err)
	}
	a, errA := pa.Result()
	b, errB := pb.Result()
	m, errM := pm.Result()
	if errA != nil || errB != nil || !errors.Is(errM, ErrNotFound) {
		t.Fatalf("results: %v, %v, %v", errA, errB, errM)
	}
	f.resetLog()

	pipe = client.Pipeline()
	for _, w := range []struct {
		uuid string
		prev Body
	}{{"a", a}, {"b", b}, {"missing", m}} {
		if err := s.QueuePut(ctx, pipe, w.uuid, []byte(`{"v":2}`), w.prev); err != nil {
			t.Fatal(err)
		}
	}
	pipe.RPush(ctx, "egress", "a")
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("Exec: %v", err)
	}
	got := f.commands()
	// The format detection for the new key runs while queuing, before Exec;
	// the pipeline itself has no MULTI.
	want := []string{"COMMAND INFO JSON.SET", `JSON.SET vcon:a $ {"v":2}`, "PEXPIRE",
		`SET vcon:b {"v":2} KEEPTTL`, `JSON.SET vcon:missing $ {"v":2}`, "RPUSH egress a"}
	if len(got) != len(want) {
		t.Fatalf("commands = %q, want %q", got, want)
	}
	for i := range want {
		if want[i] == "PEXPIRE" {
			pexpireMillis(t, got[i], "vcon:a", 55000, 60000)
		} else if got[i] != want[i] {
			t.Fatalf("commands = %q, want %q", got, want)
		}
	}
	if e := f.entry("vcon:b"); e == nil || e.expireAt.IsZero() {
		t.Fatalf("string rewrite lost its TTL: %+v", e)
	}
}

func TestRecordedMGet(t *testing.T) {
	f := startFakeRedis(t, true)
	f.set("vcon:a", "ReJSON-RL", `{"a":1}`, 0)
	f.set("vcon:c", "string", `{"c":1}`, 0)
	s := New(fakeClient(t, f), Options{})
	got, err := s.MGet(context.Background(), []string{"a", "b", "c"})
	if err != nil {
		t.Fatal(err)
	}
	if want := [][]byte{[]byte(`{"a":1}`), nil, []byte(`{"c":1}`)}; !reflect.DeepEqual(got, want) {
		t.Fatalf("MGet = %q, want %q", got, want)
	}
	want := []string{"JSON.GET vcon:a", "GET vcon:a", "JSON.GET vcon:b", "GET vcon:b", "JSON.GET vcon:c", "GET vcon:c"}
	if !reflect.DeepEqual(f.commands(), want) {
		t.Fatalf("commands = %q, want %q", f.commands(), want)
	}
}
