package pipeline

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/links"
	"github.com/vcon-operator/vcon-operator/internal/vcon"

	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// whereIs lists every place uuid can be found: the ingress list, any
// in-flight list of it, the egress lists and the DLQ.
func (e *env) whereIs(t *testing.T, uuid, ingress string, egress []string) []string {
	t.Helper()
	ctx := context.Background()
	var places []string
	count := func(name, key string) {
		if e.rdb.Type(ctx, key).Val() != "list" {
			return
		}
		for _, v := range e.list(t, key) {
			if v == uuid {
				places = append(places, name)
			}
		}
	}
	count("ingress", ingress)
	for _, k := range e.rdb.Keys(ctx, queue.InFlightPrefix(ingress)+"*").Val() {
		count("in-flight", k)
	}
	for _, l := range egress {
		count("egress "+l, l)
	}
	count("dlq", queue.DLQKey(ingress))
	return places
}

// TestOutcomeRefusedByKeyType: an outcome whose egress list, storage key or
// body key holds another type is written nowhere (no partial push) and the
// vCon is dead-lettered with reason outcome_failed naming the key; a DLQ of
// another type keeps the vCon in flight until the key is fixed. At every
// check the uuid is in exactly one list.
func TestOutcomeRefusedByKeyType(t *testing.T) {
	redisStore := mod{"copy", "storage.redis_storage", map[string]any{"prefix": "copy", "expires": int64(600)}}
	tests := []struct {
		name    string
		egress  []string
		corrupt func(e *env, uuid string) // gives a key the wrong type before the outcome
		key     string                    // the key the reason must name (%s: uuid)
	}{
		{"egress list is a sorted set", []string{"vcons"}, func(e *env, u string) {
			e.rdb.ZAdd(context.Background(), "vcons", redisZ(u))
		}, "vcons"},
		{"second egress list is a string, first not pushed", []string{"out", "out2"}, func(e *env, u string) {
			e.rdb.Set(context.Background(), "out2", "x", 0)
		}, "out2"},
		{"egress list is a hash", []string{"out"}, func(e *env, u string) {
			e.rdb.HSet(context.Background(), "out", "f", "v")
		}, "out"},
		{"storage key is a hash", []string{"out"}, func(e *env, u string) {
			e.rdb.HSet(context.Background(), "copy:"+u, "f", "v")
		}, "copy:%s"},
		{"body key replaced by a list", []string{"out"}, func(e *env, u string) {
			e.rdb.Del(context.Background(), vconstore.Key(u))
			e.rdb.RPush(context.Background(), vconstore.Key(u), "x")
		}, "vcon:%s"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			u := testUUID(i)
			e.putBody(t, u, document(u, 700), 0)
			e.rdb.RPush(ctx, "in", u)
			corrupting := linkFunc(func() { tt.corrupt(e, u) })
			ch := e.chain(t, "main", []string{"in"}, tt.egress, nil, []mod{redisStore})
			ch.Links = append(ch.Links, Step{Name: "corrupt", Link: corrupting})
			p, m, _ := e.processor(ch, testOptions(), "w")
			it := e.take(t, p, "in")
			if err := p.Process(ctx, it); err != nil {
				t.Fatal(err)
			}
			if got := e.whereIs(t, u, "in", tt.egress); !slices.Equal(got, []string{"dlq"}) {
				t.Fatalf("uuid found in %v, want only the DLQ", got)
			}
			reasons, err := queue.Reasons(ctx, e.rdb, "in", []string{u})
			if err != nil {
				t.Fatal(err)
			}
			key := tt.key
			if strings.Contains(key, "%s") {
				key = fmt.Sprintf(key, u)
			}
			if r := reasons[u].Reason; !strings.HasPrefix(r, ReasonOutcomeFailed+": ") || !strings.Contains(r, key+":") {
				t.Fatalf("recorded reason %q, want outcome_failed naming %s", r, key)
			}
			expectCount(t, m.DeadLetters.WithLabelValues("main", ReasonOutcomeFailed), 1)
			expectCount(t, m.OutcomeRefusals.WithLabelValues("main"), 1)
			if tt.key != "copy:%s" && e.rdb.Exists(ctx, "copy:"+u).Val() != 0 {
				t.Fatal("the Redis storage was written by a refused outcome")
			}
		})
	}
}

// TestDeadLetterRefusedStaysInFlight: a DLQ key of another type cannot take
// the dead letter, so the vCon stays in flight (never in no list) and the
// worker retries; once the key is fixed the dead letter is written.
func TestDeadLetterRefusedStaysInFlight(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	u := testUUID(1)
	e.putBody(t, u, []byte(`{"not": "a vcon"`), 0) // malformed: dead-lettered
	e.rdb.RPush(ctx, "in", u)
	e.rdb.Set(ctx, queue.DLQKey("in"), "a string", 0)
	ch := e.chain(t, "main", []string{"in"}, []string{"out"}, nil, nil)
	p, m, _ := e.processor(ch, testOptions(), "w")
	it := e.take(t, p, "in")
	done := make(chan error, 1)
	go func() { done <- p.Process(ctx, it) }()

	waitFor(t, "refusals", 10*time.Second, func() bool { return testutil.ToFloat64(m.OutcomeRefusals.WithLabelValues("main")) >= 3 })
	if got := e.whereIs(t, u, "in", []string{"out"}); !slices.Equal(got, []string{"in-flight"}) {
		t.Fatalf("while the DLQ is a string the uuid is in %v, want only in flight", got)
	}
	select {
	case err := <-done:
		t.Fatalf("Process returned (%v) while its dead letter could not be written", err)
	default:
	}
	e.rdb.Del(ctx, queue.DLQKey("in"))
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("the dead letter was not written after the DLQ key was fixed")
	}
	if got := e.whereIs(t, u, "in", []string{"out"}); !slices.Equal(got, []string{"dlq"}) {
		t.Fatalf("after the fix the uuid is in %v, want only the DLQ", got)
	}
	expectCount(t, m.DeadLetters.WithLabelValues("main", ReasonMalformed), 1)
}

// linkFunc is a link that runs a function and continues: a test's way to
// change Redis between a vCon's read and its outcome.
type linkFunc func()

func (f linkFunc) Run(context.Context, *vcon.VCon) (links.Result, error) {
	f()
	return links.Result{}, nil
}

func redisZ(member string) redis.Z { return redis.Z{Score: 1, Member: member} }
