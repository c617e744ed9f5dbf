package redact

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
)

// engine is a fake PII engine: it marks every "Alice" as a person, in the
// offset unit it is told to answer in.
func engine(t *testing.T, unit string, status int, raw string) (*httptest.Server, *[]wireRequest) {
	t.Helper()
	var seen []wireRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("Authorization") != "Bearer k" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		var req wireRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		seen = append(seen, req)
		if status != http.StatusOK {
			http.Error(w, "echo: "+strings.Join(req.Texts, " "), status)
			return
		}
		if raw != "" {
			_, _ = w.Write([]byte(raw))
			return
		}
		var resp wireResponse
		resp.OffsetUnit = unit
		for _, text := range req.Texts {
			var res struct {
				Spans []wireSpan `json:"spans"`
			}
			for at := 0; ; {
				i := strings.Index(text[at:], "Alice")
				if i < 0 {
					break
				}
				start := at + i
				s, e := start, start+5
				if unit == "codepoint" {
					s, e = len([]rune(text[:start])), len([]rune(text[:start]))+5
				}
				res.Spans = append(res.Spans, wireSpan{Type: "PERSON", Start: s, End: e})
				at = start + 5
			}
			resp.Results = append(resp.Results, res)
		}
		_ = json.NewEncoder(w).Encode(resp)
	}))
	t.Cleanup(srv.Close)
	return srv, &seen
}

func TestHTTPDetector(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		unit    string
		status  int
		raw     string
		batch   int
		texts   []string
		want    [][]Span
		wantErr string
		calls   int
	}{
		{
			name:  "byte offsets",
			texts: []string{"hi Alice", "no one", "Alice and Alice"},
			want:  [][]Span{{{Type: "person", Start: 3, End: 8}}, nil, {{Type: "person", Start: 0, End: 5}, {Type: "person", Start: 10, End: 15}}},
			calls: 1,
		},
		{
			name:  "code point offsets are converted",
			unit:  "codepoint",
			texts: []string{"café Alice"},
			want:  [][]Span{{{Type: "person", Start: 6, End: 11}}},
			calls: 1,
		},
		{
			name:  "batches split by size",
			batch: 14,
			texts: []string{"Alice one", "Alice two", "three"},
			want:  [][]Span{{{Type: "person", Start: 0, End: 5}}, {{Type: "person", Start: 0, End: 5}}, nil},
			calls: 2,
		},
		{
			name:    "error status does not echo the text",
			status:  http.StatusInternalServerError,
			texts:   []string{"secret Alice"},
			wantErr: "answered 500 Internal Server Error",
			calls:   1,
		},
		{
			name:    "too few results",
			raw:     `{"results":[]}`,
			texts:   []string{"Alice"},
			wantErr: "0 results for 1 texts",
			calls:   1,
		},
		{
			name:    "span outside the text",
			raw:     `{"results":[{"spans":[{"type":"x","start":2,"end":99}]}]}`,
			texts:   []string{"Alice"},
			wantErr: "does not fit a text of 5 bytes",
			calls:   1,
		},
		{
			name:    "not JSON",
			raw:     `Alice is here`,
			texts:   []string{"Alice"},
			wantErr: "not the expected JSON",
			calls:   1,
		},
		{
			name:  "odd type names become pii",
			raw:   `{"results":[{"spans":[{"type":"US SSN!","start":0,"end":5}]}]}`,
			texts: []string{"Alice"},
			want:  [][]Span{{{Type: "pii", Start: 0, End: 5}}},
			calls: 1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status := tc.status
			if status == 0 {
				status = http.StatusOK
			}
			srv, seen := engine(t, tc.unit, status, tc.raw)
			d := &HTTPDetector{URL: srv.URL, Header: http.Header{"Authorization": {"Bearer k"}}, MaxBatchBytes: tc.batch}
			got, err := d.Detect(ctx, tc.texts)
			if len(*seen) != tc.calls {
				t.Errorf("%d requests, want %d", len(*seen), tc.calls)
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				for _, text := range tc.texts {
					if strings.Contains(err.Error(), text) {
						t.Errorf("error quotes the text: %v", err)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("spans = %v, want %v", got, tc.want)
			}
			for _, req := range *seen {
				if req.OffsetUnit != "utf8" {
					t.Errorf("offset_unit = %q", req.OffsetUnit)
				}
			}
		})
	}
}

// TestExternalInDocument: one request for the whole document, and its
// spans redacted beside the built-in ones.
func TestExternalInDocument(t *testing.T) {
	srv, seen := engine(t, "", http.StatusOK, "")
	r := mustRedactor(t, Config{External: &HTTPDetector{URL: srv.URL, Header: http.Header{"Authorization": {"Bearer k"}}}})
	doc := map[string]any{
		"subject": "Call with Alice",
		"dialog":  []any{map[string]any{"type": "text", "body": "Alice: my card is 4111 1111 1111 1111"}},
	}
	rep, err := r.RedactDocument(context.Background(), doc)
	if err != nil {
		t.Fatal(err)
	}
	if len(*seen) != 1 || len((*seen)[0].Texts) != 2 {
		t.Errorf("requests = %v, want one with two texts", *seen)
	}
	if doc["subject"] != "Call with [PERSON]" {
		t.Errorf("subject = %q", doc["subject"])
	}
	if got := doc["dialog"].([]any)[0].(map[string]any)["body"]; got != "[PERSON]: my card is [CARD]" {
		t.Errorf("body = %q", got)
	}
	if c := rep.Counts(); c["person"] != 2 || c[Card] != 1 {
		t.Errorf("counts = %v", c)
	}
}

// TestExternalFailureChangesNothing: a redactor that could not ask its
// engine leaves the document as it was and says so.
func TestExternalFailureChangesNothing(t *testing.T) {
	srv, _ := engine(t, "", http.StatusServiceUnavailable, "")
	r := mustRedactor(t, Config{External: &HTTPDetector{URL: srv.URL, Header: http.Header{"Authorization": {"Bearer k"}}}})
	doc := map[string]any{"subject": "card 4111 1111 1111 1111"}
	if _, err := r.RedactDocument(context.Background(), doc); err == nil {
		t.Fatal("no error")
	}
	if doc["subject"] != "card 4111 1111 1111 1111" {
		t.Errorf("subject changed to %q", doc["subject"])
	}
}
