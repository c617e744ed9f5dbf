package links

import (
	"context"
	"crypto/sha256"
	"crypto/sha3"
	"encoding/hex"
	"fmt"
	"hash"
	"strings"
	"time"

	"golang.org/x/crypto/blake2b"

	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func init() { Register("links.lawful_basis", newLawfulBasis) }

// lawfulBasisLink gates a chain on the vCon's lawful basis attachments
// (draft-howe-vcon-lawful-basis): the chain goes on only when every
// purpose it needs is granted by a valid, unexpired attachment. Otherwise
// it halts (a filter: no further link, no storage, no egress, no dead
// letter) or halts and routes the uuid to review lists, and the decision
// with its reasons is recorded on the vCon either way, so that a halted
// vCon says why it stopped and a processed one says on what basis.
type lawfulBasisLink struct {
	name     string
	required []string
	route    []string // nil: halt only
	skew     time.Duration
	now      func() time.Time
}

// Values of on_missing.
const (
	onMissingHalt  = "halt"
	onMissingRoute = "route"
)

// maxClockSkew is the draft's recommended bound on the clock skew allowed
// when comparing an expiration with the current time ("maximum 5 minutes
// recommended").
const maxClockSkew = 5 * time.Minute

func newLawfulBasis(name string, raw map[string]any, _ Deps) (Link, error) {
	o := options.New(raw)
	l := &lawfulBasisLink{name: name, now: time.Now}
	l.required = o.Strings("required_purposes")
	if len(l.required) == 0 && o.Problems() == 0 {
		o.Failf("required_purposes", "required, the purposes the chain processes for, e.g. [transcription, analysis]")
	}
	for i, p := range l.required {
		if strings.TrimSpace(p) == "" {
			o.Failf("required_purposes", "item %d: empty purpose", i)
		}
	}
	switch mode := o.String("on_missing", onMissingHalt); mode {
	case onMissingHalt:
		if o.Has("route_to") {
			o.Failf("route_to", "only with on_missing: route")
		}
	case onMissingRoute:
		before := o.Problems()
		l.route = o.Strings("route_to")
		if len(l.route) == 0 && o.Problems() == before {
			o.Failf("route_to", "required with on_missing: route, the lists a vCon without the purposes goes to")
		}
		for i, list := range l.route {
			if strings.TrimSpace(list) == "" {
				o.Failf("route_to", "item %d: empty list name", i)
			}
		}
	default:
		o.Failf("on_missing", "want halt or route, got %q", mode)
	}
	l.skew = o.Duration("clock_skew", maxClockSkew)
	if l.skew < 0 || l.skew > maxClockSkew {
		o.Failf("clock_skew", "want a duration from 0s to 5m (the draft's recommended maximum)")
	}
	// at pins the evaluation time, for replaying a backlog as of when it
	// was recorded or for tests; by default each vCon is judged at the
	// moment the link runs.
	if at := o.String("at", ""); at != "" {
		t, ok := vcon.ParseTime(at)
		if !ok {
			o.Failf("at", "want an RFC 3339 timestamp such as 2026-01-02T12:00:00Z")
		}
		l.now = func() time.Time { return t }
	}
	if err := o.Err(); err != nil {
		return nil, err
	}
	return l, nil
}

// Decision values, recorded in the evaluation and as the value of the
// lawful_basis tag.
const (
	decisionGranted = "granted"
	decisionDenied  = "denied"
)

// Status of one purpose. The error names are the draft's ("Error
// Handling"), so an auditor can map a recorded reason to the text.
const (
	statusGranted = "granted"
	statusDenied  = "denied"  // PermissionDeniedError
	statusExpired = "expired" // LawfulBasisExpiredError
	statusMissing = "missing" // LawfulBasisMissingError
	statusInvalid = "invalid" // the attachment failed validation
)

// lawfulBasisEvaluation is the analysis entry type the link writes.
const lawfulBasisEvaluation = "lawful_basis_evaluation"

// purposeResult is how one required purpose was judged.
type purposeResult struct {
	Purpose, Status string
	// Error is the draft's error name, Reason says which attachment and why.
	Error, Reason string
}

// lawfulBasisRecord is what a lawful_basis attachment said, once checked.
type lawfulBasisRecord struct {
	index   int    // in attachments
	problem string // why it is invalid, "" when valid
	errName string // the draft's error name for problem
	expired bool
	grants  []purposeGrant
}

type purposeGrant struct {
	purpose string
	granted bool
	at      time.Time
}

func (l *lawfulBasisLink) Run(_ context.Context, v *vcon.VCon) (Result, error) {
	now := l.now().UTC()
	results := evaluateLawfulBasis(v, l.required, now, l.skew)
	decision := decisionGranted
	for _, r := range results {
		if r.Status != statusGranted {
			decision = decisionDenied
		}
	}
	l.record(v, decision, results, now)
	if decision == decisionGranted {
		return Continue, nil
	}
	res := Halted
	res.Routes = l.route
	return res, nil
}

// record writes the evaluation as an analysis entry, replacing the one this
// link wrote on an earlier delivery of the same vCon so that a redelivery
// leaves one record, and tags a denied vCon so that tag_router, search and
// people can find it. The entry holds purposes and reasons only, never the
// attachment's proof data.
func (l *lawfulBasisLink) record(v *vcon.VCon, decision string, results []purposeResult, now time.Time) {
	purposes := make([]any, len(results))
	for i, r := range results {
		p := map[string]any{"purpose": r.Purpose, "status": r.Status}
		if r.Error != "" {
			p["error"], p["reason"] = r.Error, r.Reason
		}
		purposes[i] = p
	}
	entry := map[string]any{
		"type":     lawfulBasisEvaluation,
		"vendor":   "vcon-operator",
		"product":  l.name,
		"encoding": "json",
		"body": map[string]any{
			"decision":     decision,
			"evaluated_at": now.Format(time.RFC3339),
			"purposes":     purposes,
		},
	}
	old, _ := v.Doc()[vcon.Analysis].([]any)
	kept := make([]any, 0, len(old)+1)
	for _, a := range old {
		if m, ok := a.(map[string]any); ok && m["type"] == lawfulBasisEvaluation && m["product"] == l.name {
			continue
		}
		kept = append(kept, a)
	}
	v.Doc()[vcon.Analysis] = append(kept, entry)
	if decision == decisionDenied {
		vcon.AddTag(v, "lawful_basis", decisionDenied)
	}
}

// evaluateLawfulBasis judges each required purpose against the vCon's
// lawful_basis attachments at now, following the draft's "Granular
// Permission Evaluation": every applicable grant is considered, the most
// restrictive wins (one grant with granted: false denies, so a later
// withdrawal recorded as a refusal overrides an earlier consent), and no
// valid grant denies. An attachment that fails validation (malformed, bad
// references, content hash mismatch) denies every purpose: it cannot be
// read, and what it cannot be read to say may be a refusal.
func evaluateLawfulBasis(v *vcon.VCon, required []string, now time.Time, skew time.Duration) []purposeResult {
	records := lawfulBasisRecords(v, now, skew)
	out := make([]purposeResult, 0, len(required))
	for _, purpose := range required {
		out = append(out, judgePurpose(records, purpose, now, skew))
	}
	return out
}

func judgePurpose(records []lawfulBasisRecord, purpose string, now time.Time, skew time.Duration) purposeResult {
	r := purposeResult{Purpose: purpose}
	if len(records) == 0 {
		r.Status, r.Error, r.Reason = statusMissing, "LawfulBasisMissingError", "the vCon has no lawful_basis attachment"
		return r
	}
	granted, expired, future := false, false, false
	for _, rec := range records {
		if rec.problem != "" {
			r.Status, r.Error = statusInvalid, rec.errName
			r.Reason = fmt.Sprintf("attachments[%d]: %s", rec.index, rec.problem)
			return r
		}
		for _, g := range rec.grants {
			if g.purpose != purpose {
				continue
			}
			switch {
			case rec.expired:
				expired = expired || g.granted
			case g.at.After(now.Add(skew)):
				// Recorded as given later than now: not in force yet.
				future = true
			case !g.granted:
				r.Status, r.Error = statusDenied, "PermissionDeniedError"
				r.Reason = fmt.Sprintf("attachments[%d] refuses %q", rec.index, purpose)
				return r
			default:
				granted = true
			}
		}
	}
	switch {
	case granted:
		r.Status = statusGranted
	case expired:
		r.Status, r.Error, r.Reason = statusExpired, "LawfulBasisExpiredError", fmt.Sprintf("the lawful basis granting %q has expired", purpose)
	case future:
		r.Status, r.Error, r.Reason = statusMissing, "LawfulBasisMissingError", fmt.Sprintf("the grant of %q is dated after the evaluation time", purpose)
	default:
		r.Status, r.Error, r.Reason = statusMissing, "LawfulBasisMissingError", fmt.Sprintf("no lawful_basis attachment grants %q", purpose)
	}
	return r
}

// lawfulBasisRecords reads the attachments the draft defines: purpose
// "lawful_basis" (-02), or type "lawful_basis" (-00 and conserver's
// documentation).
func lawfulBasisRecords(v *vcon.VCon, now time.Time, skew time.Duration) []lawfulBasisRecord {
	parties, dialogs := len(v.List(vcon.Parties)), len(v.List(vcon.Dialog))
	var out []lawfulBasisRecord
	for i, a := range v.List(vcon.Attachments) {
		p, _ := a["purpose"].(string)
		t, _ := a["type"].(string)
		if p != "lawful_basis" && t != "lawful_basis" {
			continue
		}
		out = append(out, readLawfulBasis(i, a, parties, dialogs, now, skew))
	}
	return out
}

var lawfulBases = map[string]bool{
	"consent": true, "contract": true, "legal_obligation": true,
	"vital_interests": true, "public_task": true, "legitimate_interests": true,
}

func readLawfulBasis(index int, a map[string]any, parties, dialogs int, now time.Time, skew time.Duration) lawfulBasisRecord {
	rec := lawfulBasisRecord{index: index}
	fail := func(errName, format string, args ...any) lawfulBasisRecord {
		rec.problem, rec.errName, rec.grants = fmt.Sprintf(format, args...), errName, nil
		return rec
	}
	// Reference Validation: the party and dialog the attachment names must
	// exist (0 stands for "no specific one", and must exist too).
	if msg, ok := checkIndex(a["party"], parties); !ok {
		return fail("ReferenceValidationError", "party %s", msg)
	}
	if msg, ok := checkIndex(a["dialog"], dialogs); !ok {
		return fail("ReferenceValidationError", "dialog %s", msg)
	}
	body, ok := attachmentJSONBody(a["body"])
	if !ok {
		return fail("ValidationError", "body is not a JSON object")
	}
	if basis, _ := body["lawful_basis"].(string); !lawfulBases[basis] {
		return fail("ValidationError", "lawful_basis is not one of consent, contract, legal_obligation, vital_interests, public_task, legitimate_interests")
	}
	switch exp := body["expiration"].(type) {
	case nil:
		// Indefinite ("null"), but the key is required.
		if _, present := body["expiration"]; !present {
			return fail("ValidationError", "expiration is missing (null for indefinite)")
		}
	case string:
		t, ok := vcon.ParseTime(exp)
		if !ok {
			return fail("ValidationError", "expiration is not a timestamp")
		}
		rec.expired = now.After(t.Add(skew))
	default:
		return fail("ValidationError", "expiration is not a timestamp or null")
	}
	if ch, present := body["content_hash"]; present {
		if errName, problem := checkContentHash(body, ch); problem != "" {
			return fail(errName, "%s", problem)
		}
	}
	grants, ok := body["purpose_grants"].([]any)
	if !ok {
		return fail("ValidationError", "purpose_grants is not a list")
	}
	for j, g := range grants {
		m, ok := g.(map[string]any)
		if !ok {
			return fail("ValidationError", "purpose_grants[%d] is not an object", j)
		}
		purpose, _ := m["purpose"].(string)
		granted, isBool := m["granted"].(bool)
		at, _ := m["granted_at"].(string)
		when, okTime := vcon.ParseTime(at)
		switch {
		case purpose == "":
			return fail("ValidationError", "purpose_grants[%d].purpose is missing", j)
		case !isBool:
			return fail("ValidationError", "purpose_grants[%d].granted is not true or false", j)
		case !okTime:
			return fail("ValidationError", "purpose_grants[%d].granted_at is not a timestamp", j)
		}
		rec.grants = append(rec.grants, purposeGrant{purpose: purpose, granted: granted, at: when})
	}
	return rec
}

// checkIndex accepts an absent reference, else a whole number below n.
func checkIndex(x any, n int) (string, bool) {
	if x == nil {
		return "", true
	}
	f, ok := vcon.Number(x)
	if !ok || f != float64(int(f)) || f < 0 {
		return "is not an index", false
	}
	if int(f) >= n {
		return fmt.Sprintf("index %d does not exist", int(f)), false
	}
	return "", true
}

// attachmentJSONBody reads a body with encoding "json": an object, or the
// same object serialised in a string (the core draft's "json" encoding
// carries JSON text; the lawful basis draft's examples inline it).
func attachmentJSONBody(x any) (map[string]any, bool) {
	switch b := x.(type) {
	case map[string]any:
		return b, true
	case string:
		v, err := vcon.Parse([]byte(b))
		if err != nil {
			return nil, false
		}
		return v.Doc(), true
	}
	return nil, false
}

// checkContentHash validates the body's content_hash ("Content Hash
// Validation": MUST when present). The draft hashes "the canonicalized
// lawful basis attachment body"; the value cannot cover itself, so the
// body is canonicalised without its content_hash member.
func checkContentHash(body map[string]any, x any) (errName, problem string) {
	ch, ok := x.(map[string]any)
	if !ok {
		return "ValidationError", "content_hash is not an object"
	}
	alg, _ := ch["algorithm"].(string)
	canon, _ := ch["canonicalization"].(string)
	want, _ := ch["value"].(string)
	var h hash.Hash
	switch alg {
	case "sha-256":
		h = sha256.New()
	case "sha-3-256":
		h = sha3.New256()
	case "blake2b-256":
		h, _ = blake2b.New256(nil) // no key: cannot fail
	default:
		return "UnsupportedHashAlgorithmError", fmt.Sprintf("content_hash algorithm %q is not supported (sha-256, sha-3-256, blake2b-256)", alg)
	}
	if canon != "jcs" {
		return "UnsupportedCanonicalizationError", fmt.Sprintf("content_hash canonicalization %q is not supported (jcs)", canon)
	}
	rest := make(map[string]any, len(body))
	for k, val := range body {
		if k != "content_hash" {
			rest[k] = val
		}
	}
	canonical, err := vcon.AppendJCS(nil, rest)
	if err != nil {
		return "ValidationError", "body cannot be canonicalised: " + err.Error()
	}
	h.Write(canonical)
	if got := hex.EncodeToString(h.Sum(nil)); !strings.EqualFold(got, want) {
		return "ContentHashMismatchError", "content_hash does not match the body"
	}
	return "", ""
}
