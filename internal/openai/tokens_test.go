package openai

import (
	"strings"
	"testing"
)

// TestTokenFigures: the estimate charged before a chat call, and the usage
// read from its answer that corrects it.
func TestTokenFigures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer string
		want   int64
	}{
		{"total", `{"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15}}`, 15},
		{"parts only", `{"usage":{"prompt_tokens":10,"completion_tokens":5}}`, 15},
		{"no usage", `{"choices":[]}`, 0},
		{"not JSON", `oops`, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := usedTokens([]byte(tc.answer)); got != tc.want {
				t.Fatalf("usedTokens = %d, want %d", got, tc.want)
			}
		})
	}
	if got := EstimateTokens([]byte(strings.Repeat("x", 4000))); got != 1000+answerAllowance {
		t.Fatalf("EstimateTokens of 4000 bytes = %d", got)
	}
}
