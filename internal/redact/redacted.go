package redact

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// DefaultRedactedType is the redacted object's type when the caller names
// none: the value of the core draft's example redacted vCon.
const DefaultRedactedType = "PII Redaction"

// RedactedOptions shape the redacted vCon RedactedVcon builds.
type RedactedOptions struct {
	// UUID is the new vCon's uuid. Empty means a new UUIDv7; the draft asks
	// for a version 8 uuid carrying a hash of the issuer's host name, which
	// a caller that has one should pass.
	UUID string
	// Type is the redacted object's type, which the draft says "should
	// indicate the type of information that was redacted"; empty means
	// DefaultRedactedType.
	Type string
	// URL and ContentHash say where the unredacted vCon is kept. The draft
	// requires content_hash with url, and that access to the url be limited
	// to those allowed to see the data.
	URL         string
	ContentHash string
	// DropUnreadable removes the body and url of what the Report lists as
	// Skipped (recordings, binary and external bodies), keeping the entry
	// itself: the draft keeps array indexes stable and allows body and url
	// to be absent in a redacted vCon. Without it they are copied as they
	// are, for a caller that redacts the media itself.
	DropUnreadable bool
	// Extensions are the extension names, besides CC, that the caller
	// knows carry no data this package would have to read.
	Extensions []string
	// Now stamps updated_at; zero means time.Now.
	Now time.Time
}

// knownExtensions need nothing of a redactor: the cc-extension draft says
// no processing, "such as transcription or redaction", needs to
// understand its parameters.
var knownExtensions = []string{"CC"}

// ErrNotUnsigned is returned for a signed (JWS) or encrypted (JWE) vCon:
// it has to be verified or decrypted before its content can be redacted.
var ErrNotUnsigned = errors.New("redact: the vCon is signed or encrypted; verify or decrypt it first, then redact the unsigned form")

// RedactedVcon builds the redacted version of a vCon as
// draft-ietf-vcon-vcon-core describes it: a new vCon instance with its own
// uuid, in which every text has been redacted (RedactDocument), and a
// redacted object {uuid, type[, url, content_hash]} that refers to the
// original. The original is not changed. Signing the result, which the
// draft asks of whoever redacts, and storing the original (encrypted, if
// it travels inline) are the caller's.
//
// It refuses a vCon that lists critical extensions, or extensions it was
// not told of: the draft says a redactor "must be aware of the
// implications of all parameters in the vCon to be sure to redact", and
// must not process a vCon with a critical extension it does not support.
func (r *Redactor) RedactedVcon(ctx context.Context, original *vcon.VCon, o RedactedOptions) (*vcon.VCon, *Report, error) {
	doc := original.Doc()
	for _, k := range []string{"payload", "signatures", "ciphertext"} {
		if _, ok := doc[k]; ok {
			return nil, nil, ErrNotUnsigned
		}
	}
	if crit := stringList(doc["critical"]); len(crit) > 0 {
		return nil, nil, fmt.Errorf("redact: the vCon lists critical extensions %s, which this redactor does not support; it must not process it", strings.Join(crit, ", "))
	}
	for _, e := range stringList(doc["extensions"]) {
		if !slices.Contains(knownExtensions, e) && !slices.Contains(o.Extensions, e) {
			return nil, nil, fmt.Errorf("redact: the vCon uses extension %q, whose parameters this redactor does not know; add it to the known extensions if it carries no personal data", e)
		}
	}
	if o.URL != "" && o.ContentHash == "" {
		return nil, nil, errors.New("redact: a url for the unredacted vCon needs its content_hash (draft-ietf-vcon-vcon-core, Redacted Object)")
	}
	id := o.UUID
	if id == "" {
		u, err := uuid.NewV7()
		if err != nil {
			return nil, nil, fmt.Errorf("redact: new uuid: %w", err)
		}
		id = u.String()
	} else if !vcon.ValidUUID(id) {
		return nil, nil, fmt.Errorf("redact: uuid %q is not a UUID", id)
	}
	if id == original.UUID() {
		return nil, nil, errors.New("redact: the redacted vCon needs a uuid of its own, not the original's")
	}

	out := original.Clone()
	rep, err := r.RedactVCon(ctx, out)
	if err != nil {
		return nil, nil, err
	}
	if o.DropUnreadable {
		dropUnreadable(out, rep.Skipped)
	}
	typ := o.Type
	if typ == "" {
		typ = DefaultRedactedType
	}
	red := map[string]any{"type": typ}
	// An absent uuid says the less redacted version is not available.
	if prev := original.UUID(); prev != "" {
		red["uuid"] = prev
	}
	if o.URL != "" {
		red["url"] = o.URL
		red["content_hash"] = o.ContentHash
	}
	out.Doc()["uuid"] = id
	out.Doc()["redacted"] = red
	// redacted and amended are mutually exclusive: the original's own
	// history is reachable through the original.
	delete(out.Doc(), "amended")
	delete(out.Doc(), "appended")
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	out.Doc()["updated_at"] = now.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	return out, rep, nil
}

func stringList(x any) []string {
	l, _ := x.([]any)
	out := make([]string, 0, len(l))
	for _, e := range l {
		if s, ok := e.(string); ok {
			out = append(out, s)
		} else {
			out = append(out, fmt.Sprint(e))
		}
	}
	return out
}

// dropUnreadable removes the body and url of each skipped entry. A
// Skipped path is "dialog[2]" or "attachments[1].body".
func dropUnreadable(v *vcon.VCon, skipped []Skipped) {
	for _, s := range skipped {
		path := strings.TrimSuffix(s.Path, ".body")
		open := strings.IndexByte(path, '[')
		if open < 0 || !strings.HasSuffix(path, "]") {
			continue
		}
		var i int
		if _, err := fmt.Sscanf(path[open:], "[%d]", &i); err != nil {
			continue
		}
		items, _ := v.Doc()[path[:open]].([]any)
		if i < 0 || i >= len(items) {
			continue
		}
		e, ok := items[i].(map[string]any)
		if !ok {
			continue
		}
		delete(e, "body")
		delete(e, "url")
		delete(e, "encoding")
	}
}
