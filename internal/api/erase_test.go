package api

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/apiwire"
	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/storage"
	"github.com/vcon-operator/vcon-operator/internal/testenv"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// erasureEnv is an API with a config file naming real storages (file,
// PostgreSQL, FerretDB) and a chain, so that an erasure has every kind of
// place to reach.
type erasureEnv struct {
	h        *harness
	storages map[string]storage.Storage // built from the same options as the API's
}

type storageSpec struct{ name, module, options string }

func newErasureEnv(t *testing.T, specs ...storageSpec) *erasureEnv {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("storages:\n")
	for _, s := range specs {
		fmt.Fprintf(&b, "  %s:\n    module: %s\n    options: %s\n", s.name, s.module, s.options)
	}
	b.WriteString("chains:\n  main:\n    links: []\n    ingress_lists: [in]\n    egress_lists: [out]\n")
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	e := &erasureEnv{h: newHarness(t, func(o *Options) { o.ConfigFile = cfg }), storages: map[string]storage.Storage{}}
	got := e.h.srv.config.get(context.Background())
	for _, ns := range got.storages {
		e.storages[ns.Name] = ns.Storage
	}
	return e
}

func fileSpec(t *testing.T) storageSpec {
	return storageSpec{"files", "storage.file", fmt.Sprintf("{path: %s}", filepath.Join(t.TempDir(), "vcons"))}
}

func postgresSpec(pg *testenv.Postgres, name, table string) storageSpec {
	return storageSpec{name, "storage.postgres", fmt.Sprintf("{host: %s, port: %d, user: %s, password: %s, database: %s, table_name: %s}",
		pg.Host, pg.Port, pg.User, pg.Password, pg.Database, table)}
}

func mongoSpec(m *testenv.Mongo, collection string) storageSpec {
	return storageSpec{"mongo", "storage.mongo", fmt.Sprintf("{url: %q, collection: %s}", m.URL, collection)}
}

// partyVcon is testVcon with the first party's tel set to tel.
func partyVcon(t *testing.T, uuid, tel string) *vcon.VCon {
	t.Helper()
	v, err := vcon.Parse([]byte(strings.Replace(testVcon(uuid), "+15551234567", tel, 1)))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// seed posts the vCon through the API (body, listing, party index), saves
// it to the named storages, and queues it on the chain's ingress and DLQ.
func (e *erasureEnv) seed(t *testing.T, v *vcon.VCon, inRedis bool, storages ...string) {
	t.Helper()
	ctx := context.Background()
	if inRedis {
		body, _ := v.Marshal()
		mustStatus(t, e.h.doJSON("POST", "/api/vcon", string(body)), http.StatusCreated)
		e.h.rdb.RPush(ctx, "in", v.UUID())
		e.h.rdb.RPush(ctx, queue.DLQKey("in"), v.UUID())
		e.h.rdb.HSet(ctx, queue.DLQReasonsKey("in"), v.UUID(), "link_error")
		e.h.rdb.ZAdd(ctx, queue.RetryKey("in"), redis.Z{Score: 1, Member: v.UUID()})
	}
	for _, name := range storages {
		if err := e.storages[name].Save(ctx, v); err != nil {
			t.Fatalf("save to %s: %v", name, err)
		}
	}
}

// held says where a copy of uuid is left: "redis", storage names, and
// "index"/"queue" for Redis sets and lists that still name it.
func (e *erasureEnv) held(t *testing.T, uuid string) []string {
	t.Helper()
	ctx := context.Background()
	var out []string
	if e.h.rdb.Exists(ctx, "vcon:"+uuid).Val() == 1 {
		out = append(out, "redis")
	}
	for _, k := range []string{"tel:+15551234567", "mailto:bob@example.com", "name:Alice"} {
		if e.h.rdb.SIsMember(ctx, k, uuid).Val() {
			out = append(out, "index")
			break
		}
	}
	if _, err := e.h.rdb.ZScore(ctx, "vcons", "vcon:"+uuid).Result(); err == nil {
		out = append(out, "listing")
	}
	for _, l := range []string{"in", "out", queue.DLQKey("in")} {
		if slices.Contains(e.h.rdb.LRange(ctx, l, 0, -1).Val(), uuid) {
			out = append(out, "queue")
			break
		}
	}
	if e.h.rdb.ZScore(ctx, queue.RetryKey("in"), uuid).Err() == nil {
		out = append(out, "retry")
	}
	if e.h.rdb.HExists(ctx, queue.DLQReasonsKey("in"), uuid).Val() {
		out = append(out, "dlq-reason")
	}
	names := make([]string, 0, len(e.storages))
	for n := range e.storages {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if g, ok := e.storages[n].(storage.Getter); ok {
			if _, err := g.Get(ctx, uuid); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}

func statuses(rep apiwire.ErasureReport) map[string]string {
	out := map[string]string{"redis": rep.Redis.Status}
	for _, s := range rep.Storages {
		out[s.Name] = s.Status
	}
	return out
}

// closedPort is a local port nothing listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	_ = l.Close()
	return port
}

// TestDeleteReportsWhatWasErased: DELETE /api/vcon/{uuid} erases the vCon
// everywhere it can and says, per place, what it did.
func TestDeleteReportsWhatWasErased(t *testing.T) {
	pg := testenv.StartPostgres(t)
	mongo := testenv.StartMongo(t)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	t.Cleanup(hook.Close)
	downPort := closedPort(t)

	tests := []struct {
		name     string
		specs    func(t *testing.T, i int) []storageSpec
		seed     bool
		held     bool // a worker has the vCon in flight
		accept   string
		code     int
		statuses map[string]string // nil: no body expected
		complete bool
	}{
		{
			name: "erased everywhere, conserver's client: 204 as conserver",
			specs: func(t *testing.T, i int) []storageSpec {
				return []storageSpec{fileSpec(t), postgresSpec(pg, "pg", "t"+strconv.Itoa(i)), mongoSpec(mongo, "c"+strconv.Itoa(i))}
			},
			seed: true, code: http.StatusNoContent,
		},
		{
			name: "erased everywhere, report asked for",
			specs: func(t *testing.T, i int) []storageSpec {
				return []storageSpec{fileSpec(t), postgresSpec(pg, "pg", "t"+strconv.Itoa(i)), mongoSpec(mongo, "c"+strconv.Itoa(i))}
			},
			seed: true, accept: "application/json", code: http.StatusOK, complete: true,
			statuses: map[string]string{"redis": apiwire.Erased, "files": apiwire.Erased, "pg": apiwire.Erased, "mongo": apiwire.Erased},
		},
		{
			name: "nothing to erase: absent everywhere",
			specs: func(t *testing.T, i int) []storageSpec {
				return []storageSpec{fileSpec(t), postgresSpec(pg, "pg", "t"+strconv.Itoa(i)), mongoSpec(mongo, "c"+strconv.Itoa(i))}
			},
			accept: "text/html, application/json;q=0.9", code: http.StatusOK, complete: true,
			statuses: map[string]string{"redis": apiwire.Absent, "files": apiwire.Absent, "pg": apiwire.Absent, "mongo": apiwire.Absent},
		},
		{
			name: "a webhook cannot erase: 200 with the report, even for conserver's client",
			specs: func(t *testing.T, i int) []storageSpec {
				return []storageSpec{fileSpec(t), {"hook", "storage.webhook", fmt.Sprintf("{webhook-urls: [%q]}", hook.URL)}}
			},
			seed: true, code: http.StatusOK, complete: true,
			statuses: map[string]string{"redis": apiwire.Erased, "files": apiwire.Erased, "hook": apiwire.Unsupported},
		},
		{
			name: "a storage that is down: retried, then 500 with the report",
			specs: func(t *testing.T, i int) []storageSpec {
				down := postgresSpec(pg, "pg", "t")
				down.options = strings.Replace(down.options, "port: "+strconv.Itoa(pg.Port), "port: "+strconv.Itoa(downPort), 1)
				return []storageSpec{fileSpec(t), down}
			},
			seed: true, code: http.StatusInternalServerError,
			statuses: map[string]string{"redis": apiwire.Erased, "files": apiwire.Erased, "pg": apiwire.Failed},
		},
		{
			name:  "a worker holds the vCon: erased, but 500 until erased again",
			specs: func(t *testing.T, i int) []storageSpec { return []storageSpec{fileSpec(t)} },
			seed:  true, held: true, code: http.StatusInternalServerError,
			statuses: map[string]string{"redis": apiwire.Failed, "files": apiwire.Erased},
		},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newErasureEnv(t, tc.specs(t, i)...)
			const uuid = "018f1c1e-8d2a-7c3e-9a55-1f2e3d4c5b60"
			if tc.seed {
				// Copies go to every storage that keeps them, but not to
				// the one that is down.
				var names []string
				for n, st := range e.storages {
					if _, keeps := st.(storage.Getter); keeps && (n != "pg" || tc.code != http.StatusInternalServerError) {
						names = append(names, n)
					}
				}
				e.seed(t, partyVcon(t, uuid, "+15551234567"), true, names...)
				other := partyVcon(t, "018f1c1e-8d2a-7c3e-9a55-1f2e3d4c5b61", "+15551234567")
				e.seed(t, other, true, names...)
			}
			if tc.held {
				ctx := context.Background()
				e.h.rdb.ZAdd(ctx, queue.WorkersKey("in"), redis.Z{Score: 1, Member: "w1"})
				e.h.rdb.RPush(ctx, queue.InFlightKey("in", "w1"), "018f1c1e-8d2a-7c3e-9a55-1f2e3d4c5b69", uuid)
			}
			var opts []reqOpt
			if tc.accept != "" {
				opts = append(opts, withHeader("Accept", tc.accept))
			}
			rec := e.h.doJSON("DELETE", "/api/vcon/"+uuid, "", opts...)
			mustStatus(t, rec, tc.code)
			if tc.statuses == nil {
				if rec.Body.Len() != 0 {
					t.Errorf("204 with a body: %s", rec.Body.String())
				}
			} else {
				rep := decode[apiwire.ErasureReport](t, rec)
				if got := statuses(rep); !mapsEqual(got, tc.statuses) || rep.Complete != tc.complete || rep.UUID != uuid {
					t.Errorf("report %s, want %v complete %v", rec.Body.String(), tc.statuses, tc.complete)
				}
				if tc.held && !strings.Contains(rep.Redis.Reason, "erase again after the chain's timeout") {
					t.Errorf("held vCon reported %+v", rep.Redis)
				}
				for _, s := range rep.Storages {
					if s.Status == apiwire.Failed && (s.Attempts != erasePolicy.Retries+1+erasePolicy.Retries+1 || s.Reason == "") {
						t.Errorf("failed storage %+v: want %d attempts (read and delete, each retried) and a reason", s, 2*(erasePolicy.Retries+1))
					}
				}
				if tc.seed && tc.complete && (rep.IndexesRemoved < 4 || rep.QueueEntriesRemoved != 3) {
					t.Errorf("indexes removed %d (want the listing and 3 party sets), queue entries %d (want ingress, DLQ and retry)", rep.IndexesRemoved, rep.QueueEntriesRemoved)
				}
			}
			if left := e.held(t, uuid); len(left) != 0 {
				t.Errorf("left after erasure: %v", left)
			}
			if tc.seed {
				// Another vCon of the same party is not touched.
				if left := e.held(t, "018f1c1e-8d2a-7c3e-9a55-1f2e3d4c5b61"); !slices.Contains(left, "redis") || !slices.Contains(left, "index") || !slices.Contains(left, "queue") {
					t.Errorf("another vCon lost copies: held in %v", left)
				}
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// TestErasePartyFindsEveryVcon: POST /api/vcons/erase finds a party's
// vCons through the Redis party index and through the storages that can
// search (PostgreSQL, FerretDB), including those whose Redis body and
// index entry are gone, and erases each.
func TestErasePartyFindsEveryVcon(t *testing.T) {
	pg := testenv.StartPostgres(t)
	mongo := testenv.StartMongo(t)
	e := newErasureEnv(t, fileSpec(t), postgresSpec(pg, "pg", "party"), mongoSpec(mongo, "party"))
	const (
		tel      = "+15551234567"
		inRedis  = "018f1c1e-8d2a-7c3e-9a55-1f2e3d4c5b70" // API, index, every storage
		onlyPG   = "018f1c1e-8d2a-7c3e-9a55-1f2e3d4c5b71" // Redis body expired: only in PostgreSQL
		onlyMgo  = "018f1c1e-8d2a-7c3e-9a55-1f2e3d4c5b72" // only in FerretDB, and the file storage
		stranger = "018f1c1e-8d2a-7c3e-9a55-1f2e3d4c5b73" // another party
	)
	e.seed(t, partyVcon(t, inRedis, tel), true, "files", "pg", "mongo")
	e.seed(t, partyVcon(t, onlyPG, tel), false, "pg")
	e.seed(t, partyVcon(t, onlyMgo, tel), false, "mongo", "files")
	e.seed(t, partyVcon(t, stranger, "+15550000000"), true, "files", "pg", "mongo")

	t.Run("refused requests", func(t *testing.T) {
		for _, body := range []string{`{}`, `{"tel": "` + tel + `", "mailto": "bob@example.com"}`, `{"phone": "1"}`, `["` + tel + `"]`} {
			mustStatus(t, e.h.doJSON("POST", "/api/vcons/erase", body), http.StatusUnprocessableEntity)
		}
		if left := e.held(t, inRedis); !slices.Contains(left, "redis") {
			t.Fatalf("a refused request erased: held in %v", left)
		}
	})

	rec := e.h.doJSON("POST", "/api/vcons/erase", `{"tel": "`+tel+`"}`)
	mustStatus(t, rec, http.StatusOK)
	rep := decode[apiwire.PartyErasureReport](t, rec)
	var got []string
	for _, v := range rep.VCons {
		got = append(got, v.UUID)
		if !v.Complete {
			t.Errorf("%s not erased: %+v", v.UUID, v)
		}
	}
	if want := []string{inRedis, onlyPG, onlyMgo}; !rep.Complete || !slices.Equal(got, want) {
		t.Errorf("erased %v complete %v, want %v: %s", got, rep.Complete, want, rec.Body.String())
	}
	searched := map[string]string{}
	for _, s := range rep.Searched {
		searched[s.Name] = fmt.Sprintf("%s %d", s.Status, s.Found)
	}
	if searched["redis party index"] != "searched 1" || searched["pg"] != "searched 2" || searched["mongo"] != "searched 2" || searched["files"] != "unsupported 0" {
		t.Errorf("searched %v", searched)
	}
	for _, u := range []string{inRedis, onlyPG, onlyMgo} {
		if left := e.held(t, u); len(left) != 0 {
			t.Errorf("%s left in %v", u, left)
		}
	}
	if left := e.held(t, stranger); len(left) < 5 {
		t.Errorf("another party's vCon lost copies: held in %v", left)
	}
	if strings.Contains(rec.Body.String(), tel) {
		t.Error("the answer repeats the party identifier")
	}
}
