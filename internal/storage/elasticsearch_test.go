package storage

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// These tests do not run Elasticsearch (a JVM service): fakeES is an
// httptest server that speaks the two APIs the storage uses, _bulk and
// _delete_by_query, as Elasticsearch answers them (per-item statuses and
// errors in a 200, match_phrase on vcon_id, term on _index, ids), and
// checks the credentials sent.

const esTestUUID = "018f1c1e-8d2a-7c3e-9a55-1f2e3d4c5b6e"

type fakeES struct {
	*httptest.Server
	user, password, apiKey string

	mu   sync.Mutex
	docs map[string]map[string]map[string]any // index -> id -> document
}

func startFakeES(t *testing.T) *fakeES {
	f := &fakeES{user: "elastic", password: "es-pw-s3cret", docs: map[string]map[string]map[string]any{}}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

// startFakeESTLS serves HTTPS with a certificate of its own CA, written to
// the returned PEM file.
func startFakeESTLS(t *testing.T) (*fakeES, string) {
	f := &fakeES{user: "elastic", password: "es-pw-s3cret", docs: map[string]map[string]map[string]any{}}
	f.Server = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	block := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.Certificate().Raw})
	if err := os.WriteFile(ca, block, 0o600); err != nil {
		t.Fatal(err)
	}
	return f, ca
}

func (f *fakeES) fail(w http.ResponseWriter, status int, typ, reason string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"type": typ, "reason": reason}, "status": status})
}

func (f *fakeES) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	u, p, basic := r.BasicAuth()
	authed := (basic && u == f.user && p == f.password) || (f.apiKey != "" && r.Header.Get("Authorization") == "ApiKey "+f.apiKey)
	if !authed {
		f.fail(w, http.StatusUnauthorized, "security_exception", "unable to authenticate user ["+u+"] for REST request ["+r.URL.Path+"]")
		return
	}
	switch {
	case r.Method == http.MethodPost && r.URL.Path == "/_bulk":
		f.bulk(w, r)
	case r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/_delete_by_query"):
		f.deleteByQuery(w, r, strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/"), "/_delete_by_query"))
	default:
		f.fail(w, http.StatusBadRequest, "illegal_argument_exception", "unsupported "+r.Method+" "+r.URL.Path)
	}
}

func (f *fakeES) bulk(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Content-Type") != "application/x-ndjson" {
		f.fail(w, http.StatusNotAcceptable, "media_type_header_exception", "want application/x-ndjson")
		return
	}
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(nil, 1<<24)
	var items []any
	errorsSeen := false
	for sc.Scan() {
		var action struct {
			Index struct {
				Index string `json:"_index"`
				ID    string `json:"_id"`
			} `json:"index"`
		}
		if err := json.Unmarshal(sc.Bytes(), &action); err != nil || !sc.Scan() {
			f.fail(w, http.StatusBadRequest, "x_content_parse_exception", "malformed bulk")
			return
		}
		var doc map[string]any
		if err := json.Unmarshal(sc.Bytes(), &doc); err != nil {
			f.fail(w, http.StatusBadRequest, "x_content_parse_exception", "malformed document")
			return
		}
		index, id := action.Index.Index, action.Index.ID
		item := map[string]any{"_index": index, "_id": id}
		switch {
		case index != esIndex(index) || !esIndexName.MatchString(index):
			item["status"], item["error"] = 400, map[string]any{"type": "invalid_index_name_exception", "reason": "Invalid index name [" + index + "]"}
		case doc["tenant_id"] == "refuse":
			item["status"], item["error"] = 400, map[string]any{"type": "document_parsing_exception", "reason": "failed to parse field [tenant_id]"}
		case doc["tenant_id"] == "busy":
			item["status"], item["error"] = 429, map[string]any{"type": "es_rejected_execution_exception", "reason": "rejected execution"}
		default:
			if f.docs[index] == nil {
				f.docs[index] = map[string]map[string]any{}
			}
			item["status"], item["result"] = 201, "created"
			if _, ok := f.docs[index][id]; ok {
				item["status"], item["result"] = 200, "updated"
			}
			f.docs[index][id] = doc
		}
		if item["error"] != nil {
			errorsSeen = true
		}
		items = append(items, map[string]any{"index": item})
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"took": 1, "errors": errorsSeen, "items": items})
}

// deleteByQuery understands the query the storage sends: a match_phrase
// on vcon_id, and must_not clauses of (term _index, ids).
func (f *fakeES) deleteByQuery(w http.ResponseWriter, r *http.Request, pattern string) {
	var q struct {
		Query struct {
			Bool struct {
				Filter []struct {
					MatchPhrase map[string]string `json:"match_phrase"`
				} `json:"filter"`
				MustNot []struct {
					Bool struct {
						Filter []struct {
							Term map[string]string `json:"term"`
							IDs  struct {
								Values []string `json:"values"`
							} `json:"ids"`
						} `json:"filter"`
					} `json:"bool"`
				} `json:"must_not"`
			} `json:"bool"`
		} `json:"query"`
	}
	if err := json.NewDecoder(r.Body).Decode(&q); err != nil || len(q.Query.Bool.Filter) != 1 {
		f.fail(w, http.StatusBadRequest, "parsing_exception", "unexpected query")
		return
	}
	vconID := q.Query.Bool.Filter[0].MatchPhrase["vcon_id"]
	keep := map[string]bool{}
	for _, mn := range q.Query.Bool.MustNot {
		index := mn.Bool.Filter[0].Term["_index"]
		for _, id := range mn.Bool.Filter[1].IDs.Values {
			keep[index+"/"+id] = true
		}
	}
	deleted := 0
	for index, docs := range f.docs {
		if ok, _ := path.Match(pattern, index); !ok {
			continue
		}
		for id, doc := range docs {
			if doc["vcon_id"] == vconID && !keep[index+"/"+id] {
				delete(docs, id)
				deleted++
			}
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"took": 1, "deleted": deleted, "failures": []any{}})
}

// keys lists index/id of every document, sorted.
func (f *fakeES) keys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for index, docs := range f.docs {
		for id := range docs {
			out = append(out, index+"/"+id)
		}
	}
	sort.Strings(out)
	return out
}

func (f *fakeES) doc(index, id string) map[string]any {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.docs[index][id]
}

func newTestES(t *testing.T, opts map[string]any) *esStorage {
	t.Helper()
	st, err := New(context.Background(), "es", "storage.elasticsearch", opts, Deps{})
	if err != nil {
		t.Fatalf("build storage.elasticsearch: %v", err)
	}
	return st.(*esStorage)
}

// esTestVCon is a vCon with parts of every kind; tenant is its tenant id.
func esTestVCon(t *testing.T, uuid string, tenant string) *vcon.VCon {
	t.Helper()
	v, err := vcon.Parse([]byte(`{"uuid":"` + uuid + `","vcon":"0.4.0",
		"parties":[{"tel":"+15551234567","role":"Agent"},{"tel":"+15557654321","role":"customer"},{"name":"bot"}],
		"dialog":[{"type":"text","start":"2026-03-04T05:06:07Z","parties":[0,1],"body":"hi"}],
		"attachments":[{"purpose":"tenant","encoding":"json","body":"{\"id\":\"` + tenant + `\"}"},{"purpose":"tags","encoding":"json","body":["a:b"]}],
		"analysis":[{"type":"summary","vendor":"x","encoding":"json","body":"{\"text\":\"short\"}"},{"vendor":"y","body":"plain"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestElasticsearchIndexesParts(t *testing.T) {
	f := startFakeES(t)
	ctx := context.Background()
	st := newTestES(t, map[string]any{"url": f.URL, "username": f.user, "password": f.password, "index_prefix": " acme_ ", "index": "vcon_index"})
	if err := st.Save(ctx, esTestVCon(t, esTestUUID, "t-42")); err != nil {
		t.Fatalf("Save: %v", err)
	}
	u := esTestUUID
	want := []string{
		"acme_vcon_analysis_summary/" + u + "_0",
		"acme_vcon_analysis_unknown/" + u + "_1",
		"acme_vcon_attachments_tags/" + u + "_1",
		"acme_vcon_attachments_tenant/" + u + "_0",
		"acme_vcon_dialog/" + u + "_0",
		"acme_vcon_parties/" + u + "_2",
		"acme_vcon_parties_agent/" + u + "_0",
		"acme_vcon_parties_customer/" + u + "_1",
	}
	if got := f.keys(); !slices.Equal(got, want) {
		t.Fatalf("documents %q\nwant      %q", got, want)
	}
	party := f.doc("acme_vcon_parties_agent", u+"_0")
	if party["tel"] != "+15551234567" || party["vcon_id"] != u || party["started_at"] != "2026-03-04T05:06:07Z" || party["tenant_id"] != "t-42" {
		t.Errorf("party document %v lacks the part or the common fields", party)
	}
	summary := f.doc("acme_vcon_analysis_summary", u+"_0")
	if b, ok := summary["body"].(map[string]any); !ok || b["text"] != "short" {
		t.Errorf("a JSON body is indexed as %T %v, want its structure", summary["body"], summary["body"])
	}

	// A redelivery of a changed vCon: one party fewer, another role. The
	// indices hold exactly the new version.
	changed := esTestVCon(t, esTestUUID, "t-42")
	changed.Doc()["parties"] = []any{map[string]any{"tel": "+15551234567", "role": "supervisor"}}
	changed.Doc()["analysis"] = []any{}
	if err := st.Save(ctx, changed); err != nil {
		t.Fatalf("Save again: %v", err)
	}
	want = []string{
		"acme_vcon_attachments_tags/" + u + "_1",
		"acme_vcon_attachments_tenant/" + u + "_0",
		"acme_vcon_dialog/" + u + "_0",
		"acme_vcon_parties_supervisor/" + u + "_0",
	}
	if got := f.keys(); !slices.Equal(got, want) {
		t.Fatalf("after the redelivery: %q\nwant %q", got, want)
	}

	// Another vCon sharing the first group of the uuid is not touched by
	// deleting this one.
	other := "018f1c1e-0000-7000-8000-000000000001"
	if err := st.Save(ctx, esTestVCon(t, other, "t-42")); err != nil {
		t.Fatalf("Save other: %v", err)
	}
	if err := st.Delete(ctx, esTestUUID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	for _, k := range f.keys() {
		if strings.Contains(k, esTestUUID) || !strings.Contains(k, other) {
			t.Fatalf("after Delete: %q", f.keys())
		}
	}
	if len(f.keys()) != 8 {
		t.Fatalf("Delete removed documents of another vCon: %q", f.keys())
	}
}

// A vCon without dialog has no documents, as in conserver; saving it
// removes those of an earlier version that had dialog.
func TestElasticsearchNoDialog(t *testing.T) {
	f := startFakeES(t)
	st := newTestES(t, map[string]any{"url": f.URL, "username": f.user, "password": f.password})
	if err := st.Save(context.Background(), esTestVCon(t, esTestUUID, "t-42")); err != nil {
		t.Fatal(err)
	}
	v := esTestVCon(t, esTestUUID, "t-42")
	delete(v.Doc(), "dialog")
	if err := st.Save(context.Background(), v); err != nil {
		t.Fatalf("Save: %v", err)
	}
	if got := f.keys(); len(got) != 0 {
		t.Fatalf("documents %q, want none", got)
	}
}

// TestElasticsearchKeepsSecuredFormsWhole: a signed or encrypted vCon has
// no part to index; it is one document holding its text as it was sent,
// and a later version in another form replaces it (and its parts).
func TestElasticsearchKeepsSecuredFormsWhole(t *testing.T) {
	f := startFakeES(t)
	ctx := context.Background()
	st := newTestES(t, map[string]any{"url": f.URL, "username": f.user, "password": f.password, "index_prefix": "acme_"})
	u := esTestUUID
	signed := "{\n  \"payload\": \"eA\",\n  \"signatures\": [{\"protected\":\"eA\",\"signature\":\"eA\",\"header\":{\"uuid\":\"" + u + "\"}}]\n}"
	encrypted := `{"recipients":[{"encrypted_key":"eA"}],"ciphertext":"eA","iv":"eA","tag":"eA","unprotected":{"uuid":"` + u + `"}}`
	for _, step := range []struct {
		name, doc, index, form string
	}{
		{"unsigned", "", "", ""},
		{"signed, indented as the draft's examples", signed, "acme_vcon_signed", "signed"},
		{"encrypted", encrypted, "acme_vcon_encrypted", "encrypted"},
		{"unsigned again", "", "", ""},
	} {
		v := esTestVCon(t, u, "t-42")
		if step.doc != "" {
			var err error
			if v, err = vcon.Parse([]byte(step.doc)); err != nil {
				t.Fatal(err)
			}
		}
		if err := st.Save(ctx, v); err != nil {
			t.Fatalf("%s: Save: %v", step.name, err)
		}
		keys := f.keys()
		if step.doc == "" {
			if len(keys) != 8 || slices.ContainsFunc(keys, func(k string) bool { return strings.Contains(k, "_signed/") || strings.Contains(k, "_encrypted/") }) {
				t.Fatalf("%s: documents %q, want the 8 parts only", step.name, keys)
			}
			continue
		}
		if want := []string{step.index + "/" + u}; !slices.Equal(keys, want) {
			t.Fatalf("%s: documents %q, want %q", step.name, keys, want)
		}
		got := f.doc(step.index, u)
		if got["document"] != step.doc || got["vcon_id"] != u || got["form"] != step.form {
			t.Fatalf("%s: document %v, want the text as sent", step.name, got)
		}
	}
}

func TestElasticsearchFailures(t *testing.T) {
	f := startFakeES(t)
	f.apiKey = "es-key-s3cret"
	ctx := context.Background()
	for _, tc := range []struct {
		name      string
		opts      map[string]any
		tenant    string
		want      string
		permanent bool
	}{
		{"wrong password", map[string]any{"url": f.URL, "username": "elastic", "password": "wrong-s3cret"}, "t-42", "HTTP 401: security_exception", false},
		{"api key", map[string]any{"url": f.URL, "api_key": "es-key-s3cret"}, "t-42", "", false},
		{"a part refused", map[string]any{"url": f.URL, "api_key": "es-key-s3cret"}, "refuse", "8 of 8 parts refused", true},
		{"a part rejected for load", map[string]any{"url": f.URL, "api_key": "es-key-s3cret"}, "busy", "es_rejected_execution_exception", false},
		{"nobody listening", map[string]any{"url": "http://127.0.0.1:1"}, "t-42", "request failed", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := newTestES(t, tc.opts)
			err := st.Save(ctx, esTestVCon(t, esTestUUID, tc.tenant))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("Save: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Save succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q\ndoes not contain %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("error %q quotes a credential", err)
			}
			if IsPermanent(err) != tc.permanent {
				t.Errorf("IsPermanent = %v, want %v", IsPermanent(err), tc.permanent)
			}
		})
	}
}

// Certificates are checked, against ca_certs when it is set; only
// verify_certs: false skips the check.
func TestElasticsearchTLS(t *testing.T) {
	f, ca := startFakeESTLS(t)
	for _, tc := range []struct {
		name  string
		extra map[string]any
		want  string
	}{
		{"system roots", nil, "certificate"},
		{"ca_certs", map[string]any{"ca_certs": ca}, ""},
		{"verify_certs false", map[string]any{"verify_certs": false}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := map[string]any{"url": f.URL, "username": f.user, "password": f.password}
			for k, v := range tc.extra {
				opts[k] = v
			}
			err := newTestES(t, opts).Save(context.Background(), esTestVCon(t, esTestUUID, "t-42"))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Save: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Save = %v, want an error about the %s", err, tc.want)
			}
		})
	}
}

func TestElasticsearchCloudID(t *testing.T) {
	for _, tc := range []struct{ id, want string }{
		// The Python client's documented example.
		{"cluster:dXMtZWFzdC0xLmF3cy5mb3VuZC5pbyRjZWM2ZjI2MWE3NGJmMjRjZTMzYmI4ODExYjg0Mjk0ZiRjNmMyY2E2ZDA0MjI0OWFmMGNjN2Q3YTllOTYyNTc0Mw==", "https://cec6f261a74bf24ce33bb8811b84294f.us-east-1.aws.found.io"},
		{"x:" + b64("eu-west-1.aws.found.io:9243$abc$def"), "https://abc.eu-west-1.aws.found.io:9243"},
	} {
		got, err := esCloudURL(tc.id)
		if err != nil || got != tc.want {
			t.Errorf("esCloudURL(%q) = %q, %v; want %q", tc.id, got, err, tc.want)
		}
	}
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
