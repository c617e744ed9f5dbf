package api

import (
	"fmt"
	"net/http"
	"reflect"
	"testing"
)

// TestCriticalRefused: a vCon whose critical list (or legacy must_support)
// names an extension the API is not told it supports is answered 422 in
// FastAPI's shape, naming the extension at its index, and nothing is
// written: no body, no index, no push. One naming only supported
// extensions is stored and queued.
func TestCriticalRefused(t *testing.T) {
	cases := []struct {
		name      string
		supported []string // nil: the default (CC)
		field     string
		value     string
		wantLoc   []any // nil: accepted
	}{
		{name: "unknown extension", field: "critical", value: `["x-lawful-intercept"]`, wantLoc: []any{"body", "critical", float64(0)}},
		{name: "second of two", field: "critical", value: `["CC","x-lawful-intercept"]`, wantLoc: []any{"body", "critical", float64(1)}},
		{name: "legacy must_support", field: "must_support", value: `["x-old"]`, wantLoc: []any{"body", "must_support", float64(0)}},
		{name: "one name, not a list", field: "critical", value: `"x-lawful-intercept"`, wantLoc: []any{"body", "critical"}},
		{name: "none supported", supported: []string{}, field: "critical", value: `["CC"]`, wantLoc: []any{"body", "critical", float64(0)}},
		{name: "default supports CC", field: "critical", value: `["CC"]`},
		{name: "configured", supported: []string{"x-lawful-intercept"}, field: "critical", value: `["x-lawful-intercept"]`},
		{name: "empty list", field: "critical", value: `[]`},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(o *Options) { o.SupportedExtensions = tc.supported })
			uuid := fmt.Sprintf("018e5a2c-6b1f-7c3a-9d4e-%012d", i)
			before := dump(t, h.rdb)
			rec := h.doJSON(http.MethodPost, "/api/vcon?ingress_lists=in", vc(uuid, tc.field, tc.value))
			if tc.wantLoc == nil {
				mustStatus(t, rec, http.StatusCreated)
				if n := h.rdb.LLen(t.Context(), "in").Val(); n != 1 {
					t.Errorf("ingress holds %d uuids, want 1", n)
				}
				return
			}
			mustStatus(t, rec, http.StatusUnprocessableEntity)
			got := decode[struct {
				Detail []struct {
					Loc  []any  `json:"loc"`
					Msg  string `json:"msg"`
					Type string `json:"type"`
				} `json:"detail"`
			}](t, rec)
			if len(got.Detail) != 1 || got.Detail[0].Type != "unsupported_critical" || !reflect.DeepEqual(got.Detail[0].Loc, tc.wantLoc) {
				t.Fatalf("detail %+v, want one unsupported_critical at %v", got.Detail, tc.wantLoc)
			}
			if d := diffDumps(before, dump(t, h.rdb)); d != "" {
				t.Errorf("a refused vCon wrote to Redis: %s", d)
			}
		})
	}
}
