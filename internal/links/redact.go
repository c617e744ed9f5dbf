package links

import (
	"context"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/redact"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func init() { Register("links.redact", newRedact) }

// Values of the redact link's options.
const (
	partiesKeep   = "keep"
	partiesRemove = "remove"

	// RedactionAnalysisType is the type of the analysis entry that tells
	// readers of a redacted vCon what was redacted and where (never what
	// it was): neither the core draft nor the cc-extension defines a
	// place for it, and an analysis entry is what the draft has for
	// derived data.
	RedactionAnalysisType = "redaction"
	// RedactionSchema names the shape of that entry's body
	// (docs/compliance.md).
	RedactionSchema = "vcon-operator/redaction/v1"
)

// redactOptionKeys are the options links.redact reads. Unlike the other
// links it refuses any other key: a misspelt mute_audio or parties in a
// compliance step would silently keep data a user meant to remove.
var redactOptionKeys = []string{
	"types", "replacement", "labels", "patterns", "external", "redaction_type",
	"original_storages", "parties", "mute_audio", "mute_padding", "extensions",
}

// identifyingPartyKeys are what parties: remove deletes from each party:
// everything the core draft defines that names or reaches a person. The
// entry stays, so dialog party indexes keep pointing where they did (the
// draft asks for placeholders rather than shifted arrays).
var identifyingPartyKeys = []string{"tel", "sip", "stir", "mailto", "name", "did", "validation", "gmlpos", "civicaddress", "uuid", "contact_list"}

// redactLink builds the redacted version of each vCon (internal/redact,
// draft-ietf-vcon-vcon-core "redacted") and hands it to the pipeline as
// Result.Redacted; the pipeline keeps the original for original_storages
// only. It never changes the vCon it is given.
type redactLink struct {
	name      string
	redactor  *redact.Redactor
	external  *retryingDetector // nil without an external engine
	typ       string
	originals []string
	parties   string
	mute      bool
	pad       float64
	exts      []string
}

func newRedact(name string, raw map[string]any, deps Deps) (Link, error) {
	o := options.New(raw)
	for _, k := range o.Keys() {
		if !slices.Contains(redactOptionKeys, k) {
			o.Failf(k, "unknown option of links.redact; the options are %s", strings.Join(redactOptionKeys, ", "))
		}
	}
	cfg := redact.Config{Labels: map[redact.Type]string{}}
	for _, t := range o.Strings("types") {
		cfg.Types = append(cfg.Types, redact.Type(strings.ToLower(strings.TrimSpace(t))))
	}
	switch r := o.Name("replacement", "mask"); r {
	case "mask":
		cfg.Mode = redact.Mask
	case "remove":
		cfg.Mode = redact.Remove
	default:
		o.Failf("replacement", "want mask or remove, got %q", r)
	}
	labels := o.Map("labels")
	for _, k := range labels.Keys() {
		cfg.Labels[redact.Type(k)] = labels.String(k, "")
	}
	patterns := o.Map("patterns")
	for _, k := range patterns.Keys() {
		// An empty expression goes to the engine, which refuses it (it
		// would match everywhere) rather than being dropped unnoticed.
		cfg.Patterns = append(cfg.Patterns, redact.Pattern{Name: k, Expr: patterns.String(k, "")})
	}
	var external *retryingDetector
	if ext := o.Map("external"); !ext.Empty() {
		external = externalDetector(ext, deps.HTTP)
		cfg.External = external
	}
	l := &redactLink{
		name:     name,
		external: external,
		typ:      o.Name("redaction_type", redact.DefaultRedactedType),
		parties:  o.Name("parties", partiesKeep),
		mute:     o.Bool("mute_audio", true),
		pad:      o.Duration("mute_padding", 200*time.Millisecond).Seconds(),
		exts:     o.Strings("extensions"),
	}
	if l.parties != partiesKeep && l.parties != partiesRemove {
		o.Failf("parties", "want keep or remove, got %q", l.parties)
	}
	// Required, [] allowed: where the original goes (or that it goes
	// nowhere) is a decision a user makes, never a default.
	if !o.Has("original_storages") {
		o.Failf("original_storages", "required: the storages that keep the unredacted original (e.g. [restricted]); write [] to keep it nowhere")
	}
	l.originals = o.Strings("original_storages")
	for i, s := range l.originals {
		if strings.TrimSpace(s) == "" || slices.Contains(l.originals[:i], s) {
			o.Failf("original_storages", "item %d: a storage name, once", i)
		}
	}
	if err := o.Err(); err != nil {
		return nil, err
	}
	r, err := redact.New(cfg)
	if err != nil {
		// The engine's errors name the type or pattern at fault.
		return nil, errors.New(strings.TrimPrefix(err.Error(), "redact: "))
	}
	l.redactor = r
	return l, nil
}

// externalDetector reads the external PII engine's options. Its calls are
// retried here a few times; what still fails is marked retryable for the
// chain's delayed retries, and in the end dead-letters: an engine that
// cannot be asked never lets the text pass as if it had found nothing.
func externalDetector(o *options.Reader, client *http.Client) *retryingDetector {
	d := &retryingDetector{
		inner: &redact.HTTPDetector{URL: o.URL("url", ""), Client: client, Header: http.Header{}},
		policy: httpx.Policy{
			Retries: o.IntRange("retries", 2, 0, 10),
			Base:    250 * time.Millisecond, Max: 5 * time.Second, Jitter: true,
		},
		timeout: o.Duration("timeout", 30*time.Second),
	}
	if !o.Has("url") {
		o.Failf("url", "required when external is set: the engine's http(s) endpoint")
	}
	for k, v := range o.Headers("headers") {
		d.inner.Header.Set(k, v)
	}
	return d
}

type retryingDetector struct {
	inner   *redact.HTTPDetector
	policy  httpx.Policy
	timeout time.Duration
}

func (d *retryingDetector) Detect(ctx context.Context, texts []string) ([][]redact.Span, error) {
	var out [][]redact.Span
	_, err := httpx.Retry(ctx, d.policy, func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, d.timeout)
		defer cancel()
		var err error
		out, err = d.inner.Detect(ctx, texts)
		return httpx.Retryable(err, 0)
	})
	return out, err
}

func (l *redactLink) OriginalStorages() []string { return slices.Clone(l.originals) }

func (l *redactLink) Run(ctx context.Context, v *vcon.VCon) (Result, error) {
	id, err := redactedUUID(v, l.name)
	if err != nil {
		return Result{}, err
	}
	out, rep, err := l.redactor.RedactedVcon(ctx, v, redact.RedactedOptions{
		UUID: id, Type: l.typ, Extensions: l.exts,
		// What the engine cannot read is never passed on; recordings
		// the link can mute are restored below from the original.
		DropUnreadable: true,
	})
	if err != nil {
		if errors.Is(err, redact.ErrNotUnsigned) || ctx.Err() != nil {
			return Result{}, err
		}
		var re interface{ Retryable() bool }
		if errors.As(err, &re) {
			return Result{}, fmt.Errorf("redact: the external PII engine failed, the vCon is held back unredacted: %w", err)
		}
		return Result{}, err
	}
	audio := l.redactAudio(v, out, rep)
	if l.parties == partiesRemove {
		for _, p := range out.List(vcon.Parties) {
			for _, k := range identifyingPartyKeys {
				delete(p, k)
			}
		}
	}
	out.Append(vcon.Analysis, redactionEntry(rep, audio, l.name))
	return Result{Redacted: out}, nil
}

// audioAction is what happened to one recording in the redacted vCon.
type audioAction struct {
	Dialog int                `json:"dialog"`
	Action string             `json:"action"` // muted, removed
	Reason string             `json:"reason,omitempty"`
	Ranges []redact.TimeRange `json:"ranges,omitempty"`
}

// redactAudio decides each recording of the redacted vCon. DropUnreadable
// removed every recording's body and url; an inline PCM WAV recording
// comes back muted where the findings say PII was spoken, when its
// dialog has a timed transcript and every finding of that dialog without
// a time is matched by a timed one of its type (else something was found
// that cannot be placed in the audio, and the recording stays removed).
func (l *redactLink) redactAudio(orig, out *vcon.VCon, rep *redact.Report) []audioAction {
	var actions []audioAction
	origDialog := orig.List(vcon.Dialog)
	outDialog := out.List(vcon.Dialog)
	for i, d := range origDialog {
		if (d["type"] != "recording" && d["type"] != "video") || (d["body"] == nil && d["url"] == nil) || i >= len(outDialog) {
			continue
		}
		act := audioAction{Dialog: i, Action: "removed"}
		ranges, placed := timedFindings(rep, i)
		data, isWAV := inlineWAV(d)
		switch {
		case !l.mute:
			act.Reason = "mute_audio is off"
		case d["body"] == nil:
			act.Reason = "referenced by url: the media is not fetched"
		case !isWAV:
			act.Reason = "not an inline PCM WAV recording"
		case !slices.Contains(rep.Timed, i):
			act.Reason = "no transcript with timings for this dialog"
		case !placed:
			act.Reason = "a finding of this dialog has no time"
		default:
			muted, err := redact.MuteWAV(data, ranges, l.pad)
			if err != nil {
				act.Reason = "not an inline PCM WAV recording"
				break
			}
			e := outDialog[i]
			e["body"] = base64.RawURLEncoding.EncodeToString(muted)
			e["encoding"] = "base64url"
			if _, ok := e["content_hash"]; ok {
				sum := sha512.Sum512(muted)
				e["content_hash"] = "sha512-" + base64.RawURLEncoding.EncodeToString(sum[:])
			}
			act = audioAction{Dialog: i, Action: "muted", Ranges: ranges}
		}
		actions = append(actions, act)
	}
	return actions
}

// timedFindings returns the time ranges of dialog i's findings, and
// whether every untimed finding of the dialog has a timed one of its
// type to cover it (a transcript string and its words find the same
// card; only the words say when).
func timedFindings(rep *redact.Report, i int) ([]redact.TimeRange, bool) {
	var ranges []redact.TimeRange
	timed, untimed := map[redact.Type]int{}, map[redact.Type]int{}
	seen := map[int]bool{}
	for _, f := range rep.Findings {
		if f.Dialog == nil || *f.Dialog != i {
			continue
		}
		if f.Time != nil {
			ranges = append(ranges, *f.Time)
		}
		if seen[f.Group] {
			continue
		}
		seen[f.Group] = true
		if f.Time != nil {
			timed[f.Type]++
		} else {
			untimed[f.Type]++
		}
	}
	for t, n := range untimed {
		if timed[t] < n {
			return nil, false
		}
	}
	sort.Slice(ranges, func(a, b int) bool { return ranges[a].Start < ranges[b].Start })
	return ranges, true
}

// inlineWAV decodes a dialog's inline body when it is a WAV file.
func inlineWAV(d map[string]any) ([]byte, bool) {
	s, ok := d["body"].(string)
	if !ok {
		return nil, false
	}
	enc, _ := d["encoding"].(string)
	if e := strings.ToLower(enc); e != "base64url" && e != "base64" {
		return nil, false
	}
	for _, b64 := range []*base64.Encoding{base64.RawURLEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.StdEncoding} {
		if data, err := b64.DecodeString(s); err == nil {
			return data, redact.IsWAV(data)
		}
	}
	return nil, false
}

// redactionEntry is the analysis entry recording what was redacted: per
// finding its type, where it was and when it was said, never its text or
// its offsets in the original text (which would tell the length of what
// was removed); what happened to each recording; what was removed
// because it could not be read.
func redactionEntry(rep *redact.Report, audio []audioAction, link string) map[string]any {
	findings := make([]any, 0, len(rep.Findings))
	dialogs := map[int]bool{}
	for _, f := range rep.Findings {
		fm := map[string]any{"type": string(f.Type), "path": f.Path}
		if f.Dialog != nil {
			fm["dialog"] = *f.Dialog
			dialogs[*f.Dialog] = true
		}
		if f.Time != nil {
			fm["time"] = map[string]any{"start": f.Time.Start, "end": f.Time.End}
		}
		findings = append(findings, fm)
	}
	counts := map[string]any{}
	for t, n := range rep.Counts() {
		counts[string(t)] = n
	}
	removed := make([]any, 0, len(rep.Skipped))
	for _, s := range rep.Skipped {
		removed = append(removed, map[string]any{"path": s.Path, "reason": s.Reason})
	}
	recordings := make([]any, 0, len(audio))
	for _, a := range audio {
		m := map[string]any{"dialog": a.Dialog, "action": a.Action}
		if a.Reason != "" {
			m["reason"] = a.Reason
		}
		if len(a.Ranges) > 0 {
			rs := make([]any, len(a.Ranges))
			for i, r := range a.Ranges {
				rs[i] = map[string]any{"start": r.Start, "end": r.End}
			}
			m["ranges"] = rs
		}
		recordings = append(recordings, m)
		dialogs[a.Dialog] = true
	}
	entry := map[string]any{
		"type": RedactionAnalysisType, "vendor": "vcon-operator", "product": link,
		"schema": RedactionSchema, "mediatype": "application/json", "encoding": "json",
		"body": map[string]any{"counts": counts, "findings": findings, "recordings": recordings, "removed": removed},
	}
	if len(dialogs) > 0 {
		ds := make([]any, 0, len(dialogs))
		for d := range dialogs {
			ds = append(ds, d)
		}
		sort.Slice(ds, func(a, b int) bool { return ds[a].(int) < ds[b].(int) })
		entry["dialog"] = ds
	}
	return entry
}

// redactedUUIDSpace is the namespace of the hash that derives a redacted
// vCon's uuid.
var redactedUUIDSpace = uuid.MustParse("6f1d1a7e-5b0c-4d7e-9a55-1c0a6e2f8b31")

// redactedUUID derives the redacted vCon's uuid from the original's uuid
// and the link's name, so that a vCon redacted again after a crash or a
// retry gets the same uuid and every storage overwrites instead of
// keeping two copies. It is a version 8 uuid laid out as the core draft
// asks (a version 7 layout: 48 bits of Unix milliseconds, here the
// original's created_at, so that it sorts with its original), whose other
// 74 bits are a SHA-256 of the namespace, the original uuid and the
// link's name instead of random and host-hash bits: those would make the
// uuid differ on each run.
func redactedUUID(v *vcon.VCon, link string) (string, error) {
	orig := v.UUID()
	if orig == "" {
		return "", errors.New("redact: the vCon has no uuid to refer to")
	}
	var ms uint64
	if t, ok := vcon.CreatedAt(v); ok && t.UnixMilli() > 0 {
		ms = uint64(t.UnixMilli()) & (1<<48 - 1)
	}
	h := sha256.New()
	h.Write(redactedUUIDSpace[:])
	h.Write([]byte(strings.ToLower(orig)))
	h.Write([]byte{0})
	h.Write([]byte(link))
	sum := h.Sum(nil)
	var u uuid.UUID
	binary.BigEndian.PutUint64(u[0:8], ms<<16)
	copy(u[6:], sum[:10])
	u[6] = 0x80 | u[6]&0x0f // version 8
	u[8] = 0x80 | u[8]&0x3f // RFC 9562 variant
	return u.String(), nil
}
