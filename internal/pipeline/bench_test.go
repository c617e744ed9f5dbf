package pipeline

import (
	"context"
	"testing"
	"time"
)

// BenchmarkProcess is one vCon of about 5 KB through [links.tag] +
// storage.redis_storage + egress, taken and committed against a real
// redis-server: the worker's hot path without the runner (see
// hack/bench/worker for the end-to-end figure).
func BenchmarkProcess(b *testing.B) {
	e := newEnvTB(b)
	ctx := context.Background()
	ch := e.chainTB(b, "bench", []string{"in"}, []string{"out"},
		[]mod{{"tag", "links.tag", map[string]any{"tags": []any{"benchmarked"}}}},
		[]mod{{"copy", "storage.redis_storage", nil}})
	p, _, _ := e.processor(ch, Options{}, "w")
	if err := p.worker.Heartbeat(ctx, []string{"in"}); err != nil {
		b.Fatal(err)
	}
	uuid := testUUID(1)
	doc := document(uuid, 5000)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		e.rdb.Set(ctx, "vcon:"+uuid, doc, 0)
		e.rdb.RPush(ctx, "in", uuid)
		it, ok, err := p.worker.Take(ctx, "in", time.Second)
		if err != nil || !ok {
			b.Fatal(ok, err)
		}
		b.StartTimer()
		if err := p.Process(ctx, it); err != nil {
			b.Fatal(err)
		}
	}
}
