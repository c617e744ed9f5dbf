package storage

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/vcon-operator/vcon-operator/internal/testenv"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// These tests run against a real S3 server (versitygw, built by
// `hack/tools.sh s3server`), not a mock: keys, content types, error codes
// and signing are the server's.

const s3TestUUID = "018f1c1e-8d2a-7c3e-9a55-1f2e3d4c5b6a"

func s3TestOptions(srv *testenv.S3, bucket string, extra map[string]any) map[string]any {
	opts := map[string]any{
		"aws_access_key_id":     srv.AccessKey,
		"aws_secret_access_key": srv.SecretKey,
		"aws_bucket":            bucket,
		"aws_region":            srv.Region,
		"endpoint_url":          srv.Endpoint,
	}
	for k, v := range extra {
		opts[k] = v
	}
	return opts
}

func newTestS3(t *testing.T, opts map[string]any) *s3Storage {
	t.Helper()
	st, err := New(context.Background(), "s3", "storage.s3", opts, Deps{})
	if err != nil {
		t.Fatalf("build storage.s3: %v", err)
	}
	return st.(*s3Storage)
}

func s3TestVCon(t *testing.T, createdAt string) *vcon.VCon {
	t.Helper()
	doc := `{"uuid":"` + s3TestUUID + `","vcon":"0.4.0","parties":[],"x_unknown":{"kept":true}`
	if createdAt != "" {
		doc += `,"created_at":"` + createdAt + `"`
	}
	v, err := vcon.Parse([]byte(doc + "}"))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// s3Object reads an object straight from the server, bypassing storage.s3.
func s3Object(t *testing.T, srv *testenv.S3, bucket, key string) (body, contentType string) {
	t.Helper()
	out, err := srv.Client().GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("get s3://%s/%s: %v (bucket holds %q)", bucket, key, err, srv.Keys(bucket))
	}
	defer out.Body.Close()
	data, err := io.ReadAll(out.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(data), aws.ToString(out.ContentType)
}

func TestS3Layout(t *testing.T) {
	srv := testenv.StartS3(t)
	tests := []struct {
		name      string
		s3Path    any
		createdAt string
		now       time.Time
		wantObj   string
		wantDate  string
	}{
		{
			name: "created_at date", createdAt: "2026-03-04T05:06:07.123456+00:00",
			wantObj: "2026/03/04/" + s3TestUUID + ".vcon", wantDate: "2026/03/04",
		},
		{
			// conserver formats the parsed timestamp as written, without
			// converting it to UTC (here already the 5th in UTC).
			name: "created_at date as written", createdAt: "2026-03-04T23:30:00-05:00",
			wantObj: "2026/03/04/" + s3TestUUID + ".vcon", wantDate: "2026/03/04",
		},
		{
			name: "no created_at: today in UTC", now: time.Date(2026, 12, 31, 23, 59, 0, 0, time.FixedZone("X", 3*3600)),
			wantObj: "2026/12/31/" + s3TestUUID + ".vcon", wantDate: "2026/12/31",
		},
		{
			name: "unreadable created_at: today in UTC", createdAt: "yesterday", now: time.Date(2027, 1, 2, 3, 4, 5, 0, time.UTC),
			wantObj: "2027/01/02/" + s3TestUUID + ".vcon", wantDate: "2027/01/02",
		},
		{
			name: "s3_path prefix", s3Path: "archive/vcons", createdAt: "2026-03-04T05:06:07Z",
			wantObj: "archive/vcons/2026/03/04/" + s3TestUUID + ".vcon", wantDate: "2026/03/04",
		},
		{
			name: "s3_path slashes trimmed", s3Path: "/archive/", createdAt: "2026-03-04T05:06:07Z",
			wantObj: "archive/2026/03/04/" + s3TestUUID + ".vcon", wantDate: "2026/03/04",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bucket := srv.CreateBucket()
			st := newTestS3(t, s3TestOptions(srv, bucket, map[string]any{"s3_path": tc.s3Path}))
			if !tc.now.IsZero() {
				st.now = func() time.Time { return tc.now }
			}
			v := s3TestVCon(t, tc.createdAt)
			want, _ := v.Marshal()
			if err := st.Save(context.Background(), v); err != nil {
				t.Fatalf("Save: %v", err)
			}

			lookupKey := "lookup/" + s3TestUUID + ".txt"
			if p, ok := tc.s3Path.(string); ok {
				lookupKey = strings.Trim(p, "/") + "/" + lookupKey
			}
			if keys, wantKeys := srv.Keys(bucket), []string{tc.wantObj, lookupKey}; !sameKeys(keys, wantKeys) {
				t.Fatalf("bucket holds %q, want %q", keys, wantKeys)
			}
			body, ct := s3Object(t, srv, bucket, tc.wantObj)
			if body != string(want) {
				t.Errorf("object body = %s, want %s", body, want)
			}
			if ct != "application/json" {
				t.Errorf("object Content-Type = %q, want application/json", ct)
			}
			if date, _ := s3Object(t, srv, bucket, lookupKey); date != tc.wantDate {
				t.Errorf("lookup pointer holds %q, want %q", date, tc.wantDate)
			}

			got, err := st.Get(context.Background(), s3TestUUID)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			if string(got) != string(want) {
				t.Errorf("Get = %s, want %s", got, want)
			}
		})
	}
}

func sameKeys(got, want []string) bool {
	got, want = slices.Clone(got), slices.Clone(want)
	slices.Sort(got)
	slices.Sort(want)
	return slices.Equal(got, want)
}

func TestS3SaveIsIdempotent(t *testing.T) {
	srv := testenv.StartS3(t)
	tests := []struct {
		name      string
		createdAt string
	}{
		{name: "with created_at", createdAt: "2026-03-04T05:06:07Z"},
		// Without created_at the second save happens on another day; it
		// must still overwrite the first object, not add a second one.
		{name: "without created_at, across midnight"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			bucket := srv.CreateBucket()
			st := newTestS3(t, s3TestOptions(srv, bucket, nil))
			day := time.Date(2026, 5, 6, 23, 59, 59, 0, time.UTC)
			st.now = func() time.Time { return day }
			v := s3TestVCon(t, tc.createdAt)
			if err := st.Save(context.Background(), v); err != nil {
				t.Fatal(err)
			}
			first := srv.Keys(bucket)

			day = day.Add(time.Hour)
			v.Doc()["x_second"] = "yes"
			if err := st.Save(context.Background(), v); err != nil {
				t.Fatalf("second Save: %v", err)
			}
			if second := srv.Keys(bucket); !sameKeys(second, first) {
				t.Fatalf("after a second save the bucket holds %q, want the same keys as after the first: %q", second, first)
			}
			got, err := st.Get(context.Background(), s3TestUUID)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(got), `"x_second":"yes"`) {
				t.Errorf("Get after the second save = %s, want the second version", got)
			}
		})
	}
}

func TestS3GetAndDelete(t *testing.T) {
	srv := testenv.StartS3(t)
	bucket := srv.CreateBucket()
	st := newTestS3(t, s3TestOptions(srv, bucket, map[string]any{"s3_path": "p"}))
	ctx := context.Background()

	if _, err := st.Get(ctx, s3TestUUID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Get before any save: err = %v, want ErrNotFound", err)
	}
	if err := st.Delete(ctx, s3TestUUID); err != nil {
		t.Fatalf("Delete of a missing vCon: %v, want success", err)
	}
	if err := st.Save(ctx, s3TestVCon(t, "2026-03-04T05:06:07Z")); err != nil {
		t.Fatal(err)
	}
	// Another vCon in the same bucket must survive the delete.
	other := vcon.New("11111111-2222-3333-4444-555555555555")
	other.Doc()["created_at"] = "2026-03-04T00:00:00Z"
	if err := st.Save(ctx, other); err != nil {
		t.Fatal(err)
	}

	if err := st.Delete(ctx, s3TestUUID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	want := []string{"p/2026/03/04/" + other.UUID() + ".vcon", "p/lookup/" + other.UUID() + ".txt"}
	if keys := srv.Keys(bucket); !sameKeys(keys, want) {
		t.Errorf("after Delete the bucket holds %q, want %q", keys, want)
	}
	if _, err := st.Get(ctx, s3TestUUID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get after Delete: err = %v, want ErrNotFound", err)
	}
	if _, err := st.Get(ctx, other.UUID()); err != nil {
		t.Errorf("Get of the other vCon: %v", err)
	}

	// A pointer without its object (a half-finished conserver delete) is
	// ErrNotFound too, not an internal error.
	if _, err := srv.Client().PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String("p/lookup/" + s3TestUUID + ".txt"), Body: strings.NewReader("2026/03/04"),
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, s3TestUUID); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get with a dangling pointer: err = %v, want ErrNotFound", err)
	}
}

func TestS3Errors(t *testing.T) {
	srv := testenv.StartS3(t)
	bucket := srv.CreateBucket()
	const wrongSecret = "wrong-secret-0123456789abcdef"
	tests := []struct {
		name     string
		opts     map[string]any
		buildErr string   // the factory must refuse the options
		saveErr  []string // Save must fail with all of these
	}{
		{
			name:     "missing bucket",
			opts:     map[string]any{"aws_access_key_id": "a", "aws_secret_access_key": "b", "endpoint_url": srv.Endpoint},
			buildErr: `option "aws_bucket": required`,
		},
		{
			name:     "bucket not a string",
			opts:     map[string]any{"aws_bucket": 3},
			buildErr: `option "aws_bucket"`,
		},
		{
			name:     "key id without secret",
			opts:     map[string]any{"aws_bucket": "b", "aws_access_key_id": "a"},
			buildErr: "go together",
		},
		{
			name:     "bad endpoint",
			opts:     map[string]any{"aws_bucket": "b", "endpoint_url": "localhost:9000"},
			buildErr: `option "endpoint_url"`,
		},
		{
			name:    "wrong secret",
			opts:    s3TestOptions(srv, bucket, map[string]any{"aws_secret_access_key": wrongSecret}),
			saveErr: []string{"SignatureDoesNotMatch", bucket, "check aws_access_key_id and aws_secret_access_key"},
		},
		{
			name:    "unknown access key",
			opts:    s3TestOptions(srv, bucket, map[string]any{"aws_access_key_id": "nobody", "aws_secret_access_key": wrongSecret}),
			saveErr: []string{bucket, "check aws_access_key_id and aws_secret_access_key"},
		},
		{
			name:    "bucket does not exist",
			opts:    s3TestOptions(srv, "no-such-bucket", nil),
			saveErr: []string{"no-such-bucket", "check aws_bucket"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			st, err := New(context.Background(), "s3", "storage.s3", tc.opts, Deps{})
			if tc.buildErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.buildErr) {
					t.Fatalf("build err = %v, want one containing %q", err, tc.buildErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			err = st.Save(ctx, s3TestVCon(t, "2026-03-04T05:06:07Z"))
			if err == nil {
				t.Fatal("Save succeeded, want an error")
			}
			for _, s := range tc.saveErr {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not contain %q", err, s)
				}
			}
			for _, secret := range []string{wrongSecret, srv.SecretKey} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains a secret key", err)
				}
			}
		})
	}
}

func TestS3RefusesUnsafeUUID(t *testing.T) {
	srv := testenv.StartS3(t)
	bucket := srv.CreateBucket()
	st := newTestS3(t, s3TestOptions(srv, bucket, nil))
	for _, uuid := range []string{"", "../escape", "a/b", ".."} {
		v := vcon.New(uuid)
		if err := st.Save(context.Background(), v); err == nil {
			t.Errorf("Save of uuid %q succeeded, want an error", uuid)
		}
		if _, err := st.Get(context.Background(), uuid); err == nil || errors.Is(err, ErrNotFound) {
			t.Errorf("Get of uuid %q: err = %v, want a refusal", uuid, err)
		}
	}
	if keys := srv.Keys(bucket); len(keys) != 0 {
		t.Errorf("bucket holds %q after refused saves", keys)
	}
}

// TestS3EgressFormat: with EGRESS_FORMAT_VERSION=0.0.1 the object is the
// 0.0.1 shape, as conserver's s3 storage writes it (to_configured_legacy).
func TestS3EgressFormat(t *testing.T) {
	srv := testenv.StartS3(t)
	bucket := srv.CreateBucket()
	st := newTestS3(t, s3TestOptions(srv, bucket, nil))
	ctx := context.Background()
	t.Setenv("EGRESS_FORMAT_VERSION", "0.0.1")
	v := s3TestVCon(t, "2026-03-04T05:06:07Z")
	v.Doc()["amended"] = map[string]any{"uuid": "p"}
	if err := st.Save(ctx, v); err != nil {
		t.Fatal(err)
	}
	body, err := st.Get(ctx, s3TestUUID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := vcon.Parse(body)
	if err != nil {
		t.Fatal(err)
	}
	if got.Doc()["vcon"] != "0.0.1" || got.Doc()["appended"] == nil || got.Doc()["amended"] != nil {
		t.Errorf("stored %s, want the 0.0.1 shape (vcon 0.0.1, appended)", body)
	}
}
