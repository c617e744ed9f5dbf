package queue

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

// TestExecChecked runs outcome-shaped command sets on a single server and
// on a three-node cluster: a set whose keys have the right types applies
// whole and every command gets its reply; a set with a key of the wrong
// type is refused naming that key, and nothing of it is written.
func TestExecChecked(t *testing.T) {
	servers := map[string]redis.UniversalClient{
		"single":  testenv.StartRedis(t).Client(),
		"cluster": testenv.StartRedisCluster(t, 3).Client(),
	}
	for name, rdb := range servers {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			// Keys share a hash tag so that the single-server script and
			// the cluster's second round trip see the same slot layout.
			in, flight, out, body := "{q}in", "{q}flight", "{q}out", "{q}body"
			rdb.RPush(ctx, in, "next")
			rdb.RPush(ctx, flight, "u1")

			pipe := rdb.Pipeline()
			set := pipe.Set(ctx, body, "doc", 0)
			push := pipe.RPush(ctx, out, "u1")
			rem := pipe.LRem(ctx, flight, 1, "u1")
			take := pipe.LMove(ctx, in, flight, "LEFT", "RIGHT")
			empty := pipe.LMove(ctx, "{q}none", flight, "LEFT", "RIGHT")
			exp := pipe.Expire(ctx, body, 60e9)
			if err := ExecChecked(ctx, rdb, pipe); err != nil {
				t.Fatal(err)
			}
			if set.Val() != "OK" || push.Val() != 1 || rem.Val() != 1 || take.Val() != "next" || !exp.Val() {
				t.Fatalf("replies: set %q push %d rem %d take %q expire %v", set.Val(), push.Val(), rem.Val(), take.Val(), exp.Val())
			}
			if !errors.Is(empty.Err(), redis.Nil) {
				t.Fatalf("LMOVE from an empty list: %v, want redis.Nil", empty.Err())
			}

			wrong := []struct {
				key, have string
				make      func()
			}{
				{"{q}zset", "zset", func() { rdb.ZAdd(ctx, "{q}zset", redis.Z{Score: 1, Member: "x"}) }},
				{"{q}string", "string", func() { rdb.Set(ctx, "{q}string", "x", 0) }},
				{"{q}hash", "hash", func() { rdb.HSet(ctx, "{q}hash", "f", "v") }},
			}
			for _, w := range wrong {
				w.make()
				pipe := rdb.Pipeline()
				pipe.RPush(ctx, out, "u2")
				pipe.RPush(ctx, w.key, "u2")
				pipe.LRem(ctx, flight, 1, "next")
				err := ExecChecked(ctx, rdb, pipe)
				var refused *OutcomeError
				if !errors.As(err, &refused) || refused.Key != w.key || refused.Have != w.have || refused.Want != "list" || refused.Command != "RPUSH" {
					t.Fatalf("push onto a %s: %v, want a refusal naming %s", w.have, err, w.key)
				}
				for _, c := range pipe.Cmds() {
					if c.Err() == nil {
						t.Fatalf("%s reports success in a refused set", c.Name())
					}
				}
			}
			if got := rdb.LRange(ctx, out, 0, -1).Val(); !slices.Equal(got, []string{"u1"}) {
				t.Fatalf("egress %v after refused sets, want only the first push", got)
			}
			if got := rdb.LRange(ctx, flight, 0, -1).Val(); !slices.Equal(got, []string{"next"}) {
				t.Fatalf("in flight %v after refused sets, want the item kept", got)
			}
		})
	}
}

// A round trip that fails without a reply leaves every queued command with
// that error: a take queued with the outcome must not look like it moved a
// uuid (its zero value reads as the empty uuid).
func TestExecCheckedFailedRoundTripFailsEveryCommand(t *testing.T) {
	servers := map[string]func(*testing.T) redis.UniversalClient{
		"single":  func(t *testing.T) redis.UniversalClient { return testenv.StartRedis(t).Client() },
		"cluster": func(t *testing.T) redis.UniversalClient { return testenv.StartRedisCluster(t, 3).Client() },
	}
	for name, start := range servers {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			rdb := start(t)
			w := NewWorker(rdb, "w1", time.Minute)
			if err := rdb.RPush(ctx, "{q}in", "next").Err(); err != nil {
				t.Fatal(err)
			}
			pipe := rdb.Pipeline()
			push := pipe.RPush(ctx, "{q}out", "u1")
			take := w.QueueTake(pipe, "{q}in")
			if err := rdb.Close(); err != nil { // the next round trip fails before any reply
				t.Fatal(err)
			}
			err := ExecChecked(ctx, rdb, pipe)
			if err == nil {
				t.Fatal("ExecChecked on a closed client succeeded")
			}
			if push.Err() == nil {
				t.Errorf("RPUSH has no error after a failed round trip")
			}
			if it, ok := take.Item(); ok {
				t.Errorf("the take reports uuid %q after a failed round trip; want none", it.UUID)
			}
		})
	}
}

// TestExecCheckedPipesInOrder: pipes apply in order, and one whose command
// fails stops the pipes after it, on a cluster too, where one pipeline's
// commands would all be sent at once (a push would land beside a failed
// body write, or before a body write on another node).
func TestExecCheckedPipesInOrder(t *testing.T) {
	servers := map[string]func(*testing.T) redis.UniversalClient{
		"single":  func(t *testing.T) redis.UniversalClient { return testenv.StartRedis(t).Client() },
		"cluster": func(t *testing.T) redis.UniversalClient { return testenv.StartRedisCluster(t, 3).Client() },
	}
	for name, start := range servers {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			rdb := start(t)
			// Different slots, as a body and an egress list are.
			body, out := "vcon:ordered", "ordered-out"

			writes, pushes := rdb.Pipeline(), rdb.Pipeline()
			set := writes.Set(ctx, body, "doc", 0)
			push := pushes.RPush(ctx, out, "u1")
			if err := ExecChecked(ctx, rdb, writes, pushes); err != nil {
				t.Fatal(err)
			}
			if set.Val() != "OK" || push.Val() != 1 {
				t.Fatalf("replies: set %q, push %d", set.Val(), push.Val())
			}

			rdb.Set(ctx, "ordered-count", "not a number", 0)
			writes, pushes = rdb.Pipeline(), rdb.Pipeline()
			writes.Incr(ctx, "ordered-count") // fails when run, past the type check
			push = pushes.RPush(ctx, out, "u2")
			err := ExecChecked(ctx, rdb, writes, pushes)
			var refused *OutcomeError
			if !errors.As(err, &refused) || refused.Command != "INCR" || refused.Key != "ordered-count" {
				t.Fatalf("ExecChecked = %v, want a refusal naming INCR ordered-count", err)
			}
			if push.Err() == nil {
				t.Error("the push after the failed pipe reports success")
			}
			if got := rdb.LRange(ctx, out, 0, -1).Val(); !slices.Equal(got, []string{"u1"}) {
				t.Fatalf("%s = %q after a failed first pipe, want only the first push", out, got)
			}
		})
	}
}

// TestKeyCount: the key count of a command does not depend on how its
// name is spelled, agrees with commandKey's lower-casing for every name,
// and costs no allocation for upper-case names.
func TestKeyCount(t *testing.T) {
	for _, tc := range []struct {
		name any
		want int
	}{
		{"lmove", 2}, {"LMOVE", 2}, {"LMove", 2},
		{"set", 1}, {"SET", 1}, {"JSON.SET", 1}, {"PEXPIRE", 1},
		{"LMOVE" + strings.Repeat("X", 40), 1}, {"lmovÉ", 1}, {"ＬMOVE", 1},
	} {
		args := []any{tc.name, "src", "dst", "LEFT", "RIGHT"}
		if got := keyCount(args); got != tc.want {
			t.Errorf("keyCount(%q ...) = %d, want %d", tc.name, got, tc.want)
		}
		if got, want := isTwoKey(tc.name), twoKeyCommands[commandKey(tc.name)]; got != want {
			t.Errorf("isTwoKey(%q) = %v, commandKey's lookup %v", tc.name, got, want)
		}
	}
	args := []any{"PEXPIRE", "vcon:u", int64(1000), "GT"}
	if n := testing.AllocsPerRun(100, func() { keyCount(args) }); n != 0 {
		t.Errorf("keyCount of an upper-case command allocates %v times", n)
	}
}

// argvHook records the arguments of every command the client sends.
type argvHook struct{ sent [][]any }

func (h *argvHook) DialHook(next redis.DialHook) redis.DialHook { return next }
func (h *argvHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		h.sent = append(h.sent, slices.Clone(cmd.Args()))
		return next(ctx, cmd)
	}
}
func (h *argvHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestExecCheckedSendsRepeatedArgumentsOnce: an outcome with a Redis
// storage carries the document twice (body and copy), and every script
// argument costs redis-server a Lua string of its size. A large argument
// equal to an earlier one, the same slice or equal bytes of another, is
// sent once and still written everywhere; small ones and different ones
// are sent as they are.
func TestExecCheckedSendsRepeatedArgumentsOnce(t *testing.T) {
	srv := testenv.StartRedis(t)
	rdb := srv.Client()
	hook := &argvHook{}
	rdb.AddHook(hook)
	ctx := context.Background()
	doc := []byte(strings.Repeat("d", sameArgMin))
	other := []byte(strings.Repeat("o", sameArgMin))
	short := strings.Repeat("s", sameArgMin-1)
	cases := []struct {
		name string
		vals map[string]any // key -> value SET, in key order
		sent int            // large arguments sent
	}{
		{"same slice twice", map[string]any{"a": doc, "b": doc}, 1},
		{"equal bytes, string and slice", map[string]any{"a": doc, "b": string(doc), "c": slices.Clone(doc)}, 1},
		{"different values", map[string]any{"a": doc, "b": other}, 2},
		{"two pairs", map[string]any{"a": doc, "b": other, "c": doc, "d": other}, 2},
		{"below the size", map[string]any{"a": short, "b": short}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rdb.FlushAll(ctx)
			// Twice: the first run may be the EVAL fallback (NOSCRIPT).
			for range 2 {
				hook.sent = nil
				pipe := rdb.Pipeline()
				for _, k := range slices.Sorted(maps.Keys(c.vals)) {
					pipe.Set(ctx, k, c.vals[k], 0)
				}
				pipe.RPush(ctx, "out", "u")
				if err := ExecChecked(ctx, rdb, pipe); err != nil {
					t.Fatal(err)
				}
				for k, v := range c.vals {
					if got := rdb.Get(ctx, k).Val(); got != string(argBytes(v)) {
						t.Fatalf("%s holds %d bytes %.8q..., want %d bytes %.8q...", k, len(got), got, len(argBytes(v)), argBytes(v))
					}
				}
				if len(hook.sent) < 1 {
					t.Fatal("no command sent")
				}
				large := 0
				for _, a := range hook.sent[0] {
					if b := argBytes(a); len(b) >= sameArgMin && !strings.HasPrefix(string(b), "local ") {
						large++
					}
				}
				if large != c.sent {
					t.Fatalf("%d large arguments sent, want %d", large, c.sent)
				}
			}
		})
	}
}
