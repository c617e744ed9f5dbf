package links

import (
	"context"
	"crypto/sha256"
	"crypto/sha3"
	"encoding/hex"
	"encoding/json"
	"hash"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/blake2b"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// draftExample is the attachment of draft-howe-vcon-lawful-basis-02,
// "Example Lawful Basis Attachment", as printed. Its content_hash value is
// a placeholder ("a1b2c3d4..."), so as printed it must fail the draft's
// MUST of content hash validation; withHash replaces it with the real one.
const draftExample = `{
  "purpose": "lawful_basis",
  "start": "2025-01-02T12:15:30Z",
  "party": 0,
  "dialog": 0,
  "encoding": "json",
  "body": {
    "lawful_basis": "consent",
    "expiration": "2026-01-02T12:00:00Z",
    "purpose_grants": [
      {"purpose": "recording", "granted": true, "granted_at": "2025-01-02T12:15:30Z"},
      {"purpose": "transcription", "granted": true, "granted_at": "2025-01-02T12:15:30Z"},
      {"purpose": "sentiment_analysis", "granted": false, "granted_at": "2025-01-02T12:15:30Z"}
    ],
    "proof_mechanisms": [
      {
        "proof_type": "verbal_confirmation",
        "timestamp": "2025-01-02T12:15:30Z",
        "proof_data": {"dialog_reference": 0, "time_offset": "00:01:23", "confirmation_text": "Yes, I consent to recording this call"}
      }
    ],
    "terms_of_service": "https://example.com/terms/v2024.1",
    "status_interval": "30d",
    "content_hash": {
      "algorithm": "sha-256",
      "canonicalization": "jcs",
      "value": "a1b2c3d4e5f6789abcdef0123456789abcdef0123456789abcdef0123456789ab"
    },
    "registry": {"type": "scitt", "url": "https://transparency.example.com/lawful_purpose/registry"}
  }
}`

// conserverExample is the -00 form conserver's documentation shows
// (type instead of purpose, four grants, no content hash).
const conserverExample = `{
  "type": "lawful_basis",
  "encoding": "json",
  "party": 0,
  "dialog": 0,
  "body": {
    "lawful_basis": "consent",
    "expiration": "2026-01-02T12:00:00Z",
    "purpose_grants": [
      {"purpose": "recording", "granted": true, "granted_at": "2025-01-02T12:15:30Z"},
      {"purpose": "transcription", "granted": true, "granted_at": "2025-01-02T12:15:30Z"},
      {"purpose": "analysis", "granted": true, "granted_at": "2025-01-02T12:15:30Z"}
    ]
  }
}`

func attachment(t *testing.T, text string, edit func(a, body map[string]any)) map[string]any {
	t.Helper()
	var a map[string]any
	if err := json.Unmarshal([]byte(text), &a); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		body, _ := a["body"].(map[string]any)
		edit(a, body)
	}
	return a
}

// withHash recomputes the body's content hash with alg, over the JCS form
// of the body without content_hash, as the link checks it.
func withHash(t *testing.T, alg string) func(a, body map[string]any) {
	return func(_, body map[string]any) {
		rest := map[string]any{}
		for k, v := range body {
			if k != "content_hash" {
				rest[k] = v
			}
		}
		canon, err := vcon.AppendJCS(nil, rest)
		if err != nil {
			t.Fatal(err)
		}
		var h hash.Hash
		switch alg {
		case "sha-256":
			h = sha256.New()
		case "sha-3-256":
			h = sha3.New256()
		case "blake2b-256":
			h, _ = blake2b.New256(nil)
		}
		h.Write(canon)
		body["content_hash"] = map[string]any{"algorithm": alg, "canonicalization": "jcs", "value": hex.EncodeToString(h.Sum(nil))}
	}
}

func lbVcon(t *testing.T, atts ...map[string]any) *vcon.VCon {
	t.Helper()
	list := make([]any, len(atts))
	for i, a := range atts {
		list[i] = a
	}
	doc := map[string]any{
		"vcon": "0.4.0", "uuid": "01934b2a-7e2f-8c3d-9a1b-2c3d4e5f6a7b", "extensions": []any{"lawful_basis"},
		"created_at":  "2025-01-02T12:00:00Z",
		"parties":     []any{map[string]any{"tel": "+15555550100"}},
		"dialog":      []any{map[string]any{"type": "recording", "start": "2025-01-02T12:00:00Z", "parties": []any{0}}},
		"attachments": list,
	}
	b, _ := json.Marshal(doc)
	v, err := vcon.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestLawfulBasisDraftExamples judges purposes against the draft's example
// attachment and variations of it, each case one rule of the draft's
// "Lawful Basis Processing Requirements".
func TestLawfulBasisDraftExamples(t *testing.T) {
	const (
		beforeExpiry = "2025-06-01T00:00:00Z"
		withinSkew   = "2026-01-02T12:04:59Z" // the draft allows up to 5 minutes of skew
		afterSkew    = "2026-01-02T12:05:01Z"
	)
	set := func(k string, v any) func(a, body map[string]any) {
		return func(_, body map[string]any) { body[k] = v }
	}
	then := func(fs ...func(a, body map[string]any)) func(a, body map[string]any) {
		return func(a, body map[string]any) {
			for _, f := range fs {
				f(a, body)
			}
		}
	}
	noHash := func(_, body map[string]any) { delete(body, "content_hash") }
	grants := func(g ...any) func(a, body map[string]any) { return set("purpose_grants", g) }
	grant := func(purpose string, granted any, at string) map[string]any {
		return map[string]any{"purpose": purpose, "granted": granted, "granted_at": at}
	}

	type want map[string]string // purpose → status[/error]
	tests := []struct {
		name string
		atts func(t *testing.T) []map[string]any
		at   string
		want want
	}{
		{
			name: "draft example as printed: the placeholder hash does not match",
			atts: func(t *testing.T) []map[string]any { return []map[string]any{attachment(t, draftExample, nil)} },
			at:   beforeExpiry,
			want: want{"transcription": "invalid/ContentHashMismatchError", "recording": "invalid/ContentHashMismatchError"},
		},
		{
			name: "draft example with its real sha-256: granted, refused and absent purposes",
			atts: func(t *testing.T) []map[string]any {
				return []map[string]any{attachment(t, draftExample, withHash(t, "sha-256"))}
			},
			at: beforeExpiry,
			want: want{
				"recording":          "granted",
				"transcription":      "granted",
				"sentiment_analysis": "denied/PermissionDeniedError",
				"analysis":           "missing/LawfulBasisMissingError",
			},
		},
		{
			name: "sha-3-256 and blake2b-256 hashes are checked too",
			atts: func(t *testing.T) []map[string]any {
				return []map[string]any{
					attachment(t, draftExample, withHash(t, "sha-3-256")),
					attachment(t, draftExample, withHash(t, "blake2b-256")),
				}
			},
			at:   beforeExpiry,
			want: want{"transcription": "granted"},
		},
		{
			name: "a body changed after hashing fails",
			atts: func(t *testing.T) []map[string]any {
				return []map[string]any{attachment(t, draftExample, then(withHash(t, "sha-256"), set("status_interval", "31d")))}
			},
			at:   beforeExpiry,
			want: want{"transcription": "invalid/ContentHashMismatchError"},
		},
		{
			name: "unsupported hash algorithm and canonicalization",
			atts: func(t *testing.T) []map[string]any {
				return []map[string]any{attachment(t, draftExample, set("content_hash", map[string]any{"algorithm": "md5", "canonicalization": "jcs", "value": "00"}))}
			},
			at:   beforeExpiry,
			want: want{"transcription": "invalid/UnsupportedHashAlgorithmError"},
		},
		{
			name: "unsupported canonicalization",
			atts: func(t *testing.T) []map[string]any {
				return []map[string]any{attachment(t, draftExample, set("content_hash", map[string]any{"algorithm": "sha-256", "canonicalization": "c14n", "value": "00"}))}
			},
			at:   beforeExpiry,
			want: want{"transcription": "invalid/UnsupportedCanonicalizationError"},
		},
		{
			name: "expiration within the draft's clock skew still holds",
			atts: func(t *testing.T) []map[string]any {
				return []map[string]any{attachment(t, draftExample, withHash(t, "sha-256"))}
			},
			at:   withinSkew,
			want: want{"transcription": "granted"},
		},
		{
			name: "expired beyond the clock skew",
			atts: func(t *testing.T) []map[string]any {
				return []map[string]any{attachment(t, draftExample, withHash(t, "sha-256"))}
			},
			at:   afterSkew,
			want: want{"transcription": "expired/LawfulBasisExpiredError", "analysis": "missing/LawfulBasisMissingError"},
		},
		{
			name: "null expiration is indefinite",
			atts: func(t *testing.T) []map[string]any {
				return []map[string]any{attachment(t, draftExample, then(noHash, set("expiration", nil)))}
			},
			at:   "2040-01-01T00:00:00Z",
			want: want{"transcription": "granted"},
		},
		{
			name: "expiration is required, null or a timestamp",
			atts: func(t *testing.T) []map[string]any {
				return []map[string]any{
					attachment(t, draftExample, then(noHash, func(_, b map[string]any) { delete(b, "expiration") })),
				}
			},
			at:   beforeExpiry,
			want: want{"transcription": "invalid/ValidationError"},
		},
		{
			name: "no lawful basis attachment",
			atts: func(t *testing.T) []map[string]any {
				return []map[string]any{{"purpose": "tags", "encoding": "json", "body": `["a:b"]`}}
			},
			at:   beforeExpiry,
			want: want{"transcription": "missing/LawfulBasisMissingError"},
		},
		{
			name: "conserver's -00 form (type lawful_basis)",
			atts: func(t *testing.T) []map[string]any { return []map[string]any{attachment(t, conserverExample, nil)} },
			at:   beforeExpiry,
			want: want{"transcription": "granted", "analysis": "granted", "sentiment_analysis": "missing/LawfulBasisMissingError"},
		},
		{
			name: "body as JSON text (the core draft's json encoding)",
			atts: func(t *testing.T) []map[string]any {
				return []map[string]any{attachment(t, conserverExample, func(a, body map[string]any) {
					text, _ := json.Marshal(body)
					a["body"] = string(text)
				})}
			},
			at:   beforeExpiry,
			want: want{"analysis": "granted"},
		},
		{
			name: "a later withdrawal (granted false) wins over the consent: most restrictive",
			atts: func(t *testing.T) []map[string]any {
				return []map[string]any{
					attachment(t, conserverExample, nil),
					attachment(t, conserverExample, grants(grant("analysis", false, "2025-03-01T00:00:00Z"))),
				}
			},
			at:   beforeExpiry,
			want: want{"analysis": "denied/PermissionDeniedError", "transcription": "granted"},
		},
		{
			name: "an expired refusal no longer applies",
			atts: func(t *testing.T) []map[string]any {
				return []map[string]any{
					attachment(t, conserverExample, set("expiration", nil)),
					attachment(t, conserverExample, grants(grant("analysis", false, "2025-03-01T00:00:00Z"))),
				}
			},
			at:   "2027-01-01T00:00:00Z",
			want: want{"analysis": "granted"},
		},
		{
			name: "a grant dated after the evaluation time is not in force",
			atts: func(t *testing.T) []map[string]any {
				return []map[string]any{attachment(t, conserverExample, grants(grant("analysis", true, "2025-12-01T00:00:00Z")))}
			},
			at:   beforeExpiry,
			want: want{"analysis": "missing/LawfulBasisMissingError"},
		},
		{
			name: "malformed grants deny every purpose",
			atts: func(t *testing.T) []map[string]any {
				return []map[string]any{
					attachment(t, conserverExample, nil),
					attachment(t, conserverExample, grants(grant("analysis", "yes", "2025-01-02T12:15:30Z"))),
				}
			},
			at:   beforeExpiry,
			want: want{"analysis": "invalid/ValidationError", "transcription": "invalid/ValidationError"},
		},
		{
			name: "purpose_grants not a list, body not an object, unknown basis",
			atts: func(t *testing.T) []map[string]any {
				return []map[string]any{attachment(t, conserverExample, set("purpose_grants", "all"))}
			},
			at:   beforeExpiry,
			want: want{"analysis": "invalid/ValidationError"},
		},
		{
			name: "body that is not JSON",
			atts: func(t *testing.T) []map[string]any {
				return []map[string]any{attachment(t, conserverExample, func(a, _ map[string]any) { a["body"] = "consent: yes" })}
			},
			at:   beforeExpiry,
			want: want{"analysis": "invalid/ValidationError"},
		},
		{
			name: "unknown lawful basis",
			atts: func(t *testing.T) []map[string]any {
				return []map[string]any{attachment(t, conserverExample, set("lawful_basis", "because"))}
			},
			at:   beforeExpiry,
			want: want{"analysis": "invalid/ValidationError"},
		},
		{
			name: "a party reference that does not exist",
			atts: func(t *testing.T) []map[string]any {
				return []map[string]any{attachment(t, conserverExample, func(a, _ map[string]any) { a["party"] = 3 })}
			},
			at:   beforeExpiry,
			want: want{"analysis": "invalid/ReferenceValidationError"},
		},
		{
			name: "a dialog reference that does not exist",
			atts: func(t *testing.T) []map[string]any {
				return []map[string]any{attachment(t, conserverExample, func(a, _ map[string]any) { a["dialog"] = 1 })}
			},
			at:   beforeExpiry,
			want: want{"analysis": "invalid/ReferenceValidationError"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			at, ok := vcon.ParseTime(tc.at)
			if !ok {
				t.Fatal(tc.at)
			}
			purposes := make([]string, 0, len(tc.want))
			for p := range tc.want {
				purposes = append(purposes, p)
			}
			slices.Sort(purposes)
			got := evaluateLawfulBasis(lbVcon(t, tc.atts(t)...), purposes, at, maxClockSkew)
			for _, r := range got {
				status := r.Status
				if r.Error != "" {
					status += "/" + r.Error
				}
				if status != tc.want[r.Purpose] {
					t.Errorf("%s: %s (%s), want %s", r.Purpose, status, r.Reason, tc.want[r.Purpose])
				}
				if (r.Status == statusGranted) != (r.Reason == "") {
					t.Errorf("%s: reason %q with status %s", r.Purpose, r.Reason, r.Status)
				}
			}
		})
	}
}

// TestLawfulBasisRun checks what the link does with its judgement: the
// result, the record on the vCon and that a redelivery leaves one record.
func TestLawfulBasisRun(t *testing.T) {
	tests := []struct {
		name       string
		opts       map[string]any
		atts       func(t *testing.T) []map[string]any
		wantHalt   bool
		wantRoutes []string
		wantTag    bool
		decision   string
	}{
		{
			name:     "granted: continue, recorded",
			opts:     map[string]any{"required_purposes": []any{"transcription", "analysis"}, "at": "2025-06-01T00:00:00Z"},
			atts:     func(t *testing.T) []map[string]any { return []map[string]any{attachment(t, conserverExample, nil)} },
			decision: "granted",
		},
		{
			name: "halt: one purpose refused",
			opts: map[string]any{"required_purposes": []any{"transcription", "sentiment_analysis"}, "at": "2025-06-01T00:00:00Z"},
			atts: func(t *testing.T) []map[string]any {
				return []map[string]any{attachment(t, draftExample, withHash(t, "sha-256"))}
			},
			wantHalt: true, wantTag: true, decision: "denied",
		},
		{
			name:     "route: expired",
			opts:     map[string]any{"required_purposes": []any{"transcription"}, "on_missing": "route", "route_to": []any{"consent_review"}, "at": "2027-01-01T00:00:00Z"},
			atts:     func(t *testing.T) []map[string]any { return []map[string]any{attachment(t, conserverExample, nil)} },
			wantHalt: true, wantRoutes: []string{"consent_review"}, wantTag: true, decision: "denied",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			l, err := New("consent", "links.lawful_basis", tc.opts, Deps{})
			if err != nil {
				t.Fatal(err)
			}
			v := lbVcon(t, tc.atts(t)...)
			for range 2 { // the second run is a redelivery
				res, err := l.Run(context.Background(), v)
				if err != nil {
					t.Fatal(err)
				}
				if res.Halt != tc.wantHalt || !slices.Equal(res.Routes, tc.wantRoutes) {
					t.Errorf("result = %+v, want halt %v routes %v", res, tc.wantHalt, tc.wantRoutes)
				}
			}
			var records []map[string]any
			for _, a := range v.List(vcon.Analysis) {
				if a["type"] == lawfulBasisEvaluation {
					records = append(records, a)
				}
			}
			if len(records) != 1 {
				t.Fatalf("%d evaluation records, want 1", len(records))
			}
			body, _ := records[0]["body"].(map[string]any)
			if body["decision"] != tc.decision || records[0]["product"] != "consent" {
				t.Errorf("record = %v, want decision %s by link consent", records[0], tc.decision)
			}
			if tag, ok := vcon.Tag(v, "lawful_basis"); ok != tc.wantTag || (ok && tag != "denied") {
				t.Errorf("tag lawful_basis = %q, %v; want %v", tag, ok, tc.wantTag)
			}
			// The record never carries the proof's words.
			out, _ := v.Marshal()
			if n := strings.Count(string(out), "confirmation_text"); n > 1 {
				t.Errorf("proof text copied into the record (%d occurrences)", n)
			}
		})
	}
}
