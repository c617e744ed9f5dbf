package options

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestHeaders(t *testing.T) {
	tests := []struct {
		name    string
		value   any
		want    map[string]string
		wantErr string
	}{
		{name: "absent", value: nil, want: nil},
		{name: "strings canonicalised", value: map[string]any{"x-token": "${TOKEN}"}, want: map[string]string{"X-Token": "${TOKEN}"}},
		{name: "numbers and bools as text", value: map[any]any{"X-Retry": 3, "X-Debug": true, "X-Ratio": json.Number("1.5")}, want: map[string]string{"X-Retry": "3", "X-Debug": "true", "X-Ratio": "1.5"}},
		{name: "space in name", value: map[string]any{"A B": "x"}, wantErr: "not a valid header name"},
		{name: "colon in name", value: map[string]any{"A:B": "x"}, wantErr: "not a valid header name"},
		{name: "line break in value", value: map[string]any{"A": "x\r\nEvil: 1"}, wantErr: "line break"},
		{name: "not a map", value: []any{"a"}, wantErr: "want a map"},
		{name: "non-string name", value: map[any]any{1: "x"}, wantErr: "must be strings"},
		{name: "list value", value: map[string]any{"A": []any{"x"}}, wantErr: "want a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := map[string]any{}
			if tt.value != nil {
				o["headers"] = tt.value
			}
			got, err := Headers(o, "headers")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "Evil") {
					t.Fatalf("error quotes a header value: %v", err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Headers = %v, %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	tests := []struct {
		name    string
		value   any
		want    string
		wantErr string
	}{
		{name: "absent"},
		{name: "null", value: nil},
		{name: "trimmed", value: "  bucket \n", want: "bucket"},
		{name: "number", value: 3, wantErr: `option "k": want a string, got int`},
		{name: "list", value: []any{"a"}, wantErr: "want a string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := map[string]any{}
			if tt.name != "absent" {
				o["k"] = tt.value
			}
			got, err := String(o, "k")
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("String = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestDuration(t *testing.T) {
	const def = 7 * time.Second
	tests := []struct {
		name    string
		value   any
		want    time.Duration
		wantErr string
	}{
		{name: "absent", want: def},
		{name: "null", value: nil, want: def},
		{name: "go duration", value: "1m30s", want: 90 * time.Second},
		{name: "seconds as text", value: " 2.5 ", want: 2500 * time.Millisecond},
		{name: "seconds as number", value: 30, want: 30 * time.Second},
		{name: "json number", value: json.Number("0.25"), want: 250 * time.Millisecond},
		{name: "zero", value: 0, wantErr: "must be greater than zero"},
		{name: "negative", value: "-1s", wantErr: "must be greater than zero"},
		{name: "words", value: "soon", wantErr: `want a duration such as "30s" or a number of seconds, got "soon"`},
		{name: "bool", value: true, wantErr: "got bool"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := map[string]any{}
			if tt.name != "absent" {
				o["timeout"] = tt.value
			}
			got, err := Duration(o, "timeout", def)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Duration = %s, %v; want %s", got, err, tt.want)
			}
		})
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
