// Package redact finds personal and payment data in the texts of a vCon
// and replaces it: card numbers (with the CVV and expiry spoken next to
// them), US social security numbers, e-mail addresses, phone numbers,
// patterns a user configures, and what an external PII engine reports.
//
// It is the engine of a redaction link; building the redacted vCon that
// refers to the original (draft-ietf-vcon-vcon-core, "redacted") is
// RedactedVcon. Nothing here logs, and no result carries the text that was
// found: a Finding says what kind of data stood where, never what it was.
package redact

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
)

// Type names what a span holds: one of the built-in types or the name of a
// configured Pattern, or what an external Detector calls it.
type Type string

// The built-in types.
const (
	Card   Type = "card"   // payment card number (PAN), Luhn-checked
	CVV    Type = "cvv"    // card security code, next to a card number
	Expiry Type = "expiry" // card expiry date, next to a card number
	SSN    Type = "ssn"    // US social security number
	Email  Type = "email"
	Phone  Type = "phone"
)

// BuiltinTypes are the types the package detects itself, in the order an
// overlap between two of them is resolved: the first wins.
var BuiltinTypes = []Type{Card, SSN, CVV, Expiry, Phone, Email}

// Span is a finding in one text: its type and its byte offsets, End
// exclusive.
type Span struct {
	Type       Type
	Start, End int
}

// Mode is what replaces a span.
type Mode int

const (
	// Mask replaces a span with a label naming its type ("[CARD]"). It is
	// the default because the cc-extension draft asks for redaction to stay
	// visible to analytics: a label keeps sentences whole and does not pass
	// for a word the way "XXX" does.
	Mask Mode = iota
	// Remove deletes the span.
	Remove
)

// Pattern is a user's extra detector: every match of Expr is a span of
// type Name.
type Pattern struct {
	Name string
	Expr string
}

// Config chooses what a Redactor finds and how it replaces it.
type Config struct {
	// Types are the built-in detectors to run; empty means all of them.
	Types []Type
	// Patterns are extra regular expressions (RE2 syntax).
	Patterns []Pattern
	// External, when set, is asked about every text as well; its spans are
	// added to the built-in ones.
	External Detector
	Mode     Mode
	// Labels override the mask text of a type; the default is the type in
	// upper case in brackets: "[CARD]", "[SSN]", "[EMPLOYEE_ID]".
	Labels map[Type]string
}

// Redactor finds and replaces spans. It holds no state between calls and
// is safe for concurrent use.
type Redactor struct {
	enabled  map[Type]bool
	patterns []compiledPattern
	external Detector
	mode     Mode
	labels   map[Type]string
}

type compiledPattern struct {
	name Type
	re   *regexp.Regexp
}

var patternName = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)

// New checks a Config and returns its Redactor.
func New(cfg Config) (*Redactor, error) {
	r := &Redactor{enabled: map[Type]bool{}, external: cfg.External, mode: cfg.Mode, labels: map[Type]string{}}
	if cfg.Mode != Mask && cfg.Mode != Remove {
		return nil, fmt.Errorf("redact: unknown mode %d", cfg.Mode)
	}
	types := cfg.Types
	if len(types) == 0 {
		types = BuiltinTypes
	}
	for _, t := range types {
		if !slices.Contains(BuiltinTypes, t) {
			return nil, fmt.Errorf("redact: unknown type %q; the built-in types are %s", t, typeList(BuiltinTypes))
		}
		r.enabled[t] = true
	}
	seen := map[string]bool{}
	for i, p := range cfg.Patterns {
		if !patternName.MatchString(p.Name) {
			return nil, fmt.Errorf("redact: pattern %d: name %q must be lower case letters, digits, _ or -, starting with a letter", i, p.Name)
		}
		if slices.Contains(BuiltinTypes, Type(p.Name)) || seen[p.Name] {
			return nil, fmt.Errorf("redact: pattern %d: name %q is already taken; choose another", i, p.Name)
		}
		seen[p.Name] = true
		re, err := regexp.Compile(p.Expr)
		if err != nil {
			return nil, fmt.Errorf("redact: pattern %q: %w", p.Name, err)
		}
		if re.MatchString("") {
			return nil, fmt.Errorf("redact: pattern %q matches the empty string; it would mark nothing", p.Name)
		}
		r.patterns = append(r.patterns, compiledPattern{name: Type(p.Name), re: re})
	}
	for t, l := range cfg.Labels {
		r.labels[t] = l
	}
	return r, nil
}

func typeList(ts []Type) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = string(t)
	}
	return strings.Join(s, ", ")
}

// Label is the mask text of a type.
func (r *Redactor) Label(t Type) string {
	if l, ok := r.labels[t]; ok {
		return l
	}
	return "[" + strings.ToUpper(string(t)) + "]"
}

// replacement is what a span becomes in the output.
func (r *Redactor) replacement(t Type) string {
	if r.mode == Remove {
		return ""
	}
	return r.Label(t)
}

// Find returns the spans the built-in detectors and the patterns find in
// text, sorted and without overlaps. It does not ask the External
// detector; FindContext does.
func (r *Redactor) Find(text string) []Span {
	return merge(r.local(text))
}

// FindContext is Find with the External detector's spans added.
func (r *Redactor) FindContext(ctx context.Context, text string) ([]Span, error) {
	spans := r.local(text)
	if r.external != nil {
		ext, err := r.external.Detect(ctx, []string{text})
		if err != nil {
			return nil, err
		}
		spans = append(spans, ext[0]...)
	}
	return merge(spans), nil
}

// Redact returns text with what Find finds replaced, and the spans (in
// offsets of the input).
func (r *Redactor) Redact(text string) (string, []Span) {
	spans := r.Find(text)
	return r.apply(text, spans), spans
}

// RedactContext is Redact with the External detector asked too.
func (r *Redactor) RedactContext(ctx context.Context, text string) (string, []Span, error) {
	spans, err := r.FindContext(ctx, text)
	if err != nil {
		return "", nil, err
	}
	return r.apply(text, spans), spans, nil
}

func (r *Redactor) local(text string) []Span {
	spans := r.builtin(text)
	for _, p := range r.patterns {
		for _, m := range p.re.FindAllStringIndex(text, -1) {
			if m[1] > m[0] {
				spans = append(spans, Span{Type: p.name, Start: m[0], End: m[1]})
			}
		}
	}
	return spans
}

// rank orders types for overlaps: built-in types by BuiltinTypes, then
// everything else.
func rank(t Type) int {
	if i := slices.Index(BuiltinTypes, t); i >= 0 {
		return i
	}
	return len(BuiltinTypes)
}

// merge sorts spans and joins overlapping ones. A joined span covers both
// (nothing of either is left in the clear) and takes the type that ranks
// first.
func merge(spans []Span) []Span {
	if len(spans) < 2 {
		return spans
	}
	sort.Slice(spans, func(i, j int) bool {
		if spans[i].Start != spans[j].Start {
			return spans[i].Start < spans[j].Start
		}
		return spans[i].End > spans[j].End
	})
	out := spans[:1]
	for _, s := range spans[1:] {
		last := &out[len(out)-1]
		if s.Start >= last.End {
			out = append(out, s)
			continue
		}
		if rank(s.Type) < rank(last.Type) {
			last.Type = s.Type
		}
		last.End = max(last.End, s.End)
	}
	return out
}

// apply replaces sorted, disjoint spans by their replacement.
func (r *Redactor) apply(text string, spans []Span) string {
	reps := make([]string, len(spans))
	for i, s := range spans {
		reps[i] = r.replacement(s.Type)
	}
	return applyReps(text, spans, reps)
}

// applyReps replaces sorted, disjoint spans by reps. Where a span is
// removed, a space left doubled is dropped, so "card is 4111... thanks"
// becomes "card is thanks" rather than "card is  thanks".
func applyReps(text string, spans []Span, reps []string) string {
	if len(spans) == 0 {
		return text
	}
	var b strings.Builder
	b.Grow(len(text))
	at := 0
	for i, s := range spans {
		s.Start = max(s.Start, at) // after a dropped space
		b.WriteString(text[at:s.Start])
		rep := reps[i]
		// Removing "a@b.co" from "4111a@b.co1111" must not join the digits
		// around it into a new number.
		if rep == "" && s.Start > 0 && s.End < len(text) && isAlnum(text[s.Start-1]) && isAlnum(text[s.End]) {
			rep = " "
		}
		b.WriteString(rep)
		at = max(s.End, at)
		if reps[i] == "" && at < len(text) && text[at] == ' ' && (s.Start == 0 || text[s.Start-1] == ' ') {
			at++
		}
	}
	b.WriteString(text[at:])
	return b.String()
}
