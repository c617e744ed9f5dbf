package pipeline

import (
	"context"
	"encoding/json"
	"slices"
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
	"github.com/vcon-operator/vcon-operator/internal/vconstore"
)

// TestLawfulBasisGate runs links.lawful_basis in a real chain: a vCon whose
// consent lacks a purpose the chain needs stops before the next link, is
// neither stored nor pushed to egress nor dead-lettered, keeps its body in
// Redis with the evaluation recorded, and with on_missing: route goes to
// the review list.
func TestLawfulBasisGate(t *testing.T) {
	const in, out, review = "ingress", "egress", "consent_review"
	consent := func(purpose string, granted bool) []byte {
		uuid := testUUID(0)
		var doc map[string]any
		_ = json.Unmarshal(document(uuid, 1000), &doc)
		doc["attachments"] = []any{map[string]any{
			"purpose": "lawful_basis", "party": 0, "dialog": 0, "encoding": "json",
			"body": map[string]any{
				"lawful_basis": "consent", "expiration": nil,
				"purpose_grants": []any{map[string]any{"purpose": purpose, "granted": granted, "granted_at": "2024-03-05T10:00:00Z"}},
			},
		}}
		b, _ := json.Marshal(doc)
		return b
	}
	gate := func(onMissing string) mod {
		o := map[string]any{"required_purposes": []any{"transcription"}, "on_missing": onMissing}
		if onMissing == "route" {
			o["route_to"] = []any{review}
		}
		return mod{"consent", "links.lawful_basis", o}
	}
	tag := mod{"after", "links.tag", map[string]any{"tags": []any{"transcribed"}}}
	store := mod{"copy", "storage.redis_storage", map[string]any{"prefix": "copy"}}
	tests := []struct {
		name                   string
		body                   []byte
		onMissing              string
		egress, stored, routed bool
		decision               string
	}{
		{"granted: processed", consent("transcription", true), "halt", true, true, false, "granted"},
		{"refused, halt: filtered", consent("transcription", false), "halt", false, false, false, "denied"},
		{"other purpose only, route: to review", consent("analysis", true), "route", false, false, true, "denied"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			e := newEnv(t)
			ch := e.chain(t, "main", []string{in}, []string{out}, []mod{gate(tc.onMissing), tag}, []mod{store})
			p, _, _ := e.processor(ch, testOptions(), "w")
			uuid := testUUID(0)
			e.putBody(t, uuid, tc.body, 0)
			e.rdb.RPush(ctx, in, uuid)
			if err := p.Process(ctx, e.take(t, p, in)); err != nil {
				t.Fatalf("case %d: %v", i, err)
			}
			if got := slices.Equal(e.list(t, out), []string{uuid}); got != tc.egress {
				t.Errorf("egress = %v, want %v", got, tc.egress)
			}
			if got := e.rdb.Exists(ctx, "copy:"+uuid).Val() == 1; got != tc.stored {
				t.Errorf("stored = %v, want %v", got, tc.stored)
			}
			if got := slices.Equal(e.list(t, review), []string{uuid}); got != tc.routed {
				t.Errorf("routed = %v, want %v", got, tc.routed)
			}
			if dlq := e.list(t, queue.DLQKey(in)); len(dlq) != 0 {
				t.Errorf("dead-lettered: %v", dlq)
			}
			raw, err := e.rdb.Get(ctx, vconstore.Key(uuid)).Bytes()
			if err != nil {
				t.Fatalf("body: %v", err)
			}
			v, _ := vcon.Parse(raw)
			if _, ok := vcon.Tag(v, "transcribed"); ok != tc.egress {
				t.Errorf("link after the gate ran = %v, want %v", ok, tc.egress)
			}
			// Normalize writes a JSON body as text, as conserver does.
			var body map[string]any
			for _, x := range v.List(vcon.Analysis) {
				if text, ok := x["body"].(string); ok && x["type"] == "lawful_basis_evaluation" {
					_ = json.Unmarshal([]byte(text), &body)
				}
			}
			if body["decision"] != tc.decision {
				t.Errorf("recorded evaluation = %v, want decision %s", body, tc.decision)
			}
		})
	}
}
