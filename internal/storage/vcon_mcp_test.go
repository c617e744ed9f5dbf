package storage

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// vcon-mcp is a Node.js service backed by Supabase, which these tests do
// not run: fakeVconMCP is an httptest server answering its REST routes as
// src/api/routes/vcons.ts does (POST upserts on the uuid, the success and
// error envelopes, 400 for a uuid that is not one, 401 without the key).

const vconMCPTestUUID = "018f1c1e-8d2a-7c3e-9a55-1f2e3d4c5b6d"

type fakeVconMCP struct {
	*httptest.Server
	key string

	mu    sync.Mutex
	vcons map[string]json.RawMessage
	posts int
	fail  int // answer this status to every request when set
}

func startFakeVconMCP(t *testing.T, key string) *fakeVconMCP {
	f := &fakeVconMCP{key: key, vcons: map[string]json.RawMessage{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeVconMCP) answer(w http.ResponseWriter, status int, body map[string]any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func (f *fakeVconMCP) fault(w http.ResponseWriter, status int, msg string) {
	kind := "Error"
	if status >= 500 {
		kind = "Internal Server Error"
	}
	f.answer(w, status, map[string]any{"success": false, "error": kind, "message": msg})
}

func (f *fakeVconMCP) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != 0 {
		f.fault(w, f.fail, "failing as told")
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+f.key {
		w.Header().Set("WWW-Authenticate", `Bearer realm="vCon API"`)
		f.fault(w, http.StatusUnauthorized, "Invalid API key")
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, "/api/v1/vcons")
	switch {
	case !ok:
		f.fault(w, http.StatusNotFound, "Not Found")
	case path == "" && r.Method == http.MethodPost:
		if r.Header.Get("Content-Type") != "application/json" {
			f.fault(w, http.StatusBadRequest, "want JSON")
			return
		}
		body, _ := io.ReadAll(r.Body)
		var v struct {
			UUID    string `json:"uuid"`
			Parties []any  `json:"parties"`
		}
		if err := json.Unmarshal(body, &v); err != nil || v.Parties == nil {
			f.fault(w, http.StatusBadRequest, "parties is required")
			return
		}
		f.posts++
		f.vcons[v.UUID] = body
		f.answer(w, http.StatusCreated, map[string]any{"success": true, "uuid": v.UUID, "id": v.UUID, "message": "vCon created successfully"})
	case strings.HasPrefix(path, "/"):
		uuid := path[1:]
		if !uuidPattern.MatchString(uuid) {
			f.fault(w, http.StatusBadRequest, "Invalid UUID format")
			return
		}
		body, found := f.vcons[uuid]
		if !found {
			f.fault(w, http.StatusNotFound, "vCon with UUID "+uuid+" not found")
			return
		}
		switch r.Method {
		case http.MethodGet:
			f.answer(w, http.StatusOK, map[string]any{"success": true, "vcon": body})
		case http.MethodDelete:
			delete(f.vcons, uuid)
			f.answer(w, http.StatusOK, map[string]any{"success": true, "message": "vCon " + uuid + " deleted successfully"})
		default:
			f.fault(w, http.StatusMethodNotAllowed, "Method Not Allowed")
		}
	default:
		f.fault(w, http.StatusNotFound, "Not Found")
	}
}

func newTestVconMCP(t *testing.T, opts map[string]any) *vconMCPStorage {
	t.Helper()
	st, err := New(context.Background(), "mcp", "storage.vcon_mcp", opts, Deps{})
	if err != nil {
		t.Fatalf("build storage.vcon_mcp: %v", err)
	}
	return st.(*vconMCPStorage)
}

func TestVconMCPSaveGetDelete(t *testing.T) {
	f := startFakeVconMCP(t, "mcp-key-s3cret")
	ctx := context.Background()
	st := newTestVconMCP(t, map[string]any{"base_url": f.URL + "/api/v1/", "api_key": "mcp-key-s3cret"})
	if err := st.Save(ctx, testVCon(t, vconMCPTestUUID, "2026-03-04T05:06:07Z", "first")); err != nil {
		t.Fatalf("Save: %v", err)
	}
	second := testVCon(t, vconMCPTestUUID, "2026-03-04T05:06:07Z", "second")
	if err := st.Save(ctx, second); err != nil {
		t.Fatalf("Save again: %v", err)
	}
	if len(f.vcons) != 1 || f.posts != 2 {
		t.Fatalf("server holds %d vCons after %d posts, want 1 after 2", len(f.vcons), f.posts)
	}
	got, err := st.Get(ctx, vconMCPTestUUID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	want, _ := second.Marshal()
	if string(got) != string(want) {
		t.Fatalf("Get = %s\nwant %s", got, want)
	}
	for _, uuid := range []string{"018f1c1e-0000-7000-8000-000000000000", "not-a-uuid"} {
		if _, err := st.Get(ctx, uuid); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", uuid, err)
		}
	}
	if err := st.Delete(ctx, vconMCPTestUUID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if len(f.vcons) != 0 {
		t.Fatalf("server still holds %d vCons", len(f.vcons))
	}
	if err := st.Delete(ctx, vconMCPTestUUID); err != nil {
		t.Fatalf("Delete of a deleted vCon: %v", err)
	}
}

func TestVconMCPFailures(t *testing.T) {
	f := startFakeVconMCP(t, "mcp-key-s3cret")
	ctx := context.Background()
	good := map[string]any{"base_url": f.URL + "/api/v1", "api_key": "mcp-key-s3cret"}
	for _, tc := range []struct {
		name      string
		opts      map[string]any
		fail      int
		noParties bool
		want      string
		permanent bool
	}{
		{name: "wrong key", opts: map[string]any{"base_url": f.URL + "/api/v1", "api_key": "other-s3cret"}, want: "HTTP 401: Error: Invalid API key (check api_key)"},
		{name: "refused vCon", opts: good, noParties: true, want: "HTTP 400: Error: parties is required", permanent: true},
		{name: "server error", opts: good, fail: http.StatusInternalServerError, want: "HTTP 500: Internal Server Error: failing as told"},
		{name: "unavailable", opts: good, fail: http.StatusServiceUnavailable, want: "HTTP 503"},
		{name: "nobody listening", opts: map[string]any{"base_url": "http://127.0.0.1:1/api/v1", "timeout": "2s"}, want: "request failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.mu.Lock()
			f.fail = tc.fail
			f.mu.Unlock()
			st := newTestVconMCP(t, tc.opts)
			v := testVCon(t, vconMCPTestUUID, "", "")
			if tc.noParties {
				delete(v.Doc(), "parties")
			}
			err := st.Save(ctx, v)
			if err == nil {
				t.Fatal("Save succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\ndoes not contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q quotes the key", err)
			}
			if IsPermanent(err) != tc.permanent {
				t.Errorf("IsPermanent = %v, want %v", IsPermanent(err), tc.permanent)
			}
		})
	}

	t.Run("get while the server fails", func(t *testing.T) {
		f.mu.Lock()
		f.fail = http.StatusBadGateway
		f.mu.Unlock()
		st := newTestVconMCP(t, good)
		if _, err := st.Get(ctx, vconMCPTestUUID); err == nil || errors.Is(err, ErrNotFound) {
			t.Fatalf("Get = %v, want the failure, not ErrNotFound", err)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			// Once the body is read, the server notices the client
			// hanging up and ends the request's context.
			_, _ = io.Copy(io.Discard, r.Body)
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
		}))
		defer slow.Close()
		st := newTestVconMCP(t, map[string]any{"base_url": slow.URL, "timeout": 0.2})
		err := st.Save(ctx, testVCon(t, vconMCPTestUUID, "", ""))
		if err == nil || !strings.Contains(err.Error(), "no answer within 200ms") {
			t.Fatalf("Save = %v, want a timeout", err)
		}
	})
}
