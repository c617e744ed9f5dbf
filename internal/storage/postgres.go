package storage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func init() { Register("storage.postgres", newPostgresStorage) }

// safeIdentifier is what table_name may be. It is quoted anyway; the
// restriction keeps a config typo from creating a table nobody can find
// without quoting.
var safeIdentifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

var uuidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$`)

// postgresStorage writes conserver's table, so that the reports and
// consumers people run against it keep working after the move.
type postgresStorage struct {
	pool   *pgxpool.Pool
	table  string // quoted
	create onceUntilSuccess

	upsert, get, del string
}

func newPostgresStorage(_ context.Context, _ string, raw map[string]any, _ Deps) (Storage, error) {
	o := options.New(raw)
	database := o.Required("database")
	user := o.Required("user")
	password := o.Required("password")
	host := o.Required("host")
	port := o.Required("port")
	table := o.String("table_name", "vcons")
	if n, err := strconv.Atoi(port); port != "" && (err != nil || n < 1 || n > 65535) {
		o.Fail("port", "a TCP port number")
	}
	if !safeIdentifier.MatchString(table) {
		o.Fail("table_name", "letters, digits and _ (not starting with a digit, at most 63)")
	}
	if err := o.Err(); err != nil {
		return nil, err
	}
	dsn := url.URL{
		Scheme: "postgres",
		User:   url.UserPassword(user, password),
		Host:   net.JoinHostPort(host, port),
		Path:   "/" + database,
	}
	cfg, err := pgxpool.ParseConfig(dsn.String())
	if err != nil {
		// The parse error could quote the URL, password included.
		return nil, fmt.Errorf("build connection settings for %s@%s/%s: invalid", user, net.JoinHostPort(host, port), database)
	}
	// Construction must not wait for a server that is down: connections are
	// made on first use, and a down server surfaces as a Save error.
	cfg.ConnConfig.ConnectTimeout = 10 * time.Second
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s@%s/%s: %w", user, net.JoinHostPort(host, port), database, err)
	}
	q := pgx.Identifier{table}.Sanitize()
	return &postgresStorage{
		pool:  pool,
		table: q,
		upsert: `INSERT INTO ` + q + ` ("id", "vcon", "uuid", "created_at", "updated_at", "subject", "vcon_json")
VALUES ($1, $2, $1, $3, $4, $5, $6)
ON CONFLICT ("id") DO UPDATE SET "vcon" = EXCLUDED."vcon", "uuid" = EXCLUDED."uuid",
  "created_at" = EXCLUDED."created_at", "updated_at" = EXCLUDED."updated_at",
  "subject" = EXCLUDED."subject", "vcon_json" = EXCLUDED."vcon_json"`,
		get: `SELECT "vcon_json"::text FROM ` + q + ` WHERE "id" = $1`,
		del: `DELETE FROM ` + q + ` WHERE "id" = $1`,
	}, nil
}

// ensureTable creates conserver's table when it is missing. It runs on first
// use rather than at construction so that a database that is down when the
// worker starts only delays the first write.
func (s *postgresStorage) ensureTable(ctx context.Context) error {
	return s.create.do(func() error {
		_, err := s.pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+s.table+` (
  "id" UUID PRIMARY KEY,
  "vcon" TEXT NOT NULL,
  "uuid" UUID NOT NULL,
  "created_at" TIMESTAMP NOT NULL,
  "updated_at" TIMESTAMP,
  "subject" TEXT,
  "vcon_json" JSONB
)`)
		if err != nil {
			return fmt.Errorf("create table %s: %w", s.table, err)
		}
		return nil
	})
}

func (s *postgresStorage) Save(ctx context.Context, v *vcon.VCon) error {
	uuid := v.UUID()
	if !uuidPattern.MatchString(uuid) {
		return Permanent(fmt.Errorf("vcon uuid %q is not a UUID, which the id column requires", uuid))
	}
	if err := s.ensureTable(ctx); err != nil {
		return err
	}
	doc := egressShape(v)
	body, err := doc.Marshal()
	if err != nil {
		return Permanent(fmt.Errorf("encode vcon %s: %w", uuid, err))
	}
	now := time.Now().UTC()
	// The column has no zone, so every row holds UTC: rows written from
	// producers in different offsets must compare and sort correctly.
	createdAt := now
	if t, ok := vcon.CreatedAt(v); ok {
		createdAt = t.UTC()
	}
	var subject *string
	// A signed or encrypted vCon's version, created_at and subject are
	// inside its payload, which a storage neither verifies nor opens: the
	// row has an empty version, the time of writing and no subject, and
	// the document whole in vcon_json.
	if s, ok := v.Doc()["subject"].(string); ok {
		subject = &s
	}
	if _, err := s.pool.Exec(ctx, s.upsert, uuid, doc.String("vcon"), createdAt, now, subject, string(body)); err != nil {
		err = fmt.Errorf("upsert vcon %s into %s: %w", uuid, s.table, err)
		if postgresRefusesData(err) {
			return Permanent(err)
		}
		return err
	}
	return nil
}

// postgresRefusesData reports whether the server refused the row itself:
// SQLSTATE class 22 (data exception: a NUL byte in text, a value out of
// range) or 23 (integrity constraint violation). The same row is refused
// again on every retry. Connection and server-side failures (classes 08,
// 53, 57, ...) are not, and neither are errors without a SQLSTATE.
func postgresRefusesData(err error) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && (strings.HasPrefix(pgErr.Code, "22") || strings.HasPrefix(pgErr.Code, "23"))
}

func (s *postgresStorage) Get(ctx context.Context, uuid string) ([]byte, error) {
	if !uuidPattern.MatchString(uuid) {
		return nil, ErrNotFound // the id column cannot hold it
	}
	if err := s.ensureTable(ctx); err != nil {
		return nil, err
	}
	var body string
	err := s.pool.QueryRow(ctx, s.get, uuid).Scan(&body)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read vcon %s from %s: %w", uuid, s.table, err)
	}
	if v, err := vcon.Parse([]byte(body)); err == nil && v.Secured() {
		// jsonb keeps the signed form's members, not its layout: give it
		// back in the encoding links.sign writes, which is then the
		// document as signed, byte for byte.
		return vcon.Canonical(v)
	}
	return []byte(body), nil
}

func (s *postgresStorage) Delete(ctx context.Context, uuid string) error {
	if !uuidPattern.MatchString(uuid) {
		return nil
	}
	if err := s.ensureTable(ctx); err != nil {
		return err
	}
	if _, err := s.pool.Exec(ctx, s.del, uuid); err != nil {
		return fmt.Errorf("delete vcon %s from %s: %w", uuid, s.table, err)
	}
	return nil
}

func (s *postgresStorage) Close() error {
	s.pool.Close()
	return nil
}

// onceUntilSuccess runs a function until it first succeeds; unlike
// sync.Once, a failure (the database is down) lets the next caller try
// again. Callers wait for a running attempt rather than start their own.
type onceUntilSuccess struct {
	mu   sync.Mutex
	done atomic.Bool // read without the lock on every Save after the first
}

func (o *onceUntilSuccess) do(f func() error) error {
	if o.done.Load() {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.done.Load() {
		return nil
	}
	if err := f(); err != nil {
		return err
	}
	o.done.Store(true)
	return nil
}

// SearchParty finds the vCons with a party whose tel or mailto is value,
// by JSONB containment on the stored document's parties.
func (s *postgresStorage) SearchParty(ctx context.Context, field, value string) ([]string, error) {
	probe, err := partyProbe(field, value)
	if err != nil {
		return nil, err
	}
	if err := s.ensureTable(ctx); err != nil {
		return nil, err
	}
	rows, err := s.pool.Query(ctx, `SELECT "id"::text FROM `+s.table+` WHERE "vcon_json"->'parties' @> $1::jsonb`, probe)
	if err != nil {
		return nil, fmt.Errorf("search %s by party %s: %w", s.table, field, err)
	}
	uuids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("search %s by party %s: %w", s.table, field, err)
	}
	return uuids, nil
}

// partyProbe is the JSON array a party search contains: [{field: value}].
func partyProbe(field, value string) (string, error) {
	if field != "tel" && field != "mailto" {
		return "", Permanent(fmt.Errorf("cannot search by party field %q: want tel or mailto", field))
	}
	b, err := json.Marshal([]map[string]string{{field: value}})
	return string(b), err
}
