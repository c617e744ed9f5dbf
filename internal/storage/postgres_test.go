package storage

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/vcon-operator/vcon-operator/internal/testenv"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func postgresOptions(pg *testenv.Postgres, table string) map[string]any {
	return map[string]any{
		"database":   pg.Database,
		"user":       pg.User,
		"password":   pg.Password,
		"host":       pg.Host,
		"port":       pg.Port,
		"table_name": table,
	}
}

func newPostgres(t *testing.T, opts map[string]any) *postgresStorage {
	t.Helper()
	s, err := New(context.Background(), "pg", "storage.postgres", opts, Deps{})
	if err != nil {
		t.Fatalf("build storage.postgres: %v", err)
	}
	t.Cleanup(func() { _ = s.(Closer).Close() })
	return s.(*postgresStorage)
}

func tableExists(t *testing.T, conn *pgx.Conn, table string) bool {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), `SELECT count(*) FROM pg_tables WHERE tablename = $1`, table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("not JSON: %s", a)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("not JSON: %s", b)
	}
	return reflect.DeepEqual(x, y)
}

type pgRow struct {
	id, version, uuid, subject, vconJSON string
	createdAt                            time.Time
	updatedAt                            time.Time
}

func readRows(t *testing.T, conn *pgx.Conn, table string) []pgRow {
	t.Helper()
	rows, err := conn.Query(context.Background(), `SELECT id::text, vcon, uuid::text, coalesce(subject, '<null>'), vcon_json::text, created_at, updated_at FROM `+
		pgx.Identifier{table}.Sanitize())
	if err != nil {
		t.Fatalf("read %s: %v", table, err)
	}
	var out []pgRow
	for rows.Next() {
		var r pgRow
		if err := rows.Scan(&r.id, &r.version, &r.uuid, &r.subject, &r.vconJSON, &r.createdAt, &r.updatedAt); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestPostgresStorage(t *testing.T) {
	pg := testenv.StartPostgres(t)
	conn := pg.Conn()
	ctx := context.Background()
	const uuid = "0190d6f0-1c2d-7a00-8000-0000000000a1"

	t.Run("table is created lazily with conserver's schema", func(t *testing.T) {
		s := newPostgres(t, postgresOptions(pg, "vcons"))
		if tableExists(t, conn, "vcons") {
			t.Fatal("table exists before first use")
		}
		if err := s.Save(ctx, testVCon(t, uuid, "2024-03-06T01:30:00+05:00", "first")); err != nil {
			t.Fatalf("Save: %v", err)
		}
		rows, err := conn.Query(ctx, `SELECT column_name, data_type, is_nullable FROM information_schema.columns
WHERE table_name = 'vcons' ORDER BY ordinal_position`)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for rows.Next() {
			var name, typ, nullable string
			if err := rows.Scan(&name, &typ, &nullable); err != nil {
				t.Fatal(err)
			}
			got = append(got, name+" "+typ+" "+nullable)
		}
		want := []string{
			"id uuid NO", "vcon text NO", "uuid uuid NO",
			"created_at timestamp without time zone NO", "updated_at timestamp without time zone YES",
			"subject text YES", "vcon_json jsonb YES",
		}
		if strings.Join(got, ", ") != strings.Join(want, ", ") {
			t.Errorf("columns = %v\nwant      %v", got, want)
		}
		var pk string
		if err := conn.QueryRow(ctx, `SELECT a.attname FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = 'vcons'::regclass AND i.indisprimary`).Scan(&pk); err != nil || pk != "id" {
			t.Errorf("primary key = %q (%v), want id", pk, err)
		}
	})

	t.Run("upsert writes one row with the later content", func(t *testing.T) {
		s := newPostgres(t, postgresOptions(pg, "upserts"))
		first := testVCon(t, uuid, "2024-03-06T01:30:00+05:00", "first")
		later := testVCon(t, uuid, "2024-03-06T01:30:00+05:00", "later")
		later.Doc()["dialog"] = []any{map[string]any{"type": "text", "body": "hi"}}
		for _, v := range []*vcon.VCon{first, later, later} { // the last one is a redelivery
			if err := s.Save(ctx, v); err != nil {
				t.Fatalf("Save: %v", err)
			}
		}
		rows := readRows(t, conn, "upserts")
		if len(rows) != 1 {
			t.Fatalf("rows = %d, want 1", len(rows))
		}
		r := rows[0]
		want, _ := later.Marshal()
		if r.id != uuid || r.uuid != uuid || r.version != "0.4.0" || r.subject != "later" || !sameJSON(t, []byte(r.vconJSON), want) {
			t.Errorf("row = %+v, want id=uuid=%s vcon=0.4.0 subject=later vcon_json=%s", r, uuid, want)
		}
		// The column has no zone: it holds the instant in UTC.
		if wantAt := time.Date(2024, 3, 5, 20, 30, 0, 0, time.UTC); !r.createdAt.Equal(wantAt) {
			t.Errorf("created_at = %v, want %v", r.createdAt, wantAt)
		}
		if time.Since(r.updatedAt) > time.Minute || time.Since(r.updatedAt) < -time.Minute {
			t.Errorf("updated_at = %v, want about now (UTC)", r.updatedAt)
		}
		got, err := s.Get(ctx, uuid)
		if err != nil || !sameJSON(t, got, want) {
			t.Errorf("Get = %s, %v; want %s", got, err, want)
		}
		if err := s.Delete(ctx, uuid); err != nil {
			t.Fatalf("Delete: %v", err)
		}
		if _, err := s.Get(ctx, uuid); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get after Delete: err = %v, want ErrNotFound", err)
		}
	})

	t.Run("columns from the document", func(t *testing.T) {
		tests := []struct {
			name        string
			egress      string
			createdAt   string
			subject     string
			wantVersion string
			wantSubject string
			wantKey     string // a top-level key vcon_json must have
			wantCreated func(time.Time) bool
		}{
			{"current format", "", "2024-01-02T03:04:05Z", "s", "0.4.0", "s", "amended",
				func(at time.Time) bool { return at.Equal(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)) }},
			{"EGRESS_FORMAT_VERSION=0.0.1", "0.0.1", "2024-01-02T03:04:05Z", "", "0.0.1", "<null>", "appended",
				func(at time.Time) bool { return at.Equal(time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)) }},
			{"unparsable created_at falls back to now", "", "not a date", "", "0.4.0", "<null>", "amended",
				func(at time.Time) bool { return time.Since(at).Abs() < time.Minute }},
		}
		for i, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				t.Setenv("EGRESS_FORMAT_VERSION", tc.egress)
				table := "columns_" + string(rune('a'+i))
				s := newPostgres(t, postgresOptions(pg, table))
				if err := s.Save(ctx, testVCon(t, uuid, tc.createdAt, tc.subject)); err != nil {
					t.Fatalf("Save: %v", err)
				}
				rows := readRows(t, conn, table)
				if len(rows) != 1 {
					t.Fatalf("rows = %d, want 1", len(rows))
				}
				r := rows[0]
				var doc map[string]any
				if err := json.Unmarshal([]byte(r.vconJSON), &doc); err != nil {
					t.Fatal(err)
				}
				if r.version != tc.wantVersion || doc["vcon"] != tc.wantVersion || r.subject != tc.wantSubject || doc[tc.wantKey] == nil || !tc.wantCreated(r.createdAt) {
					t.Errorf("row = %+v, want vcon=%s subject=%s, key %q in vcon_json", r, tc.wantVersion, tc.wantSubject, tc.wantKey)
				}
			})
		}
	})

	t.Run("CREATE runs once per storage, not on every Save", func(t *testing.T) {
		s := newPostgres(t, postgresOptions(pg, "once"))
		if err := s.Save(ctx, testVCon(t, uuid, "", "")); err != nil {
			t.Fatalf("Save: %v", err)
		}
		if _, err := conn.Exec(ctx, `DROP TABLE "once"`); err != nil {
			t.Fatal(err)
		}
		if err := s.Save(ctx, testVCon(t, uuid, "", "")); err == nil {
			t.Fatal("Save after DROP TABLE succeeded: the table was created again")
		}
		// A new storage (a restarted worker) creates it again.
		if err := newPostgres(t, postgresOptions(pg, "once")).Save(ctx, testVCon(t, uuid, "", "")); err != nil {
			t.Fatalf("Save from a new storage: %v", err)
		}
	})

	t.Run("non-UUID ids", func(t *testing.T) {
		s := newPostgres(t, postgresOptions(pg, "vcons"))
		if err := s.Save(ctx, testVCon(t, "not-a-uuid", "", "")); err == nil || !strings.Contains(err.Error(), "not a UUID") {
			t.Errorf("Save: err = %v, want a not-a-UUID error", err)
		}
		if _, err := s.Get(ctx, "not-a-uuid"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get: err = %v, want ErrNotFound", err)
		}
	})

	t.Run("a stopped server fails Save, a restarted one takes it", func(t *testing.T) {
		warm := newPostgres(t, postgresOptions(pg, "outage"))
		if err := warm.Save(ctx, testVCon(t, uuid, "", "before")); err != nil {
			t.Fatalf("Save: %v", err)
		}
		pg.Stop()
		restarted := false
		defer func() {
			if !restarted {
				pg.Start()
			}
		}()
		// Built while the server is down: construction must not need it.
		cold := newPostgres(t, postgresOptions(pg, "outage_cold"))
		for name, s := range map[string]*postgresStorage{"warm": warm, "cold": cold} {
			sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			err := s.Save(sctx, testVCon(t, uuid, "", "during"))
			cancel()
			if err == nil {
				t.Fatalf("%s Save with the server stopped succeeded", name)
			}
			if strings.Contains(err.Error(), pg.Password) {
				t.Errorf("%s Save error reveals the password: %v", name, err)
			}
		}
		pg.Start()
		restarted = true
		for name, s := range map[string]*postgresStorage{"warm": warm, "cold": cold} {
			if err := s.Save(ctx, testVCon(t, uuid, "", "after")); err != nil {
				t.Fatalf("%s Save after restart: %v", name, err)
			}
		}
		conn := pg.Conn()
		for _, table := range []string{"outage", "outage_cold"} {
			if rows := readRows(t, conn, table); len(rows) != 1 || rows[0].subject != "after" {
				t.Errorf("%s rows = %+v, want one with subject after", table, rows)
			}
		}
	})
}

func TestPostgresBadOptions(t *testing.T) {
	full := func() map[string]any {
		return map[string]any{"database": "d", "user": "u", "password": "secret-pw", "host": "127.0.0.1", "port": 5432}
	}
	tests := []struct {
		name    string
		change  func(map[string]any)
		wantKey string
	}{
		{"database missing", func(o map[string]any) { delete(o, "database") }, "database"},
		{"user missing", func(o map[string]any) { delete(o, "user") }, "user"},
		{"password missing", func(o map[string]any) { delete(o, "password") }, "password"},
		{"host missing", func(o map[string]any) { delete(o, "host") }, "host"},
		{"port missing", func(o map[string]any) { delete(o, "port") }, "port"},
		{"port not a number", func(o map[string]any) { o["port"] = "pg" }, "port"},
		{"port out of range", func(o map[string]any) { o["port"] = 70000 }, "port"},
		{"table_name injection", func(o map[string]any) { o["table_name"] = `vcons"; DROP TABLE x; --` }, "table_name"},
		{"table_name with a dot", func(o map[string]any) { o["table_name"] = "public.vcons" }, "table_name"},
		{"table_name empty", func(o map[string]any) { o["table_name"] = "" }, "table_name"},
		{"table_name not a string", func(o map[string]any) { o["table_name"] = 1 }, "table_name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			opts := full()
			tc.change(opts)
			_, err := New(context.Background(), "pg", "storage.postgres", opts, Deps{})
			if err == nil || !strings.Contains(err.Error(), `"`+tc.wantKey+`"`) {
				t.Fatalf("err = %v, want one naming %q", err, tc.wantKey)
			}
			if strings.Contains(err.Error(), "secret-pw") {
				t.Errorf("error reveals the password: %v", err)
			}
		})
	}
	t.Run("nil options name every required key", func(t *testing.T) {
		_, err := New(context.Background(), "pg", "storage.postgres", nil, Deps{})
		for _, key := range []string{"database", "user", "password", "host", "port"} {
			if err == nil || !strings.Contains(err.Error(), `"`+key+`"`) {
				t.Errorf("err = %v, want it to name %q", err, key)
			}
		}
	})
}
