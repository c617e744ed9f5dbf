package vconstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

func startStore(t *testing.T, opts Options) (*Store, *redis.Client, *testenv.RoundTrips) {
	t.Helper()
	srv := testenv.StartRedis(t)
	client := srv.Client()
	rt := &testenv.RoundTrips{}
	client.AddHook(rt)
	return New(client, opts), client, rt
}

func TestStringBodies(t *testing.T) {
	ctx := context.Background()
	s, client, rt := startStore(t, Options{})
	admin := client // same server; commands below are set-up and checks

	t.Run("create chooses strings on a server without the JSON module", func(t *testing.T) {
		var err error
		if n := rt.Count(func() { err = s.Create(ctx, "c1", []byte(`{"uuid":"c1"}`), 0) }); n != 2 {
			t.Fatalf("first Create made %d round trips, want 2 (detection, write)", n)
		}
		if err != nil {
			t.Fatal(err)
		}
		if typ := admin.Type(ctx, "vcon:c1").Val(); typ != "string" {
			t.Fatalf("TYPE = %q, want string", typ)
		}
		if n := rt.Count(func() { err = s.Create(ctx, "c2", []byte(`{}`), time.Hour) }); n != 1 || err != nil {
			t.Fatalf("second Create: %d round trips, err %v; want 1, nil", n, err)
		}
		if ttl := admin.PTTL(ctx, "vcon:c2").Val(); ttl <= 59*time.Minute || ttl > time.Hour {
			t.Fatalf("PTTL after Create with 1h = %v", ttl)
		}
	})

	t.Run("read", func(t *testing.T) {
		var b Body
		var err error
		if n := rt.Count(func() { b, err = s.Get(ctx, "c1") }); n != 1 {
			t.Fatalf("Get made %d round trips, want 1", n)
		}
		if err != nil || string(b.Data) != `{"uuid":"c1"}` || b.Format != FormatString || b.PTTL >= 0 {
			t.Fatalf("Get = %+v, %v", b, err)
		}
		b, err = s.Get(ctx, "c2")
		if err != nil || b.PTTL <= 59*time.Minute || b.PTTL > time.Hour {
			t.Fatalf("Get of a key with TTL = %+v, %v", b, err)
		}
	})

	tests := []struct {
		name string
		ttl  time.Duration
	}{
		{"rewrite keeps the TTL", 100 * time.Second},
		{"rewrite of a key without TTL keeps none", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := admin.Set(ctx, "vcon:r", `{"v":1}`, tt.ttl).Err(); err != nil {
				t.Fatal(err)
			}
			prev, err := s.Get(ctx, "r")
			if err != nil {
				t.Fatal(err)
			}
			if n := rt.Count(func() { err = s.Put(ctx, "r", []byte(`{"v":2}`), prev) }); n != 1 || err != nil {
				t.Fatalf("Put: %d round trips, err %v; want 1, nil", n, err)
			}
			if got := admin.Get(ctx, "vcon:r").Val(); got != `{"v":2}` {
				t.Fatalf("body after Put = %s", got)
			}
			ttl := admin.PTTL(ctx, "vcon:r").Val()
			if tt.ttl == 0 && ttl != -1 {
				t.Fatalf("PTTL after Put = %v, want none", ttl)
			}
			if tt.ttl > 0 && (ttl <= tt.ttl-5*time.Second || ttl > tt.ttl) {
				t.Fatalf("PTTL after Put = %v, want close to %v", ttl, tt.ttl)
			}
		})
	}

	t.Run("missing is ErrNotFound and Put of it creates", func(t *testing.T) {
		b, err := s.Get(ctx, "nope")
		if !errors.Is(err, ErrNotFound) || b.Format != FormatNone {
			t.Fatalf("Get(missing) = %+v, %v; want ErrNotFound", b, err)
		}
		if err := s.Put(ctx, "nope", []byte(`{"n":1}`), b); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Get(ctx, "nope"); err != nil || string(got.Data) != `{"n":1}` || got.PTTL >= 0 {
			t.Fatalf("after Put: %+v, %v", got, err)
		}
	})

	t.Run("a key of another type is a clear error", func(t *testing.T) {
		admin.RPush(ctx, "vcon:list", "x")
		_, err := s.Get(ctx, "list")
		if !errors.Is(err, ErrWrongType) || !strings.Contains(err.Error(), "vcon:list") {
			t.Fatalf("Get(list) error = %v, want ErrWrongType naming the key", err)
		}
		if _, err := s.MGet(ctx, []string{"c1", "list"}); !errors.Is(err, ErrWrongType) {
			t.Fatalf("MGet with a list error = %v, want ErrWrongType", err)
		}
	})

	t.Run("MGet with misses in one round trip", func(t *testing.T) {
		var got [][]byte
		var err error
		if n := rt.Count(func() { got, err = s.MGet(ctx, []string{"c1", "absent", "nope"}) }); n != 1 || err != nil {
			t.Fatalf("MGet: %d round trips, err %v", n, err)
		}
		want := [][]byte{[]byte(`{"uuid":"c1"}`), nil, []byte(`{"n":1}`)}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("MGet = %q, want %q", got, want)
		}
		if got, err := s.MGet(ctx, nil); err != nil || len(got) != 0 {
			t.Fatalf("MGet(nil) = %q, %v", got, err)
		}
	})

	t.Run("expire and delete", func(t *testing.T) {
		if err := s.Expire(ctx, "c1", time.Minute); err != nil {
			t.Fatal(err)
		}
		if ttl := admin.PTTL(ctx, "vcon:c1").Val(); ttl <= 55*time.Second || ttl > time.Minute {
			t.Fatalf("PTTL after Expire = %v", ttl)
		}
		if err := s.Expire(ctx, "absent", time.Minute); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Expire(missing) = %v, want ErrNotFound", err)
		}
		if err := s.Delete(ctx, "c1"); err != nil {
			t.Fatal(err)
		}
		if err := s.Delete(ctx, "c1"); err != nil {
			t.Fatalf("Delete of a missing key: %v", err)
		}
		if _, err := s.Get(ctx, "c1"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("Get after Delete = %v", err)
		}
	})
}

// A caller shares one round trip between body reads and its own commands;
// ExecIgnoringBodyErrors hides the probes' by-design failures and nothing
// else.
func TestCallerPipeline(t *testing.T) {
	ctx := context.Background()
	s, client, rt := startStore(t, Options{})
	client.Set(ctx, "vcon:a", `{"a":1}`, time.Minute)
	client.Set(ctx, "plain", "x", 0)

	pipe := client.Pipeline()
	pa := s.QueueGet(ctx, pipe, "a")
	pm := s.QueueGet(ctx, pipe, "missing")
	llen := pipe.LLen(ctx, "queue")
	var err error
	if n := rt.Count(func() { _, err = ExecIgnoringBodyErrors(ctx, pipe, pa, pm) }); n != 1 || err != nil {
		t.Fatalf("ExecIgnoringBodyErrors: %d round trips, err %v", n, err)
	}
	if a, err := pa.Result(); err != nil || string(a.Data) != `{"a":1}` || a.PTTL <= 0 {
		t.Fatalf("pa = %+v, %v", a, err)
	}
	if _, err := pm.Result(); !errors.Is(err, ErrNotFound) {
		t.Fatalf("pm = %v", err)
	}
	if llen.Val() != 0 || llen.Err() != nil {
		t.Fatalf("caller's LLEN = %d, %v", llen.Val(), llen.Err())
	}

	// The plain Exec reports the probes' failures, which is why the helper
	// exists; a caller's own failing command still surfaces through it.
	pipe = client.Pipeline()
	pa = s.QueueGet(ctx, pipe, "a")
	if _, err := pipe.Exec(ctx); err == nil {
		t.Fatal("plain Exec of a body read reported no error; ExecIgnoringBodyErrors would be pointless")
	}
	pipe = client.Pipeline()
	pa = s.QueueGet(ctx, pipe, "a")
	pipe.LPush(ctx, "plain", "y")
	if _, err := ExecIgnoringBodyErrors(ctx, pipe, pa); err == nil || !strings.HasPrefix(err.Error(), "WRONGTYPE") {
		t.Fatalf("caller's WRONGTYPE was hidden: %v", err)
	}

	// QueuePut beside a caller's command, one round trip, TTL kept.
	prev, _ := pa.Result()
	pipe = client.Pipeline()
	if err := s.QueuePut(ctx, pipe, "a", []byte(`{"a":2}`), prev); err != nil {
		t.Fatal(err)
	}
	pipe.RPush(ctx, "egress", "a")
	if n := rt.Count(func() { _, err = pipe.Exec(ctx) }); n != 1 || err != nil {
		t.Fatalf("Exec: %d round trips, err %v", n, err)
	}
	if got := client.Get(ctx, "vcon:a").Val(); got != `{"a":2}` {
		t.Fatalf("body = %s", got)
	}
	if ttl := client.PTTL(ctx, "vcon:a").Val(); ttl <= 50*time.Second {
		t.Fatalf("PTTL after QueuePut = %v", ttl)
	}
}

func TestForcedJSONOnServerWithoutModuleFailsClearly(t *testing.T) {
	s, _, _ := startStore(t, Options{NewKeyFormat: NewKeyJSON})
	err := s.Create(context.Background(), "a", []byte(`{}`), 0)
	if err == nil || !strings.Contains(err.Error(), "vcon:a") || !strings.Contains(strings.ToLower(err.Error()), "unknown command") {
		t.Fatalf("Create = %v, want an unknown-command error naming the key", err)
	}
}

func TestDetectionFailureIsNotCached(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close() // nothing listens: the first detection fails
	client := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { _ = client.Close() })
	s := New(client, Options{})
	if _, err := s.NewKeyFormat(context.Background()); err == nil || !strings.Contains(err.Error(), EnvBodyFormat) {
		t.Fatalf("NewKeyFormat = %v, want an error pointing at %s", err, EnvBodyFormat)
	}
	if s.detected != FormatNone {
		t.Fatalf("a failed detection was cached as %v", s.detected)
	}
}

func TestParseNewKeyFormat(t *testing.T) {
	tests := []struct {
		in      string
		want    NewKeyFormat
		wantErr bool
	}{
		{"", NewKeyAuto, false},
		{"auto", NewKeyAuto, false},
		{" JSON ", NewKeyJSON, false},
		{"string", NewKeyString, false},
		{"rejson", "", true},
	}
	for _, tt := range tests {
		got, err := ParseNewKeyFormat(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseNewKeyFormat(%q) = %q, %v", tt.in, got, err)
		}
	}
	t.Setenv(EnvBodyFormat, "string")
	if o, err := OptionsFromEnv(); err != nil || o.NewKeyFormat != NewKeyString {
		t.Fatalf("OptionsFromEnv = %+v, %v", o, err)
	}
}

// TestMaxBodyBytes: with a bound, a string body up to the bound reads whole,
// one byte over is refused with ErrTooLarge after reading at most one byte
// past the bound, and a missing key is still ErrNotFound (GETRANGE reads
// it as "").
func TestMaxBodyBytes(t *testing.T) {
	ctx := context.Background()
	const limit = 100
	s, rdb, _ := startStore(t, Options{NewKeyFormat: NewKeyString, MaxBodyBytes: limit})
	rdb.Set(ctx, Key("at"), strings.Repeat("a", limit), 0)
	rdb.Set(ctx, Key("over"), strings.Repeat("o", 10*limit), time.Hour)
	rdb.Set(ctx, Key("empty"), "", 0)
	tests := []struct {
		uuid string
		size int
		err  error
	}{
		{"at", limit, nil},
		{"over", 0, ErrTooLarge},
		{"missing", 0, ErrNotFound},
		{"empty", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.uuid, func(t *testing.T) {
			pipe := rdb.Pipeline()
			p := s.QueueGet(ctx, pipe, tt.uuid)
			if _, err := ExecIgnoringBodyErrors(ctx, pipe, p); err != nil {
				t.Fatal(err)
			}
			if n := len(textOf(p.get)); n > limit+1 {
				t.Fatalf("read %d bytes of the body with a bound of %d", n, limit)
			}
			b, err := p.Result()
			if !errors.Is(err, tt.err) || (tt.err == nil && len(b.Data) != tt.size) {
				t.Fatalf("got %d bytes, %v; want %d bytes, %v", len(b.Data), err, tt.size, tt.err)
			}
			if tt.err == nil && b.Format != FormatString {
				t.Fatalf("format %v, want string", b.Format)
			}
		})
	}
}

// TestKeyReuse: the commands that reuse the key a read named
// (PendingBody.QueueExtend, QueueExtendRead, QueuePut of a body read)
// send exactly what the ones that build it send, and a body read for
// another uuid lends none of its key.
func TestKeyReuse(t *testing.T) {
	ctx := context.Background()
	s, client, _ := startStore(t, Options{NewKeyFormat: NewKeyString})
	args := func(pipe redis.Pipeliner) string {
		var b strings.Builder
		for _, c := range pipe.Cmds() {
			b.WriteString(argText(c.Args()) + ";")
		}
		return b.String()
	}
	read := func(uuid string, format Format) Body {
		pipe := client.Pipeline()
		p := s.QueueGet(ctx, pipe, uuid)
		// A TTL all but gone: the rewrite's PEXPIRE is 1 ms whenever
		// it is built, so the two pipelines can be compared.
		return Body{Format: format, PTTL: time.Nanosecond, ReadAt: time.Now(), key: p.boxed}
	}
	for _, tc := range []struct {
		name       string
		uuid, read string
		format     Format
	}{
		{"string body read for the uuid", "a", "a", FormatString},
		{"JSON body read for the uuid", "a", "a", FormatJSON},
		{"body read for another uuid", "a", "b", FormatString},
		{"a uuid ending like another", "xa", "a", FormatJSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prev := read(tc.read, tc.format)
			plain := prev
			plain.key = nil
			reused, built := client.Pipeline(), client.Pipeline()
			s.QueueExtendRead(ctx, reused, tc.uuid, prev, time.Hour)
			s.QueueExtend(ctx, built, tc.uuid, time.Hour)
			if err := s.QueuePut(ctx, reused, tc.uuid, []byte("{}"), prev); err != nil {
				t.Fatal(err)
			}
			if err := s.QueuePut(ctx, built, tc.uuid, []byte("{}"), plain); err != nil {
				t.Fatal(err)
			}
			if a, b := args(reused), args(built); a != b {
				t.Fatalf("with the read's key: %s\nbuilt: %s", a, b)
			}
		})
	}
	pipe := client.Pipeline()
	p := s.QueueGet(ctx, pipe, "a")
	p.QueueExtend(ctx, pipe, time.Hour)
	built := client.Pipeline()
	s.QueueExtend(ctx, built, "a", time.Hour)
	if a, b := argText(pipe.Cmds()[3].Args()), argText(built.Cmds()[0].Args()); a != b {
		t.Fatalf("PendingBody.QueueExtend sends %s, QueueExtend %s", a, b)
	}
}

// argText is a command's arguments as sent, []byte as text.
func argText(args []any) string {
	parts := make([]string, len(args))
	for i, a := range args {
		if b, ok := a.([]byte); ok {
			a = string(b)
		}
		parts[i] = fmt.Sprint(a)
	}
	return strings.Join(parts, " ")
}
