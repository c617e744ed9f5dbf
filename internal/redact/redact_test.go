package redact

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		in   string
		want string
	}{
		{"mask", Config{}, "card 4111 1111 1111 1111, ssn 123-45-6789", "card [CARD], ssn [SSN]"},
		{"remove", Config{Mode: Remove}, "card 4111 1111 1111 1111 thanks", "card thanks"},
		{"remove at start", Config{Mode: Remove}, "4111111111111111 is it", "is it"},
		{"label", Config{Labels: map[Type]string{Card: "{{PCI}}"}}, "card 4111111111111111", "card {{PCI}}"},
		{"types", Config{Types: []Type{Email}}, "4111111111111111 a@b.co", "4111111111111111 [EMAIL]"},
		{"pattern", Config{Patterns: []Pattern{{Name: "employee_id", Expr: `\bEMP-\d{6}\b`}}}, "I am EMP-123456.", "I am [EMPLOYEE_ID]."},
		{"overlap joins and keeps the stronger type", Config{Patterns: []Pattern{{Name: "digits", Expr: `1111 1111 1111`}}}, "x 4111 1111 1111 1111 y", "x [CARD] y"},
		{"no finding returns the text", Config{}, "nothing to see here", "nothing to see here"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := mustRedactor(t, tc.cfg).Redact(tc.in)
			if got != tc.want {
				t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"unknown type", Config{Types: []Type{"passport"}}, `unknown type "passport"`},
		{"bad pattern name", Config{Patterns: []Pattern{{Name: "Employee ID", Expr: "x"}}}, "must be lower case"},
		{"builtin name", Config{Patterns: []Pattern{{Name: "card", Expr: "x"}}}, "already taken"},
		{"duplicate name", Config{Patterns: []Pattern{{Name: "a", Expr: "x"}, {Name: "a", Expr: "y"}}}, "already taken"},
		{"bad regexp", Config{Patterns: []Pattern{{Name: "a", Expr: "("}}}, "missing closing )"},
		{"empty match", Config{Patterns: []Pattern{{Name: "a", Expr: "x*"}}}, "matches the empty string"},
		{"mode", Config{Mode: 7}, "unknown mode"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestSpokenDigits(t *testing.T) {
	tests := []struct{ in, want string }{
		{"four one one one", "4111"},
		{"oh four", "04"},
		{"four oh oh one", "4001"},
		{"one oh oh", "100"},
		{"double five", "55"},
		{"triple oh five", "0005"},
		{"twenty seven", "27"},
		{"twenty twenty seven", "2027"},
		{"twelve", "12"},
		{"forty one hundred", "4100"},
		{"four hundred twelve", "412"},
		{"four hundred five", "405"},
		{"4111 one one", "411111"},
		{"oh, I see", ""},
		{"o'clock", ""},
		{"double trouble", ""},
	}
	for _, tc := range tests {
		if got := spokenDigits(tc.in); got != tc.want {
			t.Errorf("digits(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestValidSSN(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"123456789", true}, {"078051120", true}, {"899999999", true},
		{"000123456", false}, {"666123456", false}, {"900123456", false}, {"999999999", false},
		{"123004567", false}, {"123450000", false}, {"12345678", false},
	}
	for _, tc := range tests {
		if got := validSSN(tc.in); got != tc.want {
			t.Errorf("validSSN(%s) = %v", tc.in, got)
		}
	}
}

func TestLuhn(t *testing.T) {
	for d, want := range map[string]bool{"4111111111111111": true, "4111111111111112": false, "378282246310005": true, "0": true, "18": true, "19": false} {
		if luhn(d) != want {
			t.Errorf("luhn(%s) = %v", d, !want)
		}
	}
}
