package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/vcon-operator/vcon-operator/internal/apiwire"
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

// errLink fails every vCon: the chain dead-letters it.
type errLink struct{}

func (errLink) Run(context.Context, *vcon.VCon) (links.Result, error) {
	return links.Result{}, errors.New("refused by the test")
}

// link builds one real link as a chain step.
func (e *env) link(t *testing.T, name, module string, opts map[string]any) Step {
	t.Helper()
	l, err := links.New(name, module, opts, links.Deps{Redis: e.rdb, Logger: e.log})
	if err != nil {
		t.Fatalf("build link %s: %v", name, err)
	}
	return Step{Name: name, Link: l}
}

// TestLinkEffects: the routes and TTLs links return are applied by the
// outcome, on the vCon each link ran on: routes even when the chain halts,
// nothing when it dead-letters, and of several TTLs the last one.
func TestLinkEffects(t *testing.T) {
	const second = time.Second
	e := newEnv(t)
	ctx := context.Background()
	first, other := testUUID(1), testUUID(2)
	tagUrgent := e.link(t, "urgent", "links.tag", map[string]any{"tags": []any{"urgent"}})
	router := e.link(t, "router", "links.tag_router", map[string]any{"tag_routes": map[string]any{"urgent": []any{"routed", "routed2"}}})
	routeAndHalt := e.link(t, "route-and-halt", "links.tag_router", map[string]any{"tag_routes": map[string]any{"urgent": "routed"}, "forward_original": false})
	expire := func(seconds int) Step {
		return e.link(t, fmt.Sprintf("expire-%d", seconds), "links.expire_vcon", map[string]any{"seconds": seconds})
	}
	dropAll := e.link(t, "drop", "links.jq_link", map[string]any{"filter": "false"})
	var routedDuringRun int64
	probe := Step{Name: "probe", Link: linkFunc(func() { routedDuringRun = e.rdb.LLen(ctx, "routed").Val() })}
	type ttlRange [2]time.Duration // PTTL bounds; {-1, -1}: none
	tests := []struct {
		name   string
		steps  []Step
		routed map[string][]string // list -> contents after the outcome
		egress []string
		dlq    bool
		ttl    map[string]ttlRange // uuid -> body TTL after the outcome
	}{
		{
			name:   "routes pushed with egress, not during the run",
			steps:  []Step{tagUrgent, router, probe},
			routed: map[string][]string{"routed": {first}, "routed2": {first}},
			egress: []string{first},
			// On egress the body is queued again: the queued retention.
			ttl: map[string]ttlRange{first: {apiwire.DefaultQueuedRetention - time.Minute, apiwire.DefaultQueuedRetention}},
		},
		{
			name:   "halted after routing: routed, not egressed",
			steps:  []Step{tagUrgent, routeAndHalt},
			routed: map[string][]string{"routed": {first}},
		},
		{
			name:   "dead-lettered: no route pushed, no TTL but the DLQ's",
			steps:  []Step{tagUrgent, router, expire(60), {Name: "fail", Link: errLink{}}},
			routed: map[string][]string{"routed": nil, "routed2": nil},
			dlq:    true,
			ttl:    map[string]ttlRange{first: {1200 * second, 1234 * second}},
		},
		{
			name:   "TTL replaces the body's",
			steps:  []Step{expire(120)},
			egress: []string{first},
			ttl:    map[string]ttlRange{first: {110 * second, 120 * second}},
		},
		{
			name:   "two TTLs: the last link's wins, even when longer",
			steps:  []Step{expire(120), expire(600)},
			egress: []string{first},
			ttl:    map[string]ttlRange{first: {590 * second, 600 * second}},
		},
		{
			name:  "TTL of a halted vCon",
			steps: []Step{expire(120), dropAll},
			ttl:   map[string]ttlRange{first: {110 * second, 120 * second}},
		},
		{
			name:   "forwarded: each vCon gets the effects of the links that ran on it",
			steps:  []Step{tagUrgent, router, expire(120), {Name: "forward", Link: forwardLink{to: other}}, probe, expire(60)},
			routed: map[string][]string{"routed": {first}, "routed2": {first}},
			egress: []string{other},
			ttl:    map[string]ttlRange{first: {110 * second, 120 * second}, other: {50 * second, 60 * second}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.rdb.FlushAll(ctx)
			routedDuringRun = 0
			e.putBody(t, first, document(first, 900), 1000*second)
			e.putBody(t, other, document(other, 900), 0)
			e.rdb.RPush(ctx, "in", first)
			ch := Chain{Name: "main", Ingress: []string{"in"}, Egress: []string{"out"}, Links: tc.steps}
			opts := testOptions()
			opts.DLQExpiry = 1234 * second
			p, _, _ := e.processor(ch, opts, "w")
			if err := p.Process(ctx, e.take(t, p, "in")); err != nil {
				t.Fatal(err)
			}
			if routedDuringRun != 0 {
				t.Errorf("routed list held %d uuids while the chain ran, want 0", routedDuringRun)
			}
			for list, want := range tc.routed {
				if got := e.list(t, list); !slices.Equal(got, want) {
					t.Errorf("routed list %s = %q, want %q", list, got, want)
				}
			}
			if got := e.list(t, "out"); !slices.Equal(got, tc.egress) {
				t.Errorf("egress = %q, want %q", got, tc.egress)
			}
			if got := len(e.list(t, queue.DLQKey("in"))) == 1; got != tc.dlq {
				t.Errorf("dead-lettered = %v, want %v", got, tc.dlq)
			}
			for u, want := range tc.ttl {
				if got := e.rdb.PTTL(ctx, vconstore.Key(u)).Val(); got < want[0] || got > want[1] {
					t.Errorf("TTL of %s = %v, want between %v and %v", u, got, want[0], want[1])
				}
			}
		})
	}
}

// TestRoutedAfterBody: a consumer blocked on a routed list, as a downstream
// chain is, finds the body the routing chain wrote (its last link's change
// included) when the uuid arrives, and the trace context of the routing
// vCon's span, as on egress.
func TestRoutedAfterBody(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev); _ = tp.Shutdown(context.Background()) })

	e := newEnv(t)
	ctx := context.Background()
	u := testUUID(3)
	e.putBody(t, u, document(u, 900), 0)
	e.rdb.RPush(ctx, "in", u)
	ch := Chain{Name: "main", Ingress: []string{"in"}, Egress: []string{"out"}, Links: []Step{
		e.link(t, "urgent", "links.tag", map[string]any{"tags": []any{"urgent"}}),
		e.link(t, "router", "links.tag_router", map[string]any{"tag_routes": map[string]any{"urgent": "routed"}}),
		e.link(t, "done", "links.tag", map[string]any{"tags": []any{"done"}}),
	}}
	p, _, _ := e.processor(ch, testOptions(), "w")

	// The downstream consumer: it waits for the uuid, then reads its body
	// and context record at once, as conserver's worker does.
	type seen struct {
		doc    *vcon.VCon
		record string
		err    error
	}
	downstream := make(chan seen, 1)
	reader := redis.NewClient(e.rdb.Options())
	t.Cleanup(func() { _ = reader.Close() })
	go func() {
		popped, err := reader.BLPop(ctx, 10*time.Second, "routed").Result()
		if err != nil {
			downstream <- seen{err: err}
			return
		}
		b, err := e.bodies.Get(ctx, popped[1])
		if err != nil {
			downstream <- seen{err: err}
			return
		}
		v, err := vcon.Parse(b.Data)
		record := reader.LPop(ctx, queue.ContextKey("routed", popped[1])).Val()
		downstream <- seen{doc: v, record: record, err: err}
	}()
	// BLPOP must be waiting before the outcome, or it reads the list
	// afterwards and proves nothing about the order.
	waitFor(t, "the consumer's BLPOP", 5*time.Second, func() bool {
		return strings.Contains(e.rdb.ClientList(ctx).Val(), "cmd=blpop")
	})

	if err := p.Process(ctx, e.take(t, p, "in")); err != nil {
		t.Fatal(err)
	}
	got := <-downstream
	if got.err != nil {
		t.Fatalf("downstream read: %v", got.err)
	}
	if _, ok := vcon.Tag(got.doc, "done"); !ok {
		t.Errorf("the routed uuid was readable before its body was written: tags %v", vcon.Tags(got.doc))
	}
	var root sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if strings.HasPrefix(s.Name(), "vcon.process") {
			root = s
		}
	}
	if root == nil {
		t.Fatal("no vCon span")
	}
	tc, err := queue.ParseTraceContext(got.record)
	if err != nil {
		t.Fatalf("routed context record %q: %v", got.record, err)
	}
	if tc.TraceID != root.SpanContext().TraceID().String() || tc.SpanID != root.SpanContext().SpanID().String() {
		t.Errorf("routed record %+v, want the vCon span %s/%s", tc, root.SpanContext().TraceID(), root.SpanContext().SpanID())
	}
	if ttl := e.rdb.TTL(ctx, queue.ContextKey("out", u)).Val(); ttl <= 0 {
		t.Errorf("egress context record TTL %v: the egress push lost its trace", ttl)
	}
}

// TestSizedPipeline: a sized pipeline starts empty and sends what is
// queued on it, in order, within its room and past it.
func TestSizedPipeline(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for _, n := range []int{0, 1, pipelineRoom, pipelineRoom + 3} {
		pipe := sizedPipeline(e.rdb)
		if pipe.Len() != 0 || len(pipe.Cmds()) != 0 {
			t.Fatalf("a new sized pipeline holds %d commands", pipe.Len())
		}
		key := fmt.Sprintf("sized-%d", n)
		for i := range n {
			pipe.RPush(ctx, key, i)
		}
		if pipe.Len() != n {
			t.Fatalf("queued %d, the pipeline holds %d", n, pipe.Len())
		}
		if _, err := pipe.Exec(ctx); err != nil {
			t.Fatal(err)
		}
		got := e.list(t, key)
		if len(got) != n {
			t.Fatalf("%d commands sent %d pushes", n, len(got))
		}
		for i, v := range got {
			if v != fmt.Sprint(i) {
				t.Fatalf("pushes arrived as %v, want 0..%d in order", got, n-1)
			}
		}
	}
}
