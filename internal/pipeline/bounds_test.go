package pipeline

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/links"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/storage"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// blockingLink waits for its context (obeying) or for release (ignoring
// the context, as a link stuck in a call without a deadline would).
type blockingLink struct {
	obey    bool
	release chan struct{}
}

func (l blockingLink) Run(ctx context.Context, _ *vcon.VCon) (links.Result, error) {
	if l.obey {
		<-ctx.Done()
		return links.Result{}, ctx.Err()
	}
	<-l.release
	return links.Result{}, nil
}

// reasonOf is the recorded DLQ reason of uuid on ingress list in.
func (e *env) reasonOf(t *testing.T, in, uuid string) string {
	t.Helper()
	r, err := queue.Reasons(context.Background(), e.rdb, in, []string{uuid})
	if err != nil {
		t.Fatal(err)
	}
	return r[uuid].Reason
}

// TestChainWithoutTimeoutIsBounded: a chain that sets no timeout still
// ends a vCon whose link waits forever, at the processor's default bound.
func TestChainWithoutTimeoutIsBounded(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	u := testUUID(1)
	e.putBody(t, u, document(u, 700), 0)
	e.rdb.RPush(ctx, "in", u)
	ch := Chain{Name: "main", Ingress: []string{"in"}, Egress: []string{"out"}, Links: []Step{{Name: "hang", Link: blockingLink{obey: true}}}}
	opts := testOptions()
	opts.DefaultTimeout = 300 * time.Millisecond
	p, _, _ := e.processor(ch, opts, "w")
	it := e.take(t, p, "in")
	start := time.Now()
	if err := p.Process(ctx, it); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("took %s with a default bound of 300ms", took)
	}
	if r := e.reasonOf(t, "in", u); !strings.HasPrefix(r, ReasonTimeout+":") {
		t.Fatalf("reason %q, want a timeout", r)
	}
}

// TestStalledRunIsReported: a link that ignores its cancelled context holds
// its slot past the chain timeout plus the grace; Stalled counts it (the
// worker's /healthz then fails) and stops counting once it returns.
func TestStalledRunIsReported(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	u := testUUID(2)
	e.putBody(t, u, document(u, 700), 0)
	e.rdb.RPush(ctx, "in", u)
	release := make(chan struct{})
	ch := Chain{Name: "main", Ingress: []string{"in"}, Egress: []string{"out"}, Timeout: 100 * time.Millisecond,
		Links: []Step{{Name: "stuck", Link: blockingLink{release: release}}}}
	opts := testOptions()
	opts.StallGrace = 100 * time.Millisecond
	p, _, _ := e.processor(ch, opts, "w")
	it := e.take(t, p, "in")
	done := make(chan error, 1)
	go func() { done <- p.Process(ctx, it) }()

	if n := p.Stalled(time.Now()); n != 0 {
		t.Fatalf("stalled = %d at the start", n)
	}
	waitFor(t, "the stuck vCon reported", 5*time.Second, func() bool { return p.Stalled(time.Now()) == 1 })
	close(release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := p.Stalled(time.Now().Add(time.Hour)); n != 0 {
		t.Fatalf("stalled = %d after the vCon finished", n)
	}
}

// TestHungPostgresIsBounded: a PostgreSQL that stops answering (SIGSTOP:
// connections open, no reply) no longer freezes the slot: each write
// attempt has its deadline, and the vCon is dead-lettered with the
// storage's name well within the chain's bound.
func TestHungPostgresIsBounded(t *testing.T) {
	e := newEnv(t)
	pg := testenv.StartPostgres(t)
	ctx := context.Background()
	ch := e.chain(t, "main", []string{"in"}, []string{"out"}, nil,
		[]mod{{"pg", "storage.postgres", map[string]any{"host": pg.Host, "port": int64(pg.Port), "user": pg.User, "password": pg.Password, "database": pg.Database}}})
	opts := testOptions()
	opts.StorageAttempts = 2
	opts.StorageCallTimeout = 500 * time.Millisecond
	opts.DefaultTimeout = 20 * time.Second
	p, m, _ := e.processor(ch, opts, "w")

	// One vCon while the server answers: the connection pool is warm.
	first := testUUID(10)
	e.putBody(t, first, document(first, 700), 0)
	e.rdb.RPush(ctx, "in", first)
	if err := p.Process(ctx, e.take(t, p, "in")); err != nil {
		t.Fatal(err)
	}
	if got := e.list(t, "out"); !slices.Equal(got, []string{first}) {
		t.Fatalf("egress %v before the freeze", got)
	}

	pg.Freeze()
	u := testUUID(11)
	e.putBody(t, u, document(u, 700), 0)
	e.rdb.RPush(ctx, "in", u)
	start := time.Now()
	if err := p.Process(ctx, e.take(t, p, "in")); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	if took > 10*time.Second {
		t.Fatalf("a hung PostgreSQL held the vCon %s (two attempts of 500ms)", took)
	}
	if r := e.reasonOf(t, "in", u); !strings.HasPrefix(r, ReasonStorageError+": storage pg:") || !strings.Contains(r, "timed out") {
		t.Fatalf("reason %q, want a storage error of pg that says it timed out", r)
	}
	expectCount(t, m.StorageWrites.WithLabelValues("main", "pg", OutcomeFailure), 1)
	t.Logf("dead-lettered after %s against a frozen PostgreSQL", took)
}

// countingStorage fails every write with err and counts the attempts.
type countingStorage struct {
	err   error
	calls atomic.Int64
}

func (s *countingStorage) Save(context.Context, *vcon.VCon) error {
	s.calls.Add(1)
	return s.err
}

// TestPermanentStorageErrorNotRetried: a write error marked permanent is
// tried once and dead-lettered with its reason; a transient one is retried
// up to the attempts.
func TestPermanentStorageErrorNotRetried(t *testing.T) {
	for _, tt := range []struct {
		name  string
		err   error
		tries int64
	}{
		{"permanent", storage.Permanent(errors.New("document is over max_file_size")), 1},
		{"transient", errors.New("connection refused"), 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			ctx := context.Background()
			u := testUUID(3)
			e.putBody(t, u, document(u, 700), 0)
			e.rdb.RPush(ctx, "in", u)
			s := &countingStorage{err: tt.err}
			ch := Chain{Name: "main", Ingress: []string{"in"}, Egress: []string{"out"}, Storages: []Sink{{Name: "files", Storage: s}}}
			p, _, _ := e.processor(ch, testOptions(), "w")
			if err := p.Process(ctx, e.take(t, p, "in")); err != nil {
				t.Fatal(err)
			}
			if got := s.calls.Load(); got != tt.tries {
				t.Fatalf("%d attempts, want %d", got, tt.tries)
			}
			if r := e.reasonOf(t, "in", u); !strings.Contains(r, tt.err.Error()) {
				t.Fatalf("reason %q does not carry the storage's error", r)
			}
		})
	}
}

// TestTooLargeBodyNotRead: a body over the worker's limit is dead-lettered
// as too_large without being decoded, and the rest of the list flows; a
// body at the limit is processed.
func TestTooLargeBodyNotRead(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	small, big := testUUID(4), testUUID(5)
	smallDoc := document(small, 2000)
	e.putBody(t, small, smallDoc, 0)
	e.putBody(t, big, document(big, 50_000), 0)
	e.rdb.RPush(ctx, "in", big, small)
	e.bodies = vconstore.New(e.rdb, vconstore.Options{MaxBodyBytes: int64(len(smallDoc))})
	ch := Chain{Name: "main", Ingress: []string{"in"}, Egress: []string{"out"}}
	p, m, _ := e.processor(ch, testOptions(), "w")
	for range 2 {
		if err := p.Process(ctx, e.take(t, p, "in")); err != nil {
			t.Fatal(err)
		}
	}
	if got := e.list(t, "out"); !slices.Equal(got, []string{small}) {
		t.Fatalf("egress %v, want only the vCon at the limit", got)
	}
	if r := e.reasonOf(t, "in", big); !strings.HasPrefix(r, ReasonTooLarge+": ") || !strings.Contains(r, "size limit") {
		t.Fatalf("reason %q, want too_large", r)
	}
	expectCount(t, m.DeadLetters.WithLabelValues("main", ReasonTooLarge), 1)
	if e.rdb.Exists(ctx, vconstore.Key(big)).Val() != 1 {
		t.Fatal("the oversized body was deleted; it must stay for inspection (with the DLQ expiry)")
	}
}
