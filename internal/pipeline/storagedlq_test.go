package pipeline

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/config"
	"github.com/vcon-operator/vcon-operator/internal/links"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/storage"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// TestStorageFailureModes runs a vCon through a chain with a webhook
// storage answering 500 and a Redis copy that works, in both modes of
// Chain.StorageDeadLetters, and checks where everything ends up: the
// vCon's DLQ or the storage's, egress, the other storage, the body's TTL,
// the recorded reason and the metrics.
func TestStorageFailureModes(t *testing.T) {
	const dlqExpiry = 1234 * time.Second
	fail500, calls := hookServer(t, http.StatusInternalServerError, 1<<40, false)
	hook := mod{"hook", "storage.webhook", map[string]any{"webhook-urls": []any{fail500.URL}}}
	copyStore := mod{"copy", "storage.redis_storage", map[string]any{"prefix": "copy", "expires": int64(600)}}
	tag := mod{"tag", "links.tag", map[string]any{"tags": []any{"reviewed"}}}
	shortTTL := mod{"expire", "links.expire_vcon", map[string]any{"seconds": int64(60)}}

	tests := []struct {
		name          string
		storageDLQ    bool
		links         []mod
		egress        []string
		bodyTTL       time.Duration // 0: persistent
		wantTTL       [2]time.Duration
		wantPersisted bool
	}{
		{
			name:    "DeadLetterVcon: retried writes, then the vCon's DLQ, no egress",
			links:   []mod{tag},
			egress:  []string{"out"},
			bodyTTL: 5 * time.Minute,
			wantTTL: [2]time.Duration{dlqExpiry - time.Minute, dlqExpiry},
		},
		{
			name:       "DeadLetterStorage: the storage's DLQ, the other storage written, egress pushed",
			storageDLQ: true,
			links:      []mod{tag},
			egress:     []string{"out"},
			bodyTTL:    5 * time.Minute,
			wantTTL:    [2]time.Duration{dlqExpiry - time.Minute, dlqExpiry},
		},
		{
			// At the end of its road a body would get the normal expiry
			// back, and a link asked for a minute: the replay still needs
			// it, so the DLQ expiry wins.
			name:       "DeadLetterStorage: the DLQ expiry outlasts a link's TTL, without egress",
			storageDLQ: true,
			links:      []mod{tag, shortTTL},
			bodyTTL:    5 * time.Minute,
			wantTTL:    [2]time.Duration{dlqExpiry - time.Minute, dlqExpiry},
		},
		{
			name:       "DeadLetterStorage: a longer TTL stays",
			storageDLQ: true,
			links:      []mod{tag},
			egress:     []string{"out"},
			bodyTTL:    2 * time.Hour,
			wantTTL:    [2]time.Duration{2*time.Hour - time.Minute, 2 * time.Hour},
		},
		{
			name:          "DeadLetterStorage: a body without a TTL keeps none",
			storageDLQ:    true,
			links:         []mod{tag},
			egress:        []string{"out"},
			wantPersisted: true,
		},
	}
	e := newEnv(t)
	ctx := context.Background()
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.rdb.FlushAll(ctx)
			calls.Store(0)
			ch := e.chain(t, "main", []string{"in"}, tc.egress, tc.links, []mod{hook, copyStore})
			ch.StorageDeadLetters = tc.storageDLQ
			// Retries would hide which mode dead-lettered: a vCon of the
			// default mode waits in the retry set instead of the DLQ.
			ch.Retry = RetryPolicy{Attempts: 1}
			opts := testOptions()
			opts.DLQExpiry = dlqExpiry
			opts.QueuedRetention = 10 * time.Minute
			p, m, _ := e.processor(ch, opts, "w")
			uuid := testUUID(i + 1)
			e.putBody(t, uuid, document(uuid, 1000), tc.bodyTTL)
			e.rdb.RPush(ctx, "in", uuid)
			e.runOnce(t, p, uuid)

			if n := calls.Load(); n != int64(opts.StorageAttempts) {
				t.Errorf("webhook storage called %d times, want %d (its own retries, in both modes)", n, opts.StorageAttempts)
			}
			vconDLQ := e.list(t, queue.DLQKey("in"))
			storageDLQ := e.list(t, queue.StorageDLQKey("hook"))
			egress := []string{}
			for _, l := range tc.egress {
				egress = append(egress, e.list(t, l)...)
			}
			copied := e.rdb.Exists(ctx, "copy:"+uuid).Val() == 1
			if tc.storageDLQ {
				if len(vconDLQ) != 0 || !slices.Equal(storageDLQ, []string{uuid}) {
					t.Fatalf("DLQ:in %v, DLQ:storage:hook %v; want only the storage's, holding %s", vconDLQ, storageDLQ, uuid)
				}
				if len(tc.egress) > 0 && !slices.Equal(egress, []string{uuid}) {
					t.Errorf("egress %v, want %s pushed although a storage failed", egress, uuid)
				}
				if !copied {
					t.Error("the other storage was not written")
				}
				dead, err := queue.ListDLQ(ctx, e.rdb, queue.StorageDLQList("hook"))
				if err != nil {
					t.Fatal(err)
				}
				r := dead[0].Reason
				if !dead[0].Recorded || !strings.HasPrefix(r.Reason, ReasonStorageError+": storage hook:") || r.Chain != "main" || r.Step != "storage hook" || r.At.IsZero() {
					t.Errorf("recorded reason %+v, want storage_error of storage hook in chain main", dead[0])
				}
				expectCount(t, m.StorageDeadLetters.WithLabelValues("main", "hook"), 1)
				expectCount(t, m.Errors.WithLabelValues("main"), 0)
			} else {
				if !slices.Equal(vconDLQ, []string{uuid}) || len(storageDLQ) != 0 {
					t.Fatalf("DLQ:in %v, DLQ:storage:hook %v; want only the vCon's, holding %s", vconDLQ, storageDLQ, uuid)
				}
				if len(egress) != 0 {
					t.Errorf("egress %v, want nothing pushed before every storage is written", egress)
				}
				if r := e.reason(t, uuid); !strings.HasPrefix(r.Reason, ReasonStorageError+": storage hook:") {
					t.Errorf("recorded reason %+v, want storage_error of storage hook", r)
				}
				expectCount(t, m.StorageDeadLetters.WithLabelValues("main", "hook"), 0)
				expectCount(t, m.DeadLetters.WithLabelValues("main", ReasonStorageError), 1)
			}
			if got := e.list(t, queue.InFlightKey("in", "w")); len(got) != 0 {
				t.Errorf("in-flight %v, want empty", got)
			}
			ttl := e.rdb.PTTL(ctx, vconstore.Key(uuid)).Val()
			if tc.wantPersisted {
				if ttl != -1 {
					t.Errorf("body TTL %s, want none kept", ttl)
				}
			} else if ttl < tc.wantTTL[0] || ttl > tc.wantTTL[1] {
				t.Errorf("body TTL %s, want %s to %s", ttl, tc.wantTTL[0], tc.wantTTL[1])
			}
		})
	}
}

// TestStorageDeadLetterAppliesWithEgress: the storage's DLQ entry rides in
// the outcome's one script with the egress push, so an outcome Redis
// refuses (an egress list that is a string) writes neither: the vCon goes
// to its own DLQ as outcome_failed, and DLQ:storage:{name} holds nothing
// a replay would write while the vCon never reached egress.
func TestStorageDeadLetterAppliesWithEgress(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	archive := &failingStorage{}
	archive.failing.Store(true)
	ch := Chain{Name: "main", Ingress: []string{"in"}, Egress: []string{"out"},
		Storages: []Sink{{Name: "archive", Storage: archive}}, StorageDeadLetters: true, Retry: RetryPolicy{Attempts: 1}}
	p, _, _ := e.processor(ch, testOptions(), "w")
	uuid := testUUID(1)
	e.queued(t, uuid)
	e.rdb.Set(ctx, "out", "not a list", 0)
	e.runOnce(t, p, uuid)

	if got := e.list(t, queue.StorageDLQKey("archive")); len(got) != 0 {
		t.Errorf("DLQ:storage:archive %v, want nothing: the outcome that held it was refused", got)
	}
	if n := e.rdb.HLen(ctx, queue.DLQReasonsKey(queue.StorageDLQList("archive"))).Val(); n != 0 {
		t.Errorf("%d storage DLQ reasons recorded, want none", n)
	}
	if r := e.reason(t, uuid); !strings.HasPrefix(r.Reason, ReasonOutcomeFailed) {
		t.Errorf("vCon's dead letter %+v, want outcome_failed", r)
	}
}

// TestBuildReadsStorageFailure: storage_failure reaches the chain, and a
// conserver file without it gets conserver's handling.
func TestBuildReadsStorageFailure(t *testing.T) {
	cfg, err := config.Parse([]byte(`
links:
  tag: {module: links.tag, options: {tags: [a]}}
chains:
  conserver: {links: [tag], ingress_lists: [a]}
  vcon:      {links: [tag], ingress_lists: [b], storage_failure: dead_letter_vcon}
  storage:   {links: [tag], ingress_lists: [c], storage_failure: dead_letter_storage}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	chains, closeAll, err := Build(context.Background(), cfg, "", links.Deps{}, storage.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	closeAll()
	want := map[string]bool{"conserver": true, "vcon": false, "storage": true}
	for _, c := range chains {
		if c.StorageDeadLetters != want[c.Name] {
			t.Errorf("chain %s: StorageDeadLetters %v, want %v", c.Name, c.StorageDeadLetters, want[c.Name])
		}
	}
}
