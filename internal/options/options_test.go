package options

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
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
