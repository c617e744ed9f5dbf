package links

// links.transcribe: speech to text for each recording dialog, through the
// vendor named in `vendor` (openai, groq, deepgram) configured by
// `vendor_options` (legacy name `transcribe_options`). conserver's old
// per-vendor modules are aliases that set the vendor, as conserver's own
// loader reroutes them: links.openai_transcribe, links.groq_whisper,
// links.deepgram_link. The transcript is appended as conserver's vendor
// modules add it: type "transcript", the dialog index, the vendor's name,
// the vendor's answer as a JSON body, and the options (without credentials)
// as vendor_schema.

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"strconv"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func init() {
	Register("links.transcribe", newTranscribe)
	Register("links.openai_transcribe", transcribeAlias("openai"))
	Register("links.groq_whisper", transcribeAlias("groq"))
	Register("links.deepgram_link", transcribeAlias("deepgram"))
}

// transcribeVendor sends one recording and returns the body to store and,
// when the vendor reports one, a confidence.
type transcribeVendor interface {
	// vendor is the name recorded in the analysis (conserver's spelling).
	vendor() string
	transcribe(ctx context.Context, audio *transcribeAudio) (body any, confidence *float64, err error)
}

// transcribeVendorDefaults are conserver's per-vendor minimum durations.
var transcribeVendorDefaults = map[string]float64{
	"openai":   3,
	"groq":     30,
	"deepgram": 60,
}

type transcribeLink struct {
	name          string
	logger        *slog.Logger
	vendor        transcribeVendor
	fetcher       *transcribeFetcher
	minDuration   float64
	minConfidence *float64
	schema        map[string]any
}

func newTranscribe(name string, raw map[string]any, deps Deps) (Link, error) {
	o := aiOpts(raw)
	vendor, err := o.str("vendor", "")
	if err != nil {
		return nil, err
	}
	var vopts aiOpts
	switch {
	case o.set("vendor_options"):
		vopts, err = o.mapping("vendor_options")
	case o.set("transcribe_options"):
		vopts, err = o.mapping("transcribe_options")
	}
	if err != nil {
		return nil, err
	}
	return newTranscribeVendor(name, vendor, vopts, deps)
}

// transcribeAlias is a legacy module: its options are the vendor options,
// unless they are already shaped for links.transcribe (conserver's rule).
func transcribeAlias(vendor string) Factory {
	return func(name string, raw map[string]any, deps Deps) (Link, error) {
		o := aiOpts(raw)
		if o.set("vendor") || o.set("vendor_options") {
			merged := aiOpts{"vendor": vendor}
			for k, v := range o {
				merged[k] = v
			}
			return newTranscribe(name, merged, deps)
		}
		return newTranscribeVendor(name, vendor, o, deps)
	}
}

func newTranscribeVendor(name, vendor string, o aiOpts, deps Deps) (Link, error) {
	if o == nil {
		o = aiOpts{}
	}
	l := &transcribeLink{name: name, logger: deps.Logger}
	if l.logger == nil {
		l.logger = slog.Default()
	}
	var err error
	switch vendor {
	case "openai":
		l.vendor, err = newTranscribeOpenAI(name, o, deps)
	case "groq":
		l.vendor, err = newTranscribeGroq(name, o, deps)
	case "deepgram":
		l.vendor, err = newTranscribeDeepgram(name, o, deps)
		if err == nil {
			var c float64
			if c, err = o.float("minimum_confidence", 0.5); err == nil {
				l.minConfidence = &c
			}
		}
	case "", "whisper_builtin":
		return nil, fmt.Errorf(`option "vendor" is required: openai, groq or deepgram (conserver's built-in whisper is not available)`)
	default:
		return nil, fmt.Errorf(`option "vendor": %q is not supported; use openai, groq or deepgram`, vendor)
	}
	if err != nil {
		return nil, fmt.Errorf("vendor %s: %w", vendor, err)
	}
	if l.minDuration, err = o.float("minimum_duration", transcribeVendorDefaults[vendor]); err != nil {
		return nil, err
	}
	maxBytes, err := o.float("max_download_bytes", transcribeDefaultMaxDownload)
	if err != nil {
		return nil, err
	}
	if maxBytes < 1 {
		return nil, aiOptError("max_download_bytes", "a positive number of bytes", o["max_download_bytes"])
	}
	timeout, err := o.duration("download_timeout", transcribeDefaultDownloadTimeout)
	if err != nil {
		return nil, err
	}
	allowPrivate, err := o.boolean("allow_private_networks", false)
	if err != nil {
		return nil, err
	}
	l.fetcher = newTranscribeFetcher(deps.HTTP, allowPrivate, int64(maxBytes), timeout)
	l.schema = map[string]any{"opts": transcribeSchemaOptions(vendor, o, l.minDuration)}
	return l, nil
}

// transcribeSchemaOptions is what conserver writes as vendor_schema.opts:
// the options with their defaults, credentials and endpoints left out.
func transcribeSchemaOptions(vendor string, o aiOpts, minDuration float64) map[string]any {
	out := aiPublicOptions(o)
	out["minimum_duration"] = minDuration
	if _, ok := out["model"]; !ok {
		switch vendor {
		case "openai":
			out["model"] = transcribeOpenAIModel
		case "groq":
			out["model"] = transcribeGroqModel
		}
	}
	return out
}

func (l *transcribeLink) Run(ctx context.Context, v *vcon.VCon) (Result, error) {
	for index, d := range v.List(vcon.Dialog) {
		if err := ctx.Err(); err != nil {
			return Continue, err
		}
		if d["type"] != "recording" {
			continue
		}
		if dur, ok := aiNumber(d["duration"]); ok && dur < l.minDuration {
			l.logger.Debug("recording shorter than minimum_duration", "link", l.name, "vcon", v.UUID(), "dialog", index)
			continue
		}
		if vcon.FindAnalysis(v, index, "transcript") != nil {
			continue
		}
		audio, err := l.fetcher.audio(ctx, d)
		if err != nil {
			return Continue, fmt.Errorf("transcribe dialog %d: %w", index, err)
		}
		if audio == nil {
			l.logger.Info("recording has neither body nor url", "link", l.name, "vcon", v.UUID(), "dialog", index)
			continue
		}
		body, confidence, err := l.vendor.transcribe(ctx, audio)
		if err != nil {
			return Continue, fmt.Errorf("transcribe dialog %d: %w", index, err)
		}
		if confidence != nil && l.minConfidence != nil && *confidence < *l.minConfidence {
			l.logger.Warn("transcript below minimum_confidence; not stored", "link", l.name, "vcon", v.UUID(), "dialog", index, "confidence", *confidence)
			continue
		}
		aiAddAnalysis(v, "transcript", index, l.vendor.vendor(), aiJSONString(body), "json", map[string]any{"vendor_schema": l.schema})
		l.logger.Info("transcribed recording", "link", l.name, "vcon", v.UUID(), "dialog", index, "vendor", l.vendor.vendor())
	}
	return Continue, nil
}

// transcribeQueryValues renders a Deepgram api option as query values.
func transcribeQueryValues(v any) []string {
	switch t := v.(type) {
	case []any:
		var out []string
		for _, e := range t {
			out = append(out, transcribeQueryValues(e)...)
		}
		return out
	case nil:
		return nil
	case string:
		return []string{t}
	case bool:
		return []string{fmt.Sprint(t)}
	}
	if f, ok := aiNumber(v); ok {
		return []string{strconv.FormatFloat(f, 'f', -1, 64)}
	}
	return []string{fmt.Sprint(v)}
}

func transcribeSortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
