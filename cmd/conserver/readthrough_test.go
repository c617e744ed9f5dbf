package main

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// TestStandaloneReadsBackFromAnyStorage: the worker run on a conserver
// file (`conserver --config FILE`) reads a body Redis no longer holds
// back from any storage of the file, also one only another chain writes
// to, as conserver does. Two archive chains write one vCon each to a real
// PostgreSQL and to a file storage; their bodies then expire from Redis,
// and the live chain, whose only storage is a third one, still runs them.
// A vCon in no storage is dead-lettered as not_found.
func TestStandaloneReadsBackFromAnyStorage(t *testing.T) {
	srv := testenv.StartRedis(t)
	rdb := srv.Client()
	pg := testenv.StartPostgres(t)
	ctx := context.Background()
	dir := t.TempDir()
	t.Setenv("RT_PG_PASSWORD", pg.Password)
	cfg := writeConfig(t, fmt.Sprintf(`
links:
  tagger: {module: links.tag, options: {tags: ["live:yes"]}}
storages:
  live_files: {module: storage.file, options: {path: %q}}
  archive_pg:
    module: storage.postgres
    options: {host: %s, port: "%d", user: %s, password: "${RT_PG_PASSWORD}", database: %s}
  archive_files: {module: storage.file, options: {path: %q}}
chains:
  to_pg: {links: [], storages: [archive_pg], ingress_lists: [pg-in], egress_lists: [pg-done]}
  to_files: {links: [], storages: [archive_files], ingress_lists: [files-in], egress_lists: [files-done]}
  live: {links: [tagger], storages: [live_files], ingress_lists: [live-in], egress_lists: [live-out]}
`, filepath.Join(dir, "live"), pg.Host, pg.Port, pg.User, pg.Database, filepath.Join(dir, "archive")))
	w := startWorker(t, cfg, srv.URL())
	w.waitReady(60 * time.Second)

	inPG, inFiles, nowhere := testUUID(1), testUUID(2), testUUID(3)
	for _, step := range []struct{ uuid, list, done string }{{inPG, "pg-in", "pg-done"}, {inFiles, "files-in", "files-done"}} {
		rdb.Set(ctx, vconstore.Key(step.uuid), `{"vcon":"0.0.1","uuid":"`+step.uuid+`","created_at":"2024-03-05T10:00:00Z","subject":"archived by `+step.list+`","parties":[],"dialog":[]}`, 0)
		rdb.RPush(ctx, step.list, step.uuid)
		waitUntil(t, 20*time.Second, step.uuid+" archived by its chain", func() bool {
			return slices.Contains(rdb.LRange(ctx, step.done, 0, -1).Val(), step.uuid)
		})
	}
	// The bodies expire from Redis; only the archive chains' storages
	// have them now.
	rdb.Del(ctx, vconstore.Key(inPG), vconstore.Key(inFiles))
	rdb.RPush(ctx, "live-in", inPG, inFiles, nowhere)
	waitUntil(t, 20*time.Second, "the live chain's three outcomes", func() bool {
		return rdb.LLen(ctx, "live-out").Val()+rdb.LLen(ctx, queue.DLQKey("live-in")).Val() == 3
	})
	dlq := rdb.LRange(ctx, queue.DLQKey("live-in"), 0, -1).Val()
	reasons, err := queue.Reasons(ctx, rdb, "live-in", dlq)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(dlq, []string{nowhere}) {
		t.Fatalf("live DLQ = %v (%+v), want [%s]", dlq, reasons, nowhere)
	}
	if out := rdb.LRange(ctx, "live-out", 0, -1).Val(); !slices.Contains(out, inPG) || !slices.Contains(out, inFiles) {
		t.Fatalf("live egress = %v, want %s and %s\n%s", out, inPG, inFiles, w.logTail())
	}
	if r := reasons[nowhere].Reason; !strings.HasPrefix(r, "not_found") {
		t.Errorf("dead-letter reason of the vCon in no storage = %q, want not_found", r)
	}

	for uuid, list := range map[string]string{inPG: "pg-in", inFiles: "files-in"} {
		b, err := vconstore.New(rdb, vconstore.Options{}).Get(ctx, uuid)
		if err != nil {
			t.Fatalf("%s not re-cached in Redis: %v", uuid, err)
		}
		v, err := vcon.Parse(b.Data)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := v.String("subject"), "archived by "+list; got != want {
			t.Errorf("%s: subject %q, want %q", uuid, got, want)
		}
		if tag, _ := vcon.Tag(v, "live"); tag != "yes" {
			t.Errorf("%s: the live chain's link did not run on the read-back body", uuid)
		}
		if b.PTTL <= 0 {
			t.Errorf("%s: re-cached body has no TTL (%s)", uuid, b.PTTL)
		}
		if files, _ := filepath.Glob(filepath.Join(dir, "live", "*", "*", "*", uuid+".json")); len(files) != 1 {
			t.Errorf("%s: %d files in the live chain's storage, want 1", uuid, len(files))
		}
	}
}
