package pipeline

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/config"
	"github.com/vcon-operator/vcon-operator/internal/links"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/storage"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// TestReadThroughFromEveryConfiguredStorage: a body missing from Redis is
// read back from any storage of the config, also one that only another
// chain writes to, in the order the file lists them, then from nowhere
// else (conserver's VconRedis.get_vcon over its storages: section). The
// chain run here writes to a file storage only; the body sits in a real
// PostgreSQL and a real MongoDB-compatible server (FerretDB) that the
// other chain writes to. A vCon no storage that answered has, while one
// failed, is that storage's error (retried when it may pass), never
// not_found.
func TestReadThroughFromEveryConfiguredStorage(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	pg := testenv.StartPostgres(t)
	mg := testenv.StartMongo(t)

	junkDir := t.TempDir()
	storageYAML := map[string]string{
		"pg":   fmt.Sprintf("{module: storage.postgres, options: {host: %s, port: %d, user: %s, password: %q, database: %s}}", pg.Host, pg.Port, pg.User, pg.Password, pg.Database),
		"docs": fmt.Sprintf("{module: storage.mongo, options: {url: %q}}", mg.URL),
		// Nothing listens there: each read fails at once with a
		// refused connection.
		"broken": fmt.Sprintf("{module: storage.postgres, options: {host: 127.0.0.1, port: %d, user: vcon, password: x, database: vcon}}", testenv.FreePort(t)),
		// Not read from: a webhook cannot read back.
		"hook": "{module: storage.webhook, options: {webhook-urls: [\"http://127.0.0.1:1/never\"]}}",
		// Holds a file under the vCon's name that is not a vCon.
		"junk": fmt.Sprintf("{module: storage.file, options: {path: %q}}", junkDir),
	}
	// seed writes the document, its subject naming where it is, straight
	// into a storage, as the other chain would have.
	seed := func(t *testing.T, name, uuid string) {
		t.Helper()
		if name == "junk" {
			if err := os.WriteFile(filepath.Join(junkDir, uuid+".json"), []byte("not a vCon"), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		m, err := config.Parse([]byte("storages:\n  "+name+": "+storageYAML[name]+"\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
		s, err := storage.New(ctx, name, m.Storages[name].Module, m.Storages[name].Options, storage.Deps{Logger: e.log})
		if err != nil {
			t.Fatal(err)
		}
		defer s.(storage.Closer).Close()
		v, err := vcon.Parse(bytes.Replace(document(uuid, 1500), []byte(`"Support call"`), []byte(`"kept in `+name+`"`), 1))
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Save(ctx, v); err != nil {
			t.Fatalf("seed %s: %v", name, err)
		}
	}

	tests := []struct {
		name     string
		order    []string // the storages: section, in the file's order
		in       []string // the storages that hold the body
		fallback bool     // VCON_STORAGE_FALLBACK_ENABLED
		from     string   // where the body must come from
		reason   string   // else the dead letter's reason, and a text it holds
		text     string
		retry    bool // the chain has a retry policy
		retried  bool // and the vCon waits for a retry instead
	}{
		{name: "only in the other chain's postgres", order: []string{"pg", "docs"}, in: []string{"pg"}, fallback: true, from: "pg"},
		{name: "only in the other chain's mongo", order: []string{"pg", "docs"}, in: []string{"docs"}, fallback: true, from: "docs"},
		{name: "in both, postgres listed first", order: []string{"pg", "docs"}, in: []string{"pg", "docs"}, fallback: true, from: "pg"},
		{name: "in both, mongo listed first", order: []string{"docs", "pg"}, in: []string{"pg", "docs"}, fallback: true, from: "docs"},
		{name: "a failing storage is passed over", order: []string{"broken", "hook", "docs", "pg"}, in: []string{"pg"}, fallback: true, from: "pg"},
		{name: "a storage holding no vCon is passed over", order: []string{"junk", "pg"}, in: []string{"junk", "pg"}, fallback: true, from: "pg"},
		{name: "in no storage", order: []string{"pg", "docs"}, fallback: true, reason: ReasonNotFound, text: "in any storage"},
		{name: "fallback disabled", order: []string{"pg", "docs"}, in: []string{"pg", "docs"}, fallback: false, reason: ReasonNotFound, text: "VCON_STORAGE_FALLBACK_ENABLED"},
		// Not "not found": the vCon may be in the storage that failed.
		{name: "in none that answered, one failing", order: []string{"pg", "broken", "docs"}, fallback: true, reason: ReasonStorageError, text: "storage broken"},
		{name: "only a document that is not a vCon", order: []string{"junk", "pg"}, in: []string{"junk"}, fallback: true, reason: ReasonStorageError, text: "storage junk holds a document"},
		{name: "a failing storage may pass: retried", order: []string{"broken", "pg"}, fallback: true, retry: true, retried: true},
		{name: "a document that is not a vCon stays one: not retried", order: []string{"junk"}, in: []string{"junk"}, fallback: true, retry: true, reason: ReasonStorageError, text: "storage junk holds a document"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e.rdb.FlushAll(ctx)
			dir := t.TempDir()
			var doc strings.Builder
			doc.WriteString("links:\n  tag: {module: links.tag, options: {tags: [\"team:support\"]}}\nstorages:\n")
			fmt.Fprintf(&doc, "  files: {module: storage.file, options: {path: %q}}\n", dir)
			for _, name := range tc.order {
				fmt.Fprintf(&doc, "  %s: %s\n", name, storageYAML[name])
			}
			retry := ""
			if tc.retry {
				retry = ", retry: {attempts: 3, initial_backoff: 60}"
			}
			fmt.Fprintf(&doc, "chains:\n  main: {links: [tag], storages: [files], ingress_lists: [in], egress_lists: [out]%s}\n", retry)
			fmt.Fprintf(&doc, "  archive: {links: [], storages: [%s], ingress_lists: [archive-in]}\n", strings.Join(tc.order, ", "))
			cfg, err := config.Parse([]byte(doc.String()), nil)
			if err != nil {
				t.Fatal(err)
			}
			// The worker runs only main, as `conserver --chain main`
			// would; archive's storages still serve the read-through.
			chains, closeAll, err := Build(ctx, cfg, "main", links.Deps{Redis: e.rdb, HTTP: http.DefaultClient, Logger: e.log}, storage.Deps{Redis: e.rdb, HTTP: http.DefaultClient, Logger: e.log})
			if err != nil {
				t.Fatal(err)
			}
			defer closeAll()

			uuid := testUUID(100 + i)
			for _, name := range tc.in {
				seed(t, name, uuid)
			}
			opts := testOptions()
			opts.ReadThrough = tc.fallback
			opts.ReadThroughTTL = 20 * time.Minute
			p, _, _ := e.processor(chains[0], opts, "w")
			e.rdb.RPush(ctx, "in", uuid)
			if err := p.Process(ctx, e.take(t, p, "in")); err != nil {
				t.Fatalf("Process: %v", err)
			}

			if tc.retried {
				if _, err := e.rdb.ZScore(ctx, queue.RetryKey("in"), uuid).Result(); err != nil {
					t.Errorf("not waiting for a retry (%v); dead letters: %v", err, e.list(t, queue.DLQKey("in")))
				}
				if got := e.list(t, queue.DLQKey("in")); len(got) != 0 {
					t.Errorf("dead-lettered %v, want a retry", got)
				}
				return
			}
			if tc.from == "" {
				if r := e.reasonOf(t, "in", uuid); !strings.HasPrefix(r, tc.reason) || !strings.Contains(r, tc.text) {
					t.Errorf("dead-letter reason %q, want %s with %q", r, tc.reason, tc.text)
				}
				if got := e.list(t, "out"); len(got) != 0 {
					t.Errorf("egress = %v, want nothing", got)
				}
				return
			}
			if got := e.list(t, "out"); len(got) != 1 || got[0] != uuid {
				t.Fatalf("egress = %v, want [%s]; dead letters: %v", got, uuid, e.list(t, queue.DLQKey("in")))
			}
			want := "kept in " + tc.from
			// Re-cached in Redis, with a TTL (then pushed on to egress,
			// so it keeps at least the queued retention).
			b, err := e.bodies.Get(ctx, uuid)
			if err != nil {
				t.Fatalf("body not re-cached in Redis: %v", err)
			}
			v, err := vcon.Parse(b.Data)
			if err != nil {
				t.Fatal(err)
			}
			if got := v.String("subject"); got != want {
				t.Errorf("subject = %q, want %q (read from the wrong storage)", got, want)
			}
			if _, ok := vcon.Tag(v, "team"); !ok {
				t.Error("the chain's link did not run on the read-back body")
			}
			if b.PTTL <= 0 {
				t.Errorf("re-cached body TTL = %s, want one", b.PTTL)
			}
			files, _ := filepath.Glob(filepath.Join(dir, "*", "*", "*", uuid+".json"))
			if len(files) != 1 {
				t.Errorf("chain's own storage holds %d files for the vCon, want 1", len(files))
			}
		})
	}
}
