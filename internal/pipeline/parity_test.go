package pipeline

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// TestLinkFailuresAsConserver: what happens to a vCon, in Redis, when a
// jq program raises on it or a webhook refuses it. conserver's jq_link
// catches the exception and returns None (filtered out: no storage, no
// egress, no dead letter); its webhook logs a non-2xx answer and returns
// the uuid (the chain goes on), but a POST that gets no answer raises
// (dead letter). That is the default; strict: true dead-letters both.
func TestLinkFailuresAsConserver(t *testing.T) {
	const (
		in  = "ingress"
		out = "egress"
	)
	refusing, _ := hookServer(t, http.StatusBadRequest, 1<<40, false)
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close() // nothing listens at its address any more
	raises := `.parties[0].name + 1`
	store := mod{"copy", "storage.redis_storage", map[string]any{"prefix": "copy"}}

	tests := []struct {
		name       string
		link       mod
		egress     bool
		stored     bool
		dlqReason  string
		reasonText string
	}{
		{name: "jq runtime error filters out", link: mod{"filter", "links.jq_link", map[string]any{"filter": raises}}},
		{name: "jq runtime error, forward_matches false, filters out", link: mod{"filter", "links.jq_link", map[string]any{"filter": raises, "forward_matches": false}}},
		{name: "jq runtime error, strict, dead-letters", link: mod{"filter", "links.jq_link", map[string]any{"filter": raises, "strict": true}},
			dlqReason: ReasonLinkError, reasonText: "jq_link: filter failed: cannot add"},
		{name: "webhook 400 goes on", link: mod{"notify", "links.webhook", map[string]any{"webhook-urls": []any{refusing.URL}}},
			egress: true, stored: true},
		{name: "webhook 400, strict, dead-letters", link: mod{"notify", "links.webhook", map[string]any{"webhook-urls": []any{refusing.URL}, "strict": true}},
			dlqReason: ReasonLinkError, reasonText: "answered 400 Bad Request"},
		{name: "webhook without an answer dead-letters", link: mod{"notify", "links.webhook", map[string]any{"webhook-urls": []any{down.URL}, "retries": int64(0)}},
			dlqReason: ReasonLinkError, reasonText: "link notify"},
	}
	e := newEnv(t)
	ctx := context.Background()
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.rdb.FlushAll(ctx)
			ch := e.chain(t, "main", []string{in}, []string{out}, []mod{tc.link}, []mod{store})
			p, _, _ := e.processor(ch, testOptions(), "w")
			uuid := testUUID(i)
			e.putBody(t, uuid, document(uuid, 1000), 0)
			e.rdb.RPush(ctx, in, uuid)
			if err := p.Process(ctx, e.take(t, p, in)); err != nil {
				t.Fatalf("Process: %v", err)
			}
			if got := e.list(t, out); tc.egress != slices.Equal(got, []string{uuid}) {
				t.Errorf("egress = %v, want egress: %v", got, tc.egress)
			}
			if stored := e.rdb.Exists(ctx, "copy:"+uuid).Val() == 1; stored != tc.stored {
				t.Errorf("stored = %v, want %v", stored, tc.stored)
			}
			dlq := e.list(t, queue.DLQKey(in))
			if tc.dlqReason == "" {
				if len(dlq) != 0 {
					t.Fatalf("dead-lettered: %v", dlq)
				}
				return
			}
			reasons, err := queue.Reasons(ctx, e.rdb, in, dlq)
			if err != nil {
				t.Fatal(err)
			}
			if r := reasons[uuid]; !slices.Equal(dlq, []string{uuid}) || !strings.HasPrefix(r.Reason, tc.dlqReason) || !strings.Contains(r.Reason, tc.reasonText) {
				t.Fatalf("DLQ = %v, reason %+v; want %s containing %q", dlq, r, tc.dlqReason, tc.reasonText)
			}
		})
	}
}

// egressWatcher is a storage that records, at each save, whether the uuid
// was already on an egress list, where a follower could take it.
type egressWatcher struct {
	rdb    redis.UniversalClient
	egress string
	early  []string
}

func (s *egressWatcher) Save(ctx context.Context, v *vcon.VCon) error {
	if _, err := s.rdb.LPos(ctx, s.egress, v.UUID(), redis.LPosArgs{}).Result(); err != redis.Nil {
		s.early = append(s.early, v.UUID())
	}
	return nil
}

// TestStoragesBeforeEgress: conserver's _wrap_up pushes the uuid to the
// egress lists and then writes the storages, so a follower can read a
// vCon no storage holds yet. Here every storage is written first.
func TestStoragesBeforeEgress(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	ch := e.chain(t, "main", []string{"in"}, []string{"out", "audit"}, []mod{{"tag", "links.tag", map[string]any{"tags": []any{"a"}}}}, nil)
	watchers := []*egressWatcher{{rdb: e.rdb, egress: "out"}, {rdb: e.rdb, egress: "audit"}}
	for _, w := range watchers {
		ch.Storages = append(ch.Storages, Sink{Name: "watch-" + w.egress, Storage: w})
	}
	p, _, _ := e.processor(ch, testOptions(), "w")
	uuid := testUUID(1)
	e.putBody(t, uuid, document(uuid, 1000), 0)
	e.rdb.RPush(ctx, "in", uuid)
	if err := p.Process(ctx, e.take(t, p, "in")); err != nil {
		t.Fatalf("Process: %v", err)
	}
	for _, w := range watchers {
		if len(w.early) != 0 {
			t.Errorf("uuid on %s before its storage was written", w.egress)
		}
		if got := e.list(t, w.egress); !slices.Equal(got, []string{uuid}) {
			t.Errorf("%s = %v, want [%s] after the storages", w.egress, got, uuid)
		}
	}
}
