package vcon

import (
	"encoding/json"
	"reflect"
	"testing"
)

const okHead = `"uuid":"0185f9a4-6f2b-8f77-a6e3-9b2c1d0e4f5a","created_at":"2024-01-15T10:30:00Z"`

func TestValidateRejects(t *testing.T) {
	tests := []struct {
		name     string
		doc      string
		wantPath []any
		wantType string
	}{
		{"uuid missing", `{"created_at":"2024-01-15T10:30:00Z"}`, []any{"uuid"}, "missing"},
		{"uuid a number", `{"uuid":5,"created_at":"2024-01-15T10:30:00Z"}`, []any{"uuid"}, "string_type"},
		{"uuid not a uuid", `{"uuid":"abc","created_at":"2024-01-15T10:30:00Z"}`, []any{"uuid"}, "uuid_parsing"},
		{"uuid bad hex", `{"uuid":"0185f9a4-6f2b-8f77-a6e3-9b2c1d0e4f5g","created_at":"2024-01-15T10:30:00Z"}`, []any{"uuid"}, "uuid_parsing"},
		{"created_at missing", `{"uuid":"0185f9a4-6f2b-8f77-a6e3-9b2c1d0e4f5a"}`, []any{"created_at"}, "missing"},
		{"created_at a number", `{"uuid":"0185f9a4-6f2b-8f77-a6e3-9b2c1d0e4f5a","created_at":1700000000}`, []any{"created_at"}, "string_type"},
		{"created_at garbage", `{"uuid":"0185f9a4-6f2b-8f77-a6e3-9b2c1d0e4f5a","created_at":"last tuesday"}`, []any{"created_at"}, "datetime_parsing"},
		{"vcon not a string", `{` + okHead + `,"vcon":0.4}`, []any{"vcon"}, "string_type"},
		{"parties an object", `{` + okHead + `,"parties":{"tel":"1"}}`, []any{"parties"}, "list_type"},
		{"dialog a string", `{` + okHead + `,"dialog":"hello"}`, []any{"dialog"}, "list_type"},
		{"analysis item not an object", `{` + okHead + `,"analysis":[{},3]}`, []any{"analysis", 1}, "dict_type"},
		{"attachments item a list", `{` + okHead + `,"attachments":[[]]}`, []any{"attachments", 0}, "dict_type"},
		{"party index out of range", `{` + okHead + `,"parties":[{}],"dialog":[{"parties":1}]}`, []any{"dialog", 0, "parties"}, "value_error"},
		{"party index in list out of range", `{` + okHead + `,"parties":[{},{}],"dialog":[{"parties":[0,1]},{"parties":[0,2]}]}`, []any{"dialog", 1, "parties", 1}, "value_error"},
		{"negative party index", `{` + okHead + `,"parties":[{}],"dialog":[{"parties":[-1]}]}`, []any{"dialog", 0, "parties", 0}, "value_error"},
		{"party index a string", `{` + okHead + `,"parties":[{}],"dialog":[{"parties":["0"]}]}`, []any{"dialog", 0, "parties", 0}, "int_type"},
		{"party index a fraction", `{` + okHead + `,"parties":[{}],"dialog":[{"parties":0.5}]}`, []any{"dialog", 0, "parties"}, "int_type"},
		{"nested party index out of range", `{` + okHead + `,"parties":[{}],"dialog":[{"parties":[0,[0,4]]}]}`, []any{"dialog", 0, "parties", 1, 1}, "value_error"},
		{"party indices without parties", `{` + okHead + `,"dialog":[{"parties":[0]}]}`, []any{"dialog", 0, "parties", 0}, "value_error"},
		{"negative duration", `{` + okHead + `,"dialog":[{"duration":-1.5}]}`, []any{"dialog", 0, "duration"}, "greater_than_equal"},
		{"duration a string", `{` + okHead + `,"dialog":[{},{"duration":"60"}]}`, []any{"dialog", 1, "duration"}, "float_type"},
		{"redacted a string", `{` + okHead + `,"redacted":"yes"}`, []any{"redacted"}, "dict_or_list_type"},
		{"appended a number", `{` + okHead + `,"appended":1}`, []any{"appended"}, "dict_or_list_type"},
		{"group a bool", `{` + okHead + `,"group":true}`, []any{"group"}, "dict_or_list_type"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v, errs, err := ParseAndValidate([]byte(tt.doc))
			if err != nil {
				t.Fatalf("ParseAndValidate: %v", err)
			}
			if len(errs) != 1 {
				t.Fatalf("Validate = %v, want exactly one error at %v", errs, tt.wantPath)
			}
			if !reflect.DeepEqual(errs[0].Path, tt.wantPath) || errs[0].Type != tt.wantType || errs[0].Msg == "" {
				t.Fatalf("Validate = %+v, want path %v type %s", errs[0], tt.wantPath, tt.wantType)
			}
			if got := Validate(v); !reflect.DeepEqual(got, errs) {
				t.Fatalf("Validate is not deterministic: %v vs %v", got, errs)
			}
		})
	}
}

func TestValidateAccepts(t *testing.T) {
	docs := []string{
		`{` + okHead + `}`,
		`{"uuid":"0185F9A4-6F2B-8F77-A6E3-9B2C1D0E4F5A","created_at":"2024-01-15 10:30:00"}`,
		`{` + okHead + `,"vcon":"0.0.1","parties":[{},{}],"dialog":[{"parties":0},{"parties":[1,0]},{"parties":[[0,1],1]},{"duration":0},{"duration":12.5}],"group":[{}],"redacted":{},"amended":[]}`,
		`{` + okHead + `,"parties":null,"dialog":[{"parties":null,"duration":null}],"x":{"y":[1,2]}}`,
	}
	for _, doc := range docs {
		if errs := Validate(mustParse(t, doc)); len(errs) != 0 {
			t.Errorf("Validate(%s) = %v, want none", doc, errs)
		}
	}
}

func TestValidateReportsEveryError(t *testing.T) {
	errs := Validate(mustParse(t, `{"uuid":1,"dialog":[{"duration":-1}],"parties":"x"}`))
	var got [][]any
	for _, e := range errs {
		got = append(got, e.Path)
	}
	want := [][]any{{"uuid"}, {"created_at"}, {"parties"}, {"dialog", 0, "duration"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("paths = %v, want %v", got, want)
	}
}

func TestDetailsIsFastAPIShaped(t *testing.T) {
	errs := Validate(mustParse(t, `{`+okHead+`,"parties":[{}],"dialog":[{"parties":[3]}]}`))
	b, err := json.Marshal(map[string]any{"detail": Details(errs)})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"detail":[{"loc":["body","dialog",0,"parties",0],"msg":"Value error, party index 3 does not exist (the vCon has 1 parties)","type":"value_error"}]}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
}

func TestValidUUID(t *testing.T) {
	tests := map[string]bool{
		"0185f9a4-6f2b-8f77-a6e3-9b2c1d0e4f5a":  true,
		"0185F9A4-6F2B-8F77-A6E3-9B2C1D0E4F5A":  true,
		"00000000-0000-0000-0000-000000000000":  true,
		"0185f9a46f2b8f77a6e39b2c1d0e4f5a":      false,
		"0185f9a4-6f2b-8f77-a6e3-9b2c1d0e4f5":   false,
		"0185f9a4-6f2b-8f77-a6e3-9b2c1d0e4f5aa": false,
		"0185f9a4_6f2b-8f77-a6e3-9b2c1d0e4f5a":  false,
		"{185f9a4-6f2b-8f77-a6e3-9b2c1d0e4f5a}": false,
		"":                                      false,
	}
	for s, want := range tests {
		if got := ValidUUID(s); got != want {
			t.Errorf("ValidUUID(%q) = %v, want %v", s, got, want)
		}
	}
}
