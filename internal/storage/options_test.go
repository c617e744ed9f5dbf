package storage

import (
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// testVCon builds a small normalised vCon; createdAt "" leaves it out.
func testVCon(t testing.TB, uuid, createdAt, subject string) *vcon.VCon {
	t.Helper()
	doc := map[string]any{
		"vcon":    "0.4.0",
		"uuid":    uuid,
		"parties": []any{map[string]any{"tel": "+15551234567"}},
		"amended": map[string]any{"uuid": "0190d6f0-0000-7000-8000-000000000000"},
		"x_unknown": map[string]any{
			"kept": json.Number("12345678901234567890"),
		},
	}
	if createdAt != "" {
		doc["created_at"] = createdAt
	}
	if subject != "" {
		doc["subject"] = subject
	}
	return &vcon.VCon{Doc: doc}
}

func TestOptions(t *testing.T) {
	tests := []struct {
		name    string
		raw     map[string]any
		read    func(o *options) any
		want    any
		wantErr string // substring; "" means no error
	}{
		{"string default on nil map", nil, func(o *options) any { return o.string("k", "d") }, "d", ""},
		{"string default on explicit null", map[string]any{"k": nil}, func(o *options) any { return o.string("k", "d") }, "d", ""},
		{"string", map[string]any{"k": "v"}, func(o *options) any { return o.string("k", "d") }, "v", ""},
		{"string wrong type", map[string]any{"k": 5}, func(o *options) any { return o.string("k", "d") }, "d", `option "k": want a string`},
		{"bool", map[string]any{"k": false}, func(o *options) any { return o.bool("k", true) }, false, ""},
		{"bool from 1", map[string]any{"k": 1}, func(o *options) any { return o.bool("k", false) }, true, ""},
		{"bool from \"false\"", map[string]any{"k": "false"}, func(o *options) any { return o.bool("k", true) }, false, ""},
		{"bool wrong", map[string]any{"k": "maybe"}, func(o *options) any { return o.bool("k", true) }, true, `option "k": want true or false`},
		{"bool from 2", map[string]any{"k": 2}, func(o *options) any { return o.bool("k", true) }, true, `option "k"`},
		{"int from int", map[string]any{"k": 7}, func(o *options) any { return o.int("k", 1) }, int64(7), ""},
		{"int from float64", map[string]any{"k": 7.0}, func(o *options) any { return o.int("k", 1) }, int64(7), ""},
		{"int from json.Number", map[string]any{"k": json.Number("7")}, func(o *options) any { return o.int("k", 1) }, int64(7), ""},
		{"int from string", map[string]any{"k": " 7"}, func(o *options) any { return o.int("k", 1) }, int64(7), ""},
		{"int fraction", map[string]any{"k": 7.5}, func(o *options) any { return o.int("k", 1) }, int64(1), `option "k": want a whole number`},
		{"int word", map[string]any{"k": "big"}, func(o *options) any { return o.int("k", 1) }, int64(1), `option "k": want a whole number`},
		{"required string", map[string]any{"k": "v"}, func(o *options) any { return o.required("k") }, "v", ""},
		{"required number", map[string]any{"k": 5432}, func(o *options) any { return o.required("k") }, "5432", ""},
		{"required float", map[string]any{"k": 5432.0}, func(o *options) any { return o.required("k") }, "5432", ""},
		{"required missing", map[string]any{}, func(o *options) any { return o.required("k") }, "", `option "k": required, missing`},
		{"required empty", map[string]any{"k": ""}, func(o *options) any { return o.required("k") }, "", `option "k": required, empty`},
		{"mode from PyYAML octal", map[string]any{"k": 420}, func(o *options) any { return o.fileMode("k", 0) }, os.FileMode(0o644), ""},
		{"mode from YAML 1.2 decimal", map[string]any{"k": 644}, func(o *options) any { return o.fileMode("k", 0) }, os.FileMode(0o644), ""},
		{"mode from string", map[string]any{"k": "0750"}, func(o *options) any { return o.fileMode("k", 0) }, os.FileMode(0o750), ""},
		{"mode from 0o string", map[string]any{"k": "0o600"}, func(o *options) any { return o.fileMode("k", 0) }, os.FileMode(0o600), ""},
		{"mode too large", map[string]any{"k": 1023}, func(o *options) any { return o.fileMode("k", 0o644) }, os.FileMode(0o644), `option "k": want permissions between`},
		{"mode not octal", map[string]any{"k": "rwx"}, func(o *options) any { return o.fileMode("k", 0o644) }, os.FileMode(0o644), `option "k": want octal`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := newOptions(tc.raw)
			got := tc.read(o)
			if got != tc.want {
				t.Errorf("value = %#v, want %#v", got, tc.want)
			}
			err := o.err()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("error = %v, want one containing %q", err, tc.wantErr)
			}
		})
	}
}

func TestOptionsNamesEveryBadKey(t *testing.T) {
	o := newOptions(map[string]any{"b": "x", "a": "y"})
	o.int("b", 0)
	o.bool("a", false)
	err := o.err()
	if err == nil || !strings.Contains(err.Error(), `"a"`) || !strings.Contains(err.Error(), `"b"`) {
		t.Fatalf("error = %v, want both keys named", err)
	}
}
