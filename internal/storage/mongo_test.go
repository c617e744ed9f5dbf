package storage

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/vcon-operator/vcon-operator/internal/testenv"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// These tests run against a real MongoDB wire-protocol server (FerretDB on
// SQLite, built by `hack/tools.sh ferretdb`), not a mock: upserts, BSON
// types and error codes are the server's.

const mongoTestUUID = "018f1c1e-8d2a-7c3e-9a55-1f2e3d4c5b6c"

func newTestMongo(t *testing.T, opts map[string]any) *mongoStorage {
	t.Helper()
	st, err := New(context.Background(), "mongo", "storage.mongo", opts, Deps{})
	if err != nil {
		t.Fatalf("build storage.mongo: %v", err)
	}
	t.Cleanup(func() { _ = st.(Closer).Close() })
	return st.(*mongoStorage)
}

func mongoTestVCon(t *testing.T, subject string) *vcon.VCon {
	t.Helper()
	v := testVCon(t, mongoTestUUID, "2026-03-04T05:06:07.123+02:00", subject)
	v.Doc()["dialog"] = []any{map[string]any{"type": "text", "start": "2026-03-04T05:06:08Z", "body": "hi"}}
	// 2^53+1: an int64, which a double would round.
	v.Doc()["x_unknown"] = map[string]any{"kept": json.Number("9007199254740993"), "half": json.Number("0.5")}
	return v
}

func TestMongoSaveReplaceGetDelete(t *testing.T) {
	srv := testenv.StartMongo(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name             string
		opts             map[string]any
		database, collex string
	}{
		{"conserver defaults", map[string]any{"url": srv.URL}, "conserver", "vcons"},
		{"database and collection", map[string]any{"url": srv.URL, "database": "calls", "collection": "archive"}, "calls", "archive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newTestMongo(t, tc.opts)
			coll := srv.Client().Database(tc.database).Collection(tc.collex)
			if err := st.Save(ctx, mongoTestVCon(t, "first")); err != nil {
				t.Fatalf("Save: %v", err)
			}
			// A redelivered vCon that lost a field replaces the
			// document: one document, without the field.
			second := mongoTestVCon(t, "")
			if err := st.Save(ctx, second); err != nil {
				t.Fatalf("Save again: %v", err)
			}
			if n, err := coll.CountDocuments(ctx, bson.D{}); err != nil || n != 1 {
				t.Fatalf("collection holds %d documents (%v), want 1", n, err)
			}
			var raw bson.D
			if err := coll.FindOne(ctx, bson.D{{Key: "_id", Value: mongoTestUUID}}).Decode(&raw); err != nil {
				t.Fatalf("find by _id: %v", err)
			}
			m := bsonMap(raw)
			if _, ok := m["subject"]; ok {
				t.Errorf("the field the second save dropped is still stored: %v", raw)
			}
			if got, ok := m["created_at"].(bson.DateTime); !ok || !got.Time().Equal(time.Date(2026, 3, 4, 3, 6, 7, 123e6, time.UTC)) {
				t.Errorf("created_at stored as %T %v, want the BSON date 2026-03-04T03:06:07.123Z", m["created_at"], m["created_at"])
			}
			dialog, _ := m["dialog"].(bson.A)
			if len(dialog) != 1 {
				t.Fatalf("dialog stored as %v", m["dialog"])
			}
			if start := bsonMap(dialog[0].(bson.D))["start"]; start != bson.NewDateTimeFromTime(time.Date(2026, 3, 4, 5, 6, 8, 0, time.UTC)) {
				t.Errorf("dialog start stored as %T %v, want a BSON date", start, start)
			}
			if kept := bsonMap(m["x_unknown"].(bson.D))["kept"]; kept != int64(9007199254740993) {
				t.Errorf("2^53+1 stored as %T %v, want the int64", kept, kept)
			}

			body, err := st.Get(ctx, mongoTestUUID)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			want := second.Clone()
			want.Doc()["created_at"] = "2026-03-04T03:06:07.123Z"
			want.Doc()["dialog"].([]any)[0].(map[string]any)["start"] = "2026-03-04T05:06:08.000Z"
			wantBody, _ := want.Marshal()
			if string(body) != string(wantBody) {
				t.Errorf("Get =  %s\nwant %s", body, wantBody)
			}
			if _, err := st.Get(ctx, "018f1c1e-0000-7000-8000-000000000000"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get of a vCon never saved: %v, want ErrNotFound", err)
			}
			if err := st.Delete(ctx, mongoTestUUID); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if _, err := st.Get(ctx, mongoTestUUID); !errors.Is(err, ErrNotFound) {
				t.Errorf("Get after Delete: %v, want ErrNotFound", err)
			}
			if err := st.Delete(ctx, mongoTestUUID); err != nil {
				t.Fatalf("Delete of a deleted vCon: %v", err)
			}
		})
	}
}

func bsonMap(d bson.D) map[string]any {
	m := make(map[string]any, len(d))
	for _, e := range d {
		m[e.Key] = e.Value
	}
	return m
}

// A vCon MongoDB cannot hold is refused the same way on every retry, and
// the error says why.
func TestMongoRefusesDocument(t *testing.T) {
	srv := testenv.StartMongo(t)
	st := newTestMongo(t, map[string]any{"url": srv.URL})
	for _, tc := range []struct {
		name string
		edit func(v *vcon.VCon)
		want string
	}{
		{"whole number beyond int64", func(v *vcon.VCon) {
			v.Doc()["x_unknown"] = map[string]any{"big": json.Number("12345678901234567890")}
		}, `field "x_unknown": big: whole number 12345678901234567890 is beyond MongoDB's 64-bit integers`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := mongoTestVCon(t, "")
			tc.edit(v)
			err := st.Save(context.Background(), v)
			if err == nil {
				t.Fatal("Save succeeded")
			}
			if !IsPermanent(err) {
				t.Errorf("error %q is not permanent", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\ndoes not contain %q", err, tc.want)
			}
		})
	}
	if n, err := srv.Client().Database("conserver").Collection("vcons").CountDocuments(context.Background(), bson.D{}); err != nil || n != 0 {
		t.Errorf("collection holds %d documents (%v), want none", n, err)
	}
}

// A server that is down fails the save, to be retried; once it is back
// the same storage writes again.
func TestMongoServerDown(t *testing.T) {
	srv := testenv.StartMongo(t)
	st := newTestMongo(t, map[string]any{"url": srv.URL})
	v := mongoTestVCon(t, "")
	if err := st.Save(context.Background(), v); err != nil {
		t.Fatalf("Save: %v", err)
	}
	srv.Stop()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := st.Save(ctx, v)
	if err == nil {
		t.Fatal("Save succeeded with the server stopped")
	}
	if IsPermanent(err) {
		t.Errorf("a stopped server is a permanent error: %v", err)
	}
	if !strings.Contains(err.Error(), "conserver.vcons") {
		t.Errorf("error %q does not name the collection", err)
	}
	srv.Start()
	if _, err := st.Get(context.Background(), mongoTestUUID); err != nil {
		t.Fatalf("Get after the server came back: %v", err)
	}
	if err := st.Save(context.Background(), v); err != nil {
		t.Fatalf("Save after the server came back: %v", err)
	}
}

// Get reads documents the storage did not write, as conserver's are.
func TestMongoGetReadsConserverDocuments(t *testing.T) {
	srv := testenv.StartMongo(t)
	st := newTestMongo(t, map[string]any{"url": srv.URL})
	ctx := context.Background()
	doc := bson.D{
		{Key: "_id", Value: mongoTestUUID},
		{Key: "uuid", Value: mongoTestUUID},
		{Key: "vcon", Value: "0.0.1"},
		{Key: "created_at", Value: bson.NewDateTimeFromTime(time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC))},
		{Key: "parties", Value: bson.A{bson.D{{Key: "tel", Value: "+15551234567"}, {Key: "meta", Value: bson.D{{Key: "n", Value: int32(7)}, {Key: "f", Value: 0.5}}}}}},
	}
	if _, err := srv.Client().Database("conserver").Collection("vcons").InsertOne(ctx, doc); err != nil {
		t.Fatal(err)
	}
	body, err := st.Get(ctx, mongoTestUUID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	var got map[string]any
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatalf("Get returned %s: %v", body, err)
	}
	want := `{"created_at":"2025-01-02T03:04:05.000Z","parties":[{"meta":{"f":0.5,"n":7},"tel":"+15551234567"}],"uuid":"` + mongoTestUUID + `","vcon":"0.0.1"}`
	if string(body) != want {
		t.Errorf("Get =  %s\nwant %s", body, want)
	}
}
