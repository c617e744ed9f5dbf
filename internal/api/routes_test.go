package api

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/apiwire"
)

// TestRoutesWithAndWithoutPrefix: every route of conserver's api.py answers
// at /api/X and at /X, as conserver's FastAPI(root_path="/api") does; the
// two answers are the same. /metrics is ours and only at /metrics.
func TestRoutesWithAndWithoutPrefix(t *testing.T) {
	h := newSubmitHarness(t)
	ctx := context.Background()
	h.seed(u1, u2)
	partner := []reqOpt{noToken(), withHeader(apiwire.DefaultHeaderName, partnerKey)}
	routes := []struct {
		method, path, body string
		code               int
		opts               []reqOpt
	}{
		{"GET", "/health", "", 200, []reqOpt{noToken()}},
		{"GET", "/version", "", 200, []reqOpt{noToken()}},
		{"GET", "/stats/queue?list_name=work", "", 200, []reqOpt{noToken()}},
		{"POST", "/vcon?ingress_lists=work", testVcon(u3), 201, nil},
		{"POST", "/vcon/external-ingress?ingress_list=partner", testVcon(u3), 204, partner},
		{"GET", "/vcon", "", 200, nil},
		{"GET", "/vcon/" + u1, "", 200, nil},
		{"GET", "/vcons?vcon_uuids=" + u1 + "&vcon_uuids=" + u2, "", 200, nil},
		{"GET", "/vcons/search?tel=%2B15551234567", "", 200, nil},
		{"POST", "/vcon/ingress?ingress_list=out", `["` + u1 + `"]`, 204, nil},
		{"GET", "/vcon/count?egress_list=out", "", 200, nil},
		{"GET", "/vcon/egress?egress_list=out&limit=1", "", 200, nil},
		{"GET", "/dlq?ingress_list=work", "", 200, nil},
		{"POST", "/dlq/reprocess?ingress_list=work&count=1", "", 200, nil},
		{"GET", "/dlq/storage?storage_name=files", "", 200, nil},
		{"POST", "/dlq/storage/reprocess?storage_name=files&count=1", "", 200, nil},
		{"GET", "/config", "", 200, nil},
		{"POST", "/config", `{"chains":{}}`, 403, nil}, // served, refused without --allow-config-write
		{"GET", "/index_vcons", "", 200, nil},
		{"DELETE", "/vcon/" + u2, "", 204, nil},
	}
	for _, rt := range routes {
		t.Run(rt.method+" "+strings.SplitN(rt.path, "?", 2)[0], func(t *testing.T) {
			var bodies []string
			for _, prefix := range []string{RootPath, ""} {
				if rt.method == "GET" && strings.HasPrefix(rt.path, "/vcon/egress") {
					h.rdb.RPush(ctx, "out", u1) // each call pops one
				}
				rec := h.doJSON(rt.method, prefix+rt.path, rt.body, rt.opts...)
				if rec.Code != rt.code {
					t.Errorf("%s %s: status %d, want %d; body %s", rt.method, prefix+rt.path, rec.Code, rt.code, rec.Body.String())
				}
				if rec.Header().Get(HeaderVersion) == "" {
					t.Errorf("%s %s: no %s header", rt.method, prefix+rt.path, HeaderVersion)
				}
				bodies = append(bodies, rec.Body.String())
			}
			if rt.path != "/health" && rt.path != "/vcon" && !strings.HasPrefix(rt.path, "/index_vcons") && bodies[0] != bodies[1] {
				t.Errorf("answers differ:\n/api: %s\n/:    %s", bodies[0], bodies[1])
			}
		})
	}
	for _, path := range []string{"/api/metrics", "/apivcon", "/api", "/api/api/vcon"} {
		if rec := h.doJSON("GET", path, ""); rec.Code != http.StatusNotFound {
			t.Errorf("GET %s: status %d, want 404", path, rec.Code)
		}
	}
	if rec := h.doJSON("GET", "/metrics", "", noToken()); rec.Code != http.StatusOK {
		t.Errorf("GET /metrics: status %d", rec.Code)
	}
}

// TestFollowerWithEitherBase walks conserver's follower (conserver/follower.py):
// GET {url}/vcon/egress?egress_list=…&limit=…, then GET {url}/vcon/{uuid}
// for each uuid, where url is whatever its configuration names.
func TestFollowerWithEitherBase(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	h.seed(u1, u2)
	for _, base := range []string{"", RootPath} {
		h.rdb.RPush(ctx, "out", u1, u2)
		rec := h.doJSON("GET", base+"/vcon/egress?egress_list=out&limit=5", "")
		mustStatus(t, rec, http.StatusOK)
		uuids := decode[[]string](t, rec)
		if len(uuids) != 2 {
			t.Fatalf("base %q: egress %v, want 2 uuids", base, uuids)
		}
		for _, u := range uuids {
			rec := h.doJSON("GET", base+"/vcon/"+u, "")
			mustStatus(t, rec, http.StatusOK)
			if got := decode[map[string]any](t, rec)["uuid"]; got != u {
				t.Errorf("base %q: GET /vcon/%s answered %v", base, u, got)
			}
		}
	}
}
