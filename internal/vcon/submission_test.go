package vcon

import (
	"fmt"
	"strings"
	"testing"
)

// The expectations below are what pydantic 2.12 (conserver's) answers for
// the same input: the accepted value as Python's isoformat() writes it, or
// the error type. internal/api/validation_test.go runs conserver's rules
// through the HTTP API; these pin the pieces of pydantic's lax mode that
// CheckSubmission re-implements.

const subHead = `"vcon":"0.0.1","uuid":"0185f9a4-6f2b-8f77-a6e3-9b2c1d0e4f5a"`

func submit(t *testing.T, doc string) (*VCon, []FieldError, bool) {
	t.Helper()
	v, err := Parse([]byte(doc))
	if err != nil {
		t.Fatalf("Parse(%s): %v", doc, err)
	}
	errs, changed := CheckSubmission(v)
	return v, errs, changed
}

func TestCheckSubmissionCreatedAt(t *testing.T) {
	tests := []struct {
		in     string // raw JSON
		stored string // "" when refused
		typ    string // error type when refused
	}{
		{`"2024-01-15T10:30:00Z"`, "2024-01-15T10:30:00Z", ""}, // readable: kept as sent
		{`"2024-01-15 10:30:00"`, "2024-01-15 10:30:00", ""},
		{`"2024-01-15t10:30z"`, "2024-01-15t10:30z", ""},
		{`"2024-01-15T10:30:00.123456789+05:30"`, "2024-01-15T10:30:00.123456789+05:30", ""},
		{`"2024-01-15T10:30:00-0800"`, "2024-01-15T10:30:00-0800", ""},
		{`"2024-01-15"`, "2024-01-15", ""},
		{`"2024-01-15_10:30:00,5Z"`, "2024-01-15T10:30:00.500000+00:00", ""}, // unreadable by ParseTime: rewritten
		{`"20240115"`, "1970-08-23T06:15:15+00:00", ""},                      // a numeric string is a Unix time
		{`"-5"`, "1969-12-31T23:59:55+00:00", ""},
		{`1700000000`, "2023-11-14T22:13:20+00:00", ""},
		{`1700000000.25`, "2023-11-14T22:13:20.250000+00:00", ""},
		{`20000000000`, "2603-10-11T11:33:20+00:00", ""},                  // seconds up to 2e10
		{`20000000001`, "1970-08-20T11:33:20.001000+00:00", ""},           // milliseconds above
		{`253402300799999`, "9999-12-31T23:59:59.999000+00:00", ""},       // the last millisecond
		{`253402300800000`, "", "datetime_parsing"},                       // after 9999
		{`-1e15`, "", "datetime_parsing"},                                 // before year 1
		{`"2024-1-15"`, "", "datetime_from_date_parsing"},                 // month needs two digits
		{`"2024-01-15T10:30:5"`, "", "datetime_from_date_parsing"},        // so do seconds
		{`"2024-01-15T10:30:00."`, "", "datetime_from_date_parsing"},      // a fraction needs a digit
		{`"2024-01-15T10:30:00+24:00"`, "", "datetime_from_date_parsing"}, // offset below a day
		{`"2024-01-15T10:30:00 Z"`, "", "datetime_from_date_parsing"},
		{`"2024-01-15T10:30:00UTC"`, "", "datetime_from_date_parsing"},
		{`"2024-01-15T10"`, "", "datetime_from_date_parsing"},
		{`"2024-01-15T10:30:60Z"`, "", "datetime_from_date_parsing"},
		{`"2024-13-01"`, "", "datetime_from_date_parsing"},
		{`"2023-02-29"`, "", "datetime_from_date_parsing"},
		{`"2024/01/15"`, "", "datetime_from_date_parsing"},
		{`"1e9"`, "", "datetime_from_date_parsing"},
		{`"0000-01-01"`, "", "datetime_parsing"},
		{`[]`, "", "datetime_type"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			v, errs, _ := submit(t, `{`+subHead+`,"created_at":`+tt.in+`}`)
			if tt.stored == "" {
				if len(errs) != 1 || errs[0].Type != tt.typ || fmt.Sprint(errs[0].Path) != "[created_at]" {
					t.Fatalf("errors %v, want one %s at created_at", errs, tt.typ)
				}
				return
			}
			if len(errs) != 0 {
				t.Fatalf("errors %v, want none", errs)
			}
			if got := v.Doc()["created_at"]; got != tt.stored {
				t.Errorf("stored %v, want %s", got, tt.stored)
			}
			if _, ok := CreatedAt(v); !ok {
				t.Errorf("stored created_at %v is not readable", v.Doc()["created_at"])
			}
		})
	}
}

func TestCheckSubmissionUUID(t *testing.T) {
	const canon = "0185f9a4-6f2b-8f77-a6e3-9b2c1d0e4f5a"
	tests := []struct{ in, typ, msg string }{
		{canon, "", ""},
		{strings.ToUpper(canon), "", ""},
		{strings.ReplaceAll(canon, "-", ""), "", ""},
		{"{" + canon + "}", "", ""},
		{"urn:uuid:" + strings.ToUpper(canon), "", ""},
		{"URN:UUID:" + canon, "uuid_parsing", "invalid character: found `U` at 1"},
		{"{" + strings.ReplaceAll(canon, "-", "") + "}", "uuid_parsing", "invalid group count: expected 5, found 1"},
		{canon[:35], "uuid_parsing", "invalid group length in group 4: expected 12, found 11"},
		{canon + "z", "uuid_parsing", "invalid character: found `z` at 37"},
		{"abc", "uuid_parsing", "invalid length: expected length 32 for simple format, found 3"},
		{canon[:8] + "--" + canon[9:35], "uuid_parsing", "invalid group count: expected 5, found 6"},
		{canon + "\n", "uuid_parsing", "invalid character: found `\n` at 37"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			v, errs, changed := submit(t, `{"vcon":"0.0.1","created_at":"2024-01-15T10:30:00Z","uuid":`+fmt.Sprintf("%q", tt.in)+`}`)
			if tt.typ == "" {
				if len(errs) != 0 || v.UUID() != canon || changed != (tt.in != canon) {
					t.Fatalf("errors %v, uuid %s, changed %v; want the canonical uuid", errs, v.UUID(), changed)
				}
				return
			}
			if len(errs) != 1 || errs[0].Type != tt.typ || errs[0].Msg != "Input should be a valid UUID, "+tt.msg {
				t.Fatalf("errors %+v, want %s %q", errs, tt.typ, tt.msg)
			}
		})
	}
}

func TestCheckSubmissionCoercesNumbers(t *testing.T) {
	tests := []struct {
		field, in string
		stored    string // "" when refused
		typ       string
	}{
		{"duration", `120`, "120", ""},
		{"duration", `"1e3"`, "1000", ""},
		{"duration", `"1_000"`, "1000", ""},
		{"duration", `" 2.5 "`, "2.5", ""},
		{"duration", `".5"`, "0.5", ""},
		{"duration", `false`, "0", ""},
		{"duration", `"0x10"`, "", "float_parsing"},
		{"duration", `"1 2"`, "", "float_parsing"},
		{"duration", `"-0.1"`, "", "value_error"},
		{"duration", `"nan"`, "", "finite_number"},
		{"duration", `[]`, "", "float_type"},
		{"parties", `["1.0"]`, "[1]", ""},
		{"parties", `["+1"]`, "[1]", ""},
		{"parties", `["-0"]`, "[0]", ""},
		{"parties", `["1_0"]`, "[10]", ""},
		{"parties", `[2.0]`, "[2]", ""},
		{"parties", `[false]`, "[0]", ""},
		{"parties", `["1e0"]`, "", "int_parsing"},
		{"parties", `["1.5"]`, "", "int_parsing"},
		{"parties", `["_1"]`, "", "int_parsing"},
		{"parties", `["١"]`, "", "int_parsing"},
		{"parties", `[1e30]`, "", "int_parsing_size"},
		{"parties", `[1.0000000001]`, "", "int_from_float"},
		{"parties", `[{}]`, "", "int_type"},
	}
	for _, tt := range tests {
		t.Run(tt.field+" "+tt.in, func(t *testing.T) {
			parties := strings.Repeat(`{},`, 11) + `{}`
			v, errs, _ := submit(t, `{`+subHead+`,"created_at":"2024-01-15T10:30:00Z","parties":[`+parties+`],"dialog":[{"`+tt.field+`":`+tt.in+`}]}`)
			if tt.stored == "" {
				if len(errs) != 1 || errs[0].Type != tt.typ || errs[0].Path[0] != Dialog {
					t.Fatalf("errors %v, want one %s in the dialog", errs, tt.typ)
				}
				return
			}
			if len(errs) != 0 {
				t.Fatalf("errors %v, want none", errs)
			}
			if got := fmt.Sprint(v.List(Dialog)[0][tt.field]); got != tt.stored {
				t.Errorf("stored %s, want %s", got, tt.stored)
			}
		})
	}
}

func TestCheckSubmissionPatternsArePythons(t *testing.T) {
	// Python's re: "$" also matches before one final newline; \d and \s are
	// Unicode classes.
	tests := []struct {
		party, dialog string
		ok            bool
	}{
		{`{"tel":"+15550001111\n"}`, `{}`, true},
		{`{"tel":"+15550001111\n\n"}`, `{}`, true}, // \s takes the first newline
		{`{"tel":"+١٢٣٤٥"}`, `{}`, true},
		{`{"tel":"+1\u00a0555\u2028000"}`, `{}`, true},
		{`{"tel":"+1\u000b555"}`, `{}`, true},
		{`{"tel":"((((("}`, `{}`, true},
		{`{"tel":"+1_555_0000"}`, `{}`, false},
		{`{}`, `{"mimetype":"audio/wav\n"}`, true},
		{`{}`, `{"mimetype":"audio/wav\n\n"}`, false},
		{`{}`, `{"mimetype":"A#/b.+"}`, true},
		{`{}`, `{"mimetype":"a/-b"}`, false},
		{`{}`, `{"mimetype":"a/b/c"}`, false},
		{`{}`, `{"mimetype":"aé/b"}`, false},
		{`{}`, `{"url":"a://\n"}`, false},
		{`{}`, `{"url":"http://a\nb"}`, true},
		{`{}`, `{"url":"é://x"}`, false},
		{`{}`, `{"url":" http://x"}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.party+tt.dialog, func(t *testing.T) {
			_, errs, _ := submit(t, `{`+subHead+`,"created_at":"2024-01-15T10:30:00Z","parties":[`+tt.party+`],"dialog":[`+tt.dialog+`]}`)
			if (len(errs) == 0) != tt.ok {
				t.Errorf("errors %v, want accepted %v", errs, tt.ok)
			}
		})
	}
}

func TestCheckSubmissionReportsInPydanticOrder(t *testing.T) {
	_, errs, _ := submit(t, `{"uuid":1,"created_at":"x","parties":null,"dialog":[{"url":"x","duration":-1,"parties":[3],"alg":"MD5"}]}`)
	var got []string
	for _, e := range errs {
		got = append(got, fmt.Sprint(e.Path)+" "+e.Type)
	}
	want := []string{"[vcon] missing", "[uuid] uuid_type", "[created_at] datetime_from_date_parsing", "[parties] list_type",
		"[dialog 0 duration] value_error", "[dialog 0 url] value_error", "[dialog 0 alg] value_error"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("errors\n%s\nwant (pydantic's order; party indices only once the fields are valid)\n%s", strings.Join(got, "; "), strings.Join(want, "; "))
	}
}

func TestCheckSubmissionLeavesValidDocumentsAlone(t *testing.T) {
	doc := `{` + subHead + `,"created_at":"2024-01-15T10:30:00Z","parties":[{"tel":"+15550001111"}],"dialog":[{"parties":[0],"duration":12.5,"url":"https://e.com/r.wav","mimetype":"audio/wav","alg":"SHA-512"}],"amended":{},"x":[1]}`
	v, errs, changed := submit(t, doc)
	if len(errs) != 0 || changed {
		t.Fatalf("errors %v, changed %v; want none", errs, changed)
	}
	out, _ := v.Marshal()
	again, _ := Parse(out)
	if fmt.Sprint(again.Doc()) != fmt.Sprint(mustParse(t, doc).Doc()) {
		t.Errorf("document changed: %s", out)
	}
}
