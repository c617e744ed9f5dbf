package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

// TestCrashStorageDeadLetters: a conserver config (no storage_failure:
// key, so conserver's handling) whose webhook storage refuses every write
// runs 2,000 vCons while the worker is SIGKILLed three times. Every vCon
// reaches egress and the Redis copy, none is dead-lettered whole, and
// each outcome pushed its egress entry and its DLQ:storage:refusing entry
// together: per uuid, as many of one as of the other, redeliveries
// included. An entry sent apart from the egress push would leave a uuid
// with one and not the other when a kill falls between them.
func TestCrashStorageDeadLetters(t *testing.T) {
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// 400 is permanent: the write is dead-lettered without its own
		// retries, which keeps the run short.
		w.WriteHeader(http.StatusBadRequest)
	}))
	t.Cleanup(refusing.Close)
	srv := testenv.StartRedis(t)
	rdb := srv.Client()
	ctx := context.Background()
	s := crashScenario{
		redisURL: srv.URL(),
		rdb:      rdb,
		n:        2000,
		kills:    3,
		config: crashLinks + fmt.Sprintf(`
storages:
  refusing: {module: storage.webhook, options: {webhook-urls: [%q]}}
  copy: {module: storage.redis_storage, options: {prefix: crashcopy}}
chains:
  main: {links: [tagger], storages: [refusing, copy], ingress_lists: [crash-in], egress_lists: [crash-out]}
`, refusing.URL),
		storedCount: func(t *testing.T) int {
			n := 0
			iter := rdb.Scan(ctx, 0, "crashcopy:*", 1000).Iterator()
			for iter.Next(ctx) {
				n++
			}
			if err := iter.Err(); err != nil {
				t.Fatal(err)
			}
			return n
		},
	}
	s.run(t)

	count := func(key string) map[string]int {
		m := map[string]int{}
		for _, u := range rdb.LRange(ctx, key, 0, -1).Val() {
			m[u]++
		}
		return m
	}
	egress, dead := count("crash-out"), count(queue.StorageDLQKey("refusing"))
	if len(dead) != s.n {
		t.Errorf("DLQ:storage:refusing holds %d distinct uuids, want all %d", len(dead), s.n)
	}
	apart := 0
	for u, n := range egress {
		if dead[u] != n {
			apart++
			if apart <= 3 {
				t.Errorf("%s: %d egress entries, %d storage DLQ entries: pushed apart", u, n, dead[u])
			}
		}
	}
	if apart > 0 {
		t.Errorf("%d uuids had their egress push and their storage DLQ entry apart", apart)
	}
	reasons, err := queue.ListDLQ(ctx, rdb, queue.StorageDLQList("refusing"))
	if err != nil {
		t.Fatal(err)
	}
	if !reasons[0].Recorded || reasons[0].Reason.Step != "storage refusing" {
		t.Errorf("storage DLQ entry %+v, want its reason recorded", reasons[0])
	}
}
