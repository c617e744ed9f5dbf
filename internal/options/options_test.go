package options

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

// TestReader pins each rule of the package doc: what is read, what is the
// default, and the exact error (key, what is expected, what was there).
func TestReader(t *testing.T) {
	tests := []struct {
		name    string
		raw     map[string]any
		read    func(r *Reader) any
		want    any
		wantErr string // the whole error; "" means none
	}{
		// Absent, null, unknown.
		{"default on nil options", nil, func(r *Reader) any { return r.String("k", "d") }, "d", ""},
		{"default on null", map[string]any{"k": nil}, func(r *Reader) any { return r.String("k", "d") }, "d", ""},

		// Text.
		{"string as written", map[string]any{"k": "  a b \n"}, func(r *Reader) any { return r.String("k", "") }, "  a b \n", ""},
		{"string of the wrong type", map[string]any{"k": 5}, func(r *Reader) any { return r.String("k", "d") }, "d", `option "k": want a string, got 5`},
		{"name trimmed", map[string]any{"k": " bucket\n"}, func(r *Reader) any { return r.Name("k", "") }, "bucket", ""},
		{"first non-blank", map[string]any{"a": " ", "b": " x "}, func(r *Reader) any { return r.First("a", "b") }, "x", ""},
		{"first none", map[string]any{}, func(r *Reader) any { return r.First("a", "b") }, "", ""},
		{"required text", map[string]any{"k": "v"}, func(r *Reader) any { return r.Required("k") }, "v", ""},
		{"required number as text", map[string]any{"k": int64(5432)}, func(r *Reader) any { return r.Required("k") }, "5432", ""},
		{"required whole float", map[string]any{"k": 5432.0}, func(r *Reader) any { return r.Required("k") }, "5432", ""},
		{"required missing", map[string]any{}, func(r *Reader) any { return r.Required("k") }, "", `option "k": required, missing`},
		{"required blank", map[string]any{"k": " "}, func(r *Reader) any { return r.Required("k") }, " ", `option "k": required, empty`},
		{"required list", map[string]any{"k": []any{}}, func(r *Reader) any { return r.Required("k") }, "", `option "k": want a string, got a list`},

		// Booleans.
		{"bool", map[string]any{"k": false}, func(r *Reader) any { return r.Bool("k", true) }, false, ""},
		{"bool from 1", map[string]any{"k": int64(1)}, func(r *Reader) any { return r.Bool("k", false) }, true, ""},
		{"bool from 0", map[string]any{"k": 0}, func(r *Reader) any { return r.Bool("k", true) }, false, ""},
		{"bool from \"false\"", map[string]any{"k": "false"}, func(r *Reader) any { return r.Bool("k", true) }, false, ""},
		{"bool from \"TRUE\"", map[string]any{"k": "TRUE"}, func(r *Reader) any { return r.Bool("k", false) }, true, ""},
		{"bool from \"0\"", map[string]any{"k": "0"}, func(r *Reader) any { return r.Bool("k", true) }, false, ""},
		{"bool from quoted yes", map[string]any{"k": "yes"}, func(r *Reader) any { return r.Bool("k", true) }, true, `option "k": want true or false (or 1 or 0), got "yes"`},
		{"bool from 2", map[string]any{"k": int64(2)}, func(r *Reader) any { return r.Bool("k", true) }, true, `option "k": want true or false (or 1 or 0), got 2`},

		// Numbers.
		{"int from int64", map[string]any{"k": int64(7)}, func(r *Reader) any { return r.Int("k", 1) }, int64(7), ""},
		{"int from whole float", map[string]any{"k": 7.0}, func(r *Reader) any { return r.Int("k", 1) }, int64(7), ""},
		{"int from text", map[string]any{"k": " 7"}, func(r *Reader) any { return r.Int("k", 1) }, int64(7), ""},
		{"int fraction", map[string]any{"k": 7.5}, func(r *Reader) any { return r.Int("k", 1) }, int64(1), `option "k": want a whole number, got 7.5`},
		{"int word", map[string]any{"k": "big"}, func(r *Reader) any { return r.Int("k", 1) }, int64(1), `option "k": want a whole number, got "big"`},
		{"int bool", map[string]any{"k": true}, func(r *Reader) any { return r.Int("k", 1) }, int64(1), `option "k": want a whole number, got true`},
		{"float", map[string]any{"k": 0.25}, func(r *Reader) any { return r.Float("k", 1) }, 0.25, ""},
		{"float from text", map[string]any{"k": "2.5"}, func(r *Reader) any { return r.Float("k", 1) }, 2.5, ""},
		{"float word", map[string]any{"k": "50%"}, func(r *Reader) any { return r.Float("k", 1) }, 1.0, `option "k": want a number, got "50%"`},
		{"range", map[string]any{"k": int64(3)}, func(r *Reader) any { return r.IntRange("k", 1, 0, 10) }, 3, ""},
		{"range above", map[string]any{"k": int64(11)}, func(r *Reader) any { return r.IntRange("k", 1, 0, 10) }, 1, `option "k": want a whole number from 0 to 10, got 11`},

		// Durations.
		{"duration go", map[string]any{"timeout": "1m30s"}, func(r *Reader) any { return r.Duration("timeout", 0) }, 90 * time.Second, ""},
		{"duration seconds", map[string]any{"timeout": int64(30)}, func(r *Reader) any { return r.Duration("timeout", 0) }, 30 * time.Second, ""},
		{"duration fraction", map[string]any{"timeout": 0.25}, func(r *Reader) any { return r.Duration("timeout", 0) }, 250 * time.Millisecond, ""},
		{"duration seconds as text", map[string]any{"timeout": " 2.5 "}, func(r *Reader) any { return r.Duration("timeout", 0) }, 2500 * time.Millisecond, ""},
		{"duration words", map[string]any{"timeout": "abc"}, func(r *Reader) any { return r.Duration("timeout", time.Second) }, time.Second, `option "timeout": want a duration such as 30s or 30 (seconds), got "abc"`},
		{"duration zero", map[string]any{"timeout": int64(0)}, func(r *Reader) any { return r.Duration("timeout", time.Second) }, time.Second, `option "timeout": want a duration such as 30s or 30 (seconds), got 0`},
		{"duration negative", map[string]any{"timeout": "-1s"}, func(r *Reader) any { return r.Duration("timeout", time.Second) }, time.Second, `option "timeout": want a duration such as 30s or 30 (seconds), got "-1s"`},
		{"duration absurd", map[string]any{"timeout": 1e300}, func(r *Reader) any { return r.Duration("timeout", time.Second) }, time.Second, `option "timeout": want a duration such as 30s or 30 (seconds), got 1e+300`},

		// Lists.
		{"list", map[string]any{"k": []any{"a", "b"}}, func(r *Reader) any { return r.Strings("k") }, []string{"a", "b"}, ""},
		{"one string is a list of one", map[string]any{"k": "a"}, func(r *Reader) any { return r.Strings("k") }, []string{"a"}, ""},
		{"list item", map[string]any{"k": []any{"a", int64(1)}}, func(r *Reader) any { return r.Strings("k") }, []string(nil), `option "k": item 1: want a string, got 1`},
		{"list of a map", map[string]any{"k": map[string]any{}}, func(r *Reader) any { return r.Strings("k") }, []string(nil), `option "k": want a list of strings, got a map`},

		// Maps: nested keys are dotted.
		{"nested", map[string]any{"only_if": map[string]any{"section": "x"}}, func(r *Reader) any { return r.Map("only_if").String("section", "") }, "x", ""},
		{"nested error", map[string]any{"only_if": map[string]any{"section": 3.5}}, func(r *Reader) any { return r.Map("only_if").String("section", "") }, "", `option "only_if.section": want a string, got 3.5`},
		{"not a map", map[string]any{"only_if": "x"}, func(r *Reader) any { return r.Map("only_if").Empty() }, true, `option "only_if": want a map, got "x"`},

		// URLs are never quoted.
		{"url trimmed", map[string]any{"u": " https://h/x "}, func(r *Reader) any { return r.URL("u", "") }, "https://h/x", ""},
		{"url relative", map[string]any{"u": "/x?token=s3cret"}, func(r *Reader) any { return r.URL("u", "") }, "", `option "u": want an absolute http:// or https:// URL`},
		{"url number", map[string]any{"u": int64(3)}, func(r *Reader) any { return r.URL("u", "") }, "", `option "u": want an absolute http:// or https:// URL, got a number`},
		{"urls", map[string]any{"u": []any{"http://a", "ftp://s3cret@b"}}, func(r *Reader) any { return r.URLs("u") }, []string{"http://a"}, `option "u": item 1: want an absolute http:// or https:// URL`},

		// Credentials are never quoted.
		{"secret trimmed", map[string]any{"api_key": " sk-1\n"}, func(r *Reader) any { return r.Secret("api_key") }, "sk-1", ""},
		{"secret first set", map[string]any{"a_key": "", "b_key": "k2"}, func(r *Reader) any { return r.Secret("a_key", "b_key") }, "k2", ""},
		{"secret of the wrong type", map[string]any{"api_key": int64(12345)}, func(r *Reader) any { return r.Secret("api_key") }, "", `option "api_key": want a string, got a number`},
		{"secret unexpanded", map[string]any{"token": "Bearer ${NOT_SET}"}, func(r *Reader) any { return r.Secret("token") }, "", `option "token": refers to ${NOT_SET}, which is not set in the environment (is the Secret mounted?)`},
		{"password not quoted", map[string]any{"password": true}, func(r *Reader) any { return r.Required("password") }, "", `option "password": want a string, got a boolean`},

		// Headers: values never quoted.
		{"headers", map[string]any{"h": map[string]any{"x-token": "t", "X-Retry": int64(3), "X-Debug": true}}, func(r *Reader) any { return r.Headers("h") },
			map[string]string{"X-Token": "t", "X-Retry": "3", "X-Debug": "true"}, ""},
		{"header name", map[string]any{"h": map[string]any{"A B": "x"}}, func(r *Reader) any { return r.Headers("h") }, map[string]string{}, `option "h": "A B" is not a valid header name`},
		{"header line break", map[string]any{"h": map[string]any{"A": "s3cret\r\nEvil: 1"}}, func(r *Reader) any { return r.Headers("h") }, map[string]string{}, `option "h": value of "A" contains a line break`},
		{"header list value", map[string]any{"h": map[string]any{"A": []any{"s3cret"}}}, func(r *Reader) any { return r.Headers("h") }, map[string]string{}, `option "h": value of "A": want a string, got a list`},
		{"header unexpanded", map[string]any{"h": map[string]any{"Authorization": "Bearer ${TOKEN}"}}, func(r *Reader) any { return r.Headers("h") }, map[string]string{},
			`option "h": value of "Authorization" still holds ${TOKEN}: that environment variable is not set (is the Secret mounted?)`},
		{"headers not a map", map[string]any{"h": []any{"a"}}, func(r *Reader) any { return r.Headers("h") }, map[string]string(nil), `option "h": want a map of header names to values, got a list`},

		// File modes.
		{"mode from PyYAML octal", map[string]any{"k": int64(420)}, func(r *Reader) any { return r.FileMode("k", 0) }, os.FileMode(0o644), ""},
		{"mode from YAML 1.2 decimal", map[string]any{"k": int64(644)}, func(r *Reader) any { return r.FileMode("k", 0) }, os.FileMode(0o644), ""},
		{"mode from text", map[string]any{"k": "0750"}, func(r *Reader) any { return r.FileMode("k", 0) }, os.FileMode(0o750), ""},
		{"mode from 0o text", map[string]any{"k": "0o600"}, func(r *Reader) any { return r.FileMode("k", 0) }, os.FileMode(0o600), ""},
		{"mode too large", map[string]any{"k": int64(1023)}, func(r *Reader) any { return r.FileMode("k", 0o644) }, os.FileMode(0o644), `option "k": want permissions between 0000 and 0777, got 1023`},
		{"mode not octal", map[string]any{"k": "rwx"}, func(r *Reader) any { return r.FileMode("k", 0o644) }, os.FileMode(0o644), `option "k": want octal permissions such as "0644", got "rwx"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := New(tc.raw)
			got := tc.read(r)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("value = %#v, want %#v", got, tc.want)
			}
			err := r.Err()
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("unexpected error: %v", err)
			case tc.wantErr != "" && (err == nil || err.Error() != tc.wantErr):
				t.Errorf("error = %v\nwant    %s", err, tc.wantErr)
			}
			if err != nil {
				for _, secret := range []string{"s3cret", "sk-1", "12345"} {
					if strings.Contains(err.Error(), secret) {
						t.Errorf("error %q quotes %q", err, secret)
					}
				}
			}
		})
	}
}

func TestReaderNamesEveryBadKey(t *testing.T) {
	r := New(map[string]any{"b": "x", "a": "y", "m": map[string]any{"c": "z"}})
	r.Int("b", 0)
	r.Bool("a", false)
	r.Map("m").Float("c", 0)
	r.Errorf("no credentials")
	want := `option "b": want a whole number, got "x"` + "\n" +
		`option "a": want true or false (or 1 or 0), got "y"` + "\n" +
		`option "m.c": want a number, got "z"` + "\n" +
		"no credentials"
	if err := r.Err(); err == nil || err.Error() != want {
		t.Fatalf("error = %v\nwant    %s", err, want)
	}
}

func TestTruncate(t *testing.T) {
	for _, tt := range []struct {
		in   string
		n    int
		want string
	}{{"short", 10, "short"}, {"exactly", 7, "exactly"}, {"too long here", 3, "too…"}} {
		if got := Truncate(tt.in, tt.n); got != tt.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", tt.in, tt.n, got, tt.want)
		}
	}
}
