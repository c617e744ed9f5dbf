package storage

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/redis/go-redis/v9"

	"github.com/vcon-operator/vcon-operator/internal/testenv"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// Which storage errors are permanent: the pipeline dead-letters those at
// once instead of retrying a write that will fail the same way again.

// unencodable is a vCon that no storage can write: JSON has no NaN.
func unencodable(uuid string) *vcon.VCon {
	v := vcon.New(uuid)
	v.Doc()["x_score"] = math.NaN()
	return v
}

// closedAddr is a TCP address nothing listens on.
func closedAddr(t *testing.T) (host string, port int) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().(*net.TCPAddr)
	_ = l.Close()
	return addr.IP.String(), addr.Port
}

func TestPermanentMarker(t *testing.T) {
	base := errors.New("too big")
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"plain", base, false},
		{"nil", Permanent(nil), false},
		{"marked", Permanent(base), true},
		{"marked and wrapped", fmt.Errorf("storage files: %w", Permanent(base)), true},
		{"joined with a transient error", errors.Join(errors.New("down"), Permanent(base)), true},
		{"context error", context.Canceled, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsPermanent(tc.err); got != tc.want {
				t.Errorf("IsPermanent(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
	if err := Permanent(base); !errors.Is(err, base) || err.Error() != base.Error() {
		t.Errorf("Permanent(%v) = %v, want the same text, wrapping it", base, err)
	}
}

func TestPermanentStatus(t *testing.T) {
	tests := []struct {
		code int
		want bool
	}{
		{400, true}, {401, true}, {403, true}, {404, true}, {409, true}, {413, true}, {422, true},
		{408, false}, {429, false}, // the server asks to be tried again
		{200, false}, {304, false}, {500, false}, {502, false}, {503, false}, {504, false},
	}
	for _, tc := range tests {
		if got := permanentStatus(tc.code); got != tc.want {
			t.Errorf("permanentStatus(%d) = %v, want %v", tc.code, got, tc.want)
		}
	}
}

func TestFilePermanentErrors(t *testing.T) {
	tests := []struct {
		name    string
		opts    map[string]any
		prepare func(t *testing.T, root string)
		ctx     func() context.Context
		v       *vcon.VCon
		want    bool
	}{
		{name: "over max_file_size", opts: map[string]any{"max_file_size": 10}, v: testVCon(t, fileUUID, "", ""), want: true},
		{name: "uuid that is no file name", v: testVCon(t, "a/b", "", ""), want: true},
		{name: "uuid too long for a file name", v: testVCon(t, strings.Repeat("u", 250), "", ""), want: true},
		{name: "unencodable", v: unencodable(fileUUID), want: true},
		{
			name: "directory in the way", opts: map[string]any{"organize_by_date": false}, v: testVCon(t, fileUUID, "", ""),
			prepare: func(t *testing.T, root string) {
				if err := os.MkdirAll(filepath.Join(root, fileUUID+".json", "x"), 0o755); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "path not writable yet (a file where the directory goes)", v: testVCon(t, fileUUID, "2024-03-05T10:00:00Z", ""),
			prepare: func(t *testing.T, root string) {
				if err := os.WriteFile(filepath.Join(root, "2024"), nil, 0o644); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "request ended", v: testVCon(t, fileUUID, "", ""),
			ctx: func() context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			if tc.prepare != nil {
				tc.prepare(t, root)
			}
			opts := map[string]any{"path": root}
			for k, v := range tc.opts {
				opts[k] = v
			}
			ctx := context.Background()
			if tc.ctx != nil {
				ctx = tc.ctx()
			}
			err := newFile(t, opts).Save(ctx, tc.v)
			if err == nil {
				t.Fatal("Save succeeded, want an error")
			}
			if got := IsPermanent(err); got != tc.want {
				t.Errorf("IsPermanent(%v) = %v, want %v", err, got, tc.want)
			}
		})
	}
}

func TestRedisStoragePermanentErrors(t *testing.T) {
	live := testenv.StartRedis(t).Client()
	host, port := closedAddr(t)
	down := redis.NewClient(&redis.Options{Addr: net.JoinHostPort(host, strconv.Itoa(port)), MaxRetries: -1})
	t.Cleanup(func() { _ = down.Close() })
	tests := []struct {
		name   string
		client redis.UniversalClient
		v      *vcon.VCon
		want   bool
	}{
		{"no uuid", live, testVCon(t, "", "", ""), true},
		{"unencodable", live, unencodable(fileUUID), true},
		{"Redis down", down, testVCon(t, fileUUID, "", ""), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := New(context.Background(), "redis", "storage.redis_storage", nil, Deps{Redis: tc.client})
			if err != nil {
				t.Fatal(err)
			}
			err = s.Save(context.Background(), tc.v)
			if err == nil {
				t.Fatal("Save succeeded, want an error")
			}
			if got := IsPermanent(err); got != tc.want {
				t.Errorf("IsPermanent(%v) = %v, want %v", err, got, tc.want)
			}
		})
	}
}

func TestPostgresPermanentErrors(t *testing.T) {
	pg := testenv.StartPostgres(t)
	ctx := context.Background()
	const uuid = "0190d6f0-1c2d-7a00-8000-0000000000b2"
	s := newPostgres(t, postgresOptions(pg, "permanent"))
	if err := s.Save(ctx, testVCon(t, uuid, "2024-03-05T10:00:00Z", "ok")); err != nil {
		t.Fatal(err)
	}
	// A constraint a DBA added, as integrity rules are in practice.
	if _, err := pg.Conn().Exec(ctx, `ALTER TABLE permanent ADD CONSTRAINT no_forbidden CHECK (subject <> 'forbidden')`); err != nil {
		t.Fatal(err)
	}
	host, port := closedAddr(t)
	downOpts := postgresOptions(pg, "permanent")
	downOpts["host"], downOpts["port"] = host, port
	down := newPostgres(t, downOpts)

	tests := []struct {
		name      string
		s         *postgresStorage
		v         *vcon.VCon
		wantState string // SQLSTATE the error must carry; "" for none
		want      bool
	}{
		{"uuid that the id column cannot hold", s, testVCon(t, "not-a-uuid", "", ""), "", true},
		{"unencodable", s, unencodable(uuid), "", true},
		{"data exception: NUL in a text column", s, testVCon(t, uuid, "", "nul\x00byte"), "22021", true},
		{"integrity: check constraint", s, testVCon(t, uuid, "", "forbidden"), "23514", true},
		{"server down", down, testVCon(t, uuid, "", "ok"), "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.s.Save(ctx, tc.v)
			if err == nil {
				t.Fatal("Save succeeded, want an error")
			}
			var pgErr *pgconn.PgError
			if tc.wantState != "" && (!errors.As(err, &pgErr) || pgErr.Code != tc.wantState) {
				t.Fatalf("err = %v, want SQLSTATE %s", err, tc.wantState)
			}
			if got := IsPermanent(err); got != tc.want {
				t.Errorf("IsPermanent(%v) = %v, want %v", err, got, tc.want)
			}
		})
	}
}

func TestWebhookPermanentErrors(t *testing.T) {
	status := func(code int) http.HandlerFunc {
		return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
	}
	host, port := closedAddr(t)
	closed := fmt.Sprintf("http://%s:%d/", host, port)
	tests := []struct {
		name     string
		handlers []http.HandlerFunc // one receiver each
		extra    []string           // URLs without a receiver
		v        *vcon.VCon
		want     bool
	}{
		{name: "400", handlers: []http.HandlerFunc{status(400)}, want: true},
		{name: "401", handlers: []http.HandlerFunc{status(401)}, want: true},
		{name: "404", handlers: []http.HandlerFunc{status(404)}, want: true},
		{name: "413", handlers: []http.HandlerFunc{status(413)}, want: true},
		{name: "422", handlers: []http.HandlerFunc{status(422)}, want: true},
		{name: "408", handlers: []http.HandlerFunc{status(408)}},
		{name: "429", handlers: []http.HandlerFunc{status(429)}},
		{name: "500", handlers: []http.HandlerFunc{status(500)}},
		{name: "503", handlers: []http.HandlerFunc{status(503)}},
		{name: "304", handlers: []http.HandlerFunc{status(304)}},
		{name: "connection refused", extra: []string{closed}},
		{name: "both receivers refuse", handlers: []http.HandlerFunc{status(400), status(403)}, want: true},
		// A retry can still reach the receiver that is down.
		{name: "one refuses, one is down", handlers: []http.HandlerFunc{status(400), status(503)}},
		{name: "one refuses, one unreachable", handlers: []http.HandlerFunc{status(400)}, extra: []string{closed}},
		{name: "unencodable", handlers: []http.HandlerFunc{status(204)}, v: unencodable(webhookTestUUID), want: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var urls []any
			for _, h := range tc.handlers {
				srv := httptest.NewServer(h)
				t.Cleanup(srv.Close)
				urls = append(urls, srv.URL)
			}
			for _, u := range tc.extra {
				urls = append(urls, u)
			}
			v := tc.v
			if v == nil {
				v = webhookTestVCon(t)
			}
			err := newTestWebhook(t, map[string]any{"webhook-urls": urls}).Save(context.Background(), v)
			if err == nil {
				t.Fatal("Save succeeded, want an error")
			}
			if got := IsPermanent(err); got != tc.want {
				t.Errorf("IsPermanent(%v) = %v, want %v", err, got, tc.want)
			}
		})
	}
}

// TestS3PermanentStatus classifies answers the test server cannot be made
// to give: S3 sends some transient conditions as 4xx.
func TestS3PermanentStatus(t *testing.T) {
	answer := func(code int, errCode string) error {
		return &smithy.OperationError{ServiceID: "S3", OperationName: "PutObject", Err: &smithyhttp.ResponseError{
			Response: &smithyhttp.Response{Response: &http.Response{StatusCode: code}},
			Err:      &smithy.GenericAPIError{Code: errCode},
		}}
	}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"AccessDenied", answer(403, "AccessDenied"), true},
		{"NoSuchBucket", answer(404, "NoSuchBucket"), true},
		{"EntityTooLarge", answer(400, "EntityTooLarge"), true},
		{"InvalidArgument", answer(400, "InvalidArgument"), true},
		{"SlowDown", answer(503, "SlowDown"), false},
		{"InternalError", answer(500, "InternalError"), false},
		{"429", answer(429, "TooManyRequests"), false},
		{"RequestTimeout is a 400", answer(400, "RequestTimeout"), false},
		{"RequestTimeTooSkewed is a 403", answer(403, "RequestTimeTooSkewed"), false},
		{"ExpiredToken is refreshed", answer(400, "ExpiredToken"), false},
		{"OperationAborted asks for a retry", answer(409, "OperationAborted"), false},
		{"no answer", &smithy.OperationError{ServiceID: "S3", OperationName: "PutObject", Err: errors.New("dial tcp: connection refused")}, false},
	}
	s := &s3Storage{bucket: "b"}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := IsPermanent(s.fail("put", "k", tc.err)); got != tc.want {
				t.Errorf("IsPermanent(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

func TestS3PermanentErrors(t *testing.T) {
	srv := testenv.StartS3(t)
	bucket := srv.CreateBucket()
	host, port := closedAddr(t)
	tests := []struct {
		name string
		opts map[string]any
		v    *vcon.VCon
		want bool
	}{
		{"wrong secret", s3TestOptions(srv, bucket, map[string]any{"aws_secret_access_key": "wrong-secret-0123456789abcdef"}), s3TestVCon(t, "2026-03-04T05:06:07Z"), true},
		{"bucket does not exist", s3TestOptions(srv, "no-such-bucket", nil), s3TestVCon(t, "2026-03-04T05:06:07Z"), true},
		{"uuid that cannot be a key", s3TestOptions(srv, bucket, nil), vcon.New("../x"), true},
		{"unencodable", s3TestOptions(srv, bucket, nil), unencodable(s3TestUUID), true},
		{"server down", s3TestOptions(srv, bucket, map[string]any{"endpoint_url": fmt.Sprintf("http://%s:%d", host, port)}), s3TestVCon(t, "2026-03-04T05:06:07Z"), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := newTestS3(t, tc.opts).Save(context.Background(), tc.v)
			if err == nil {
				t.Fatal("Save succeeded, want an error")
			}
			if got := IsPermanent(err); got != tc.want {
				t.Errorf("IsPermanent(%v) = %v, want %v", err, got, tc.want)
			}
		})
	}
}
