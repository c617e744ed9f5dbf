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
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
	"github.com/vcon-operator/vcon-operator/internal/openai"
	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func init() {
	Register("links.transcribe", newTranscribe)
	Register("links.openai_transcribe", transcribeAlias("openai"))
	Register("links.groq_whisper", transcribeAlias("groq"))
	Register("links.deepgram_link", transcribeAlias("deepgram"))
}

// transcribeVendor sends one upload and returns the vendor's answer.
type transcribeVendor interface {
	// vendor is the name recorded in the analysis (conserver's spelling).
	vendor() string
	// model is the model every upload asks for.
	model() string
	transcribe(ctx context.Context, audio *transcribeAudio) (*transcription, error)
}

// transcription is one vendor answer: the body to store, the confidence
// when the vendor reports one, and what the vendor said the call cost.
type transcription struct {
	body       map[string]any
	confidence *float64
	usage      callUsage
}

// transcribeUsageSubTypes are the sub_type of each vendor's AI usage
// records: conserver's for openai and deepgram (its groq link records
// none).
var transcribeUsageSubTypes = map[string]string{
	"openai":   "OPENAI_TRANSCRIBE",
	"groq":     "GROQ_TRANSCRIBE",
	"deepgram": "DEEPGRAM_TRANSCRIBE",
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
	split         transcribeSplit
	usage         *usageReporter
	schema        map[string]any
}

func newTranscribe(name string, raw map[string]any, deps Deps) (Link, error) {
	o := options.New(raw)
	vendor := o.String("vendor", "")
	vopts := o.Map("vendor_options")
	if !o.Has("vendor_options") {
		vopts = o.Map("transcribe_options")
	}
	return newTranscribeVendor(name, vendor, o, vopts, deps)
}

// transcribeAlias is a legacy module: its options are the vendor options,
// unless they are already shaped for links.transcribe (conserver's rule).
func transcribeAlias(vendor string) Factory {
	return func(name string, raw map[string]any, deps Deps) (Link, error) {
		o := options.New(raw)
		if o.Has("vendor") || o.Has("vendor_options") {
			merged := map[string]any{"vendor": vendor}
			for k, v := range raw {
				merged[k] = v
			}
			return newTranscribe(name, merged, deps)
		}
		return newTranscribeVendor(name, vendor, o, o, deps)
	}
}

// newTranscribeVendor reads the vendor's options from vo; top is the
// link's options, where every problem is collected.
func newTranscribeVendor(name, vendor string, top, vo *options.Reader, deps Deps) (Link, error) {
	l := &transcribeLink{name: name, logger: deps.Logger}
	if l.logger == nil {
		l.logger = slog.Default()
	}
	var err error
	switch vendor {
	case "openai":
		l.vendor, err = newTranscribeOpenAI(name, vo, deps)
	case "groq":
		l.vendor, err = newTranscribeGroq(name, vo, deps)
	case "deepgram":
		l.vendor, err = newTranscribeDeepgram(name, vo, deps)
		c := vo.Float("minimum_confidence", 0.5)
		l.minConfidence = &c
	case "", "whisper_builtin":
		top.Failf("vendor", "required: openai, groq or deepgram (conserver's built-in whisper is not available)")
	default:
		top.Failf("vendor", "%q is not supported; use openai, groq or deepgram", vendor)
	}
	if err != nil {
		return nil, err
	}
	l.minDuration = vo.Float("minimum_duration", transcribeVendorDefaults[vendor])
	maxBytes := vo.Float("max_download_bytes", transcribeDefaultMaxDownload)
	if maxBytes < 1 {
		vo.Fail("max_download_bytes", "a positive number of bytes")
	}
	timeout := vo.Duration("download_timeout", transcribeDefaultDownloadTimeout)
	l.split = readTranscribeSplit(vendor, vo)
	if l.usage, err = newUsageReporter(name, transcribeUsageSubTypes[vendor], vo, deps); err != nil {
		return nil, err
	}
	allowPrivate := vo.Bool("allow_private_networks", false)
	if err := top.Err(); err != nil {
		return nil, err
	}
	l.fetcher = newTranscribeFetcher(deps.HTTP, allowPrivate, int64(maxBytes), timeout)
	l.schema = map[string]any{"opts": transcribeSchemaOptions(vendor, vo.Values(), l.minDuration)}
	return l, nil
}

// transcribeSchemaOptions is what conserver writes as vendor_schema.opts:
// the options with their defaults, credentials and endpoints left out.
func transcribeSchemaOptions(vendor string, o map[string]any, minDuration float64) map[string]any {
	out := publicOptions(o)
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
		if dur, ok := vcon.Number(d["duration"]); ok && dur < l.minDuration {
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
		tr, seconds, err := l.transcribeRecording(ctx, d, audio)
		if err != nil {
			return Continue, fmt.Errorf("transcribe dialog %d: %w", index, err)
		}
		// Paid for whether or not the transcript is kept. What the vendor
		// says it heard is what it bills; the measured length otherwise.
		if tr.usage.seconds > 0 {
			seconds = tr.usage.seconds
		}
		l.usage.recordTranscription(ctx, v, l.vendor.model(), tr.usage, seconds)
		if tr.confidence != nil && l.minConfidence != nil && *tr.confidence < *l.minConfidence {
			l.logger.Warn("transcript below minimum_confidence; not stored", "link", l.name, "vcon", v.UUID(), "dialog", index, "confidence", *tr.confidence)
			continue
		}
		addAnalysis(v, "transcript", index, l.vendor.vendor(), jsonString(tr.body), "json", map[string]any{"vendor_schema": l.schema})
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
	if f, ok := vcon.Number(v); ok {
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

// The wire formats of the transcription vendors. OpenAI and Groq take a
// multipart upload at {base}/audio/transcriptions (Groq is OpenAI's API at
// another base); Deepgram takes the raw audio at {base}/listen with its
// options in the query string.

const (
	transcribeOpenAIModel = "gpt-4o-transcribe"
	transcribeGroqModel   = "whisper-large-v3-turbo"
	transcribeGroqBaseURL = "https://api.groq.com/openai/v1"
	transcribeDGBaseURL   = "https://api.deepgram.com/v1"
	transcribeDGModel     = "nova-3"
)

// transcribeMultipart is the OpenAI-style upload (OpenAI, Azure, LiteLLM,
// Groq).
type transcribeMultipart struct {
	metrics     linkMetrics
	endpoint    openai.Endpoint
	http        *http.Client
	modelName   string
	fields      map[string]string // extra form fields (language, response_format, ...)
	timeout     time.Duration
	policy      httpx.Policy
	vendorLabel string
}

func (t *transcribeMultipart) vendor() string { return t.vendorLabel }
func (t *transcribeMultipart) model() string  { return t.modelName }

func newTranscribeOpenAI(link string, o *options.Reader, deps Deps) (transcribeVendor, error) {
	ep := resolveEndpoint(o, openai.DefaultBaseURL)
	return newTranscribeMultipart(link, "openai", ep, o, deps, transcribeOpenAIModel, nil)
}

func newTranscribeGroq(link string, o *options.Reader, deps Deps) (transcribeVendor, error) {
	before := o.Problems()
	key := o.Secret("API_KEY", "api_key", "GROQ_API_KEY")
	if key == "" {
		// conserver's groq_whisper reads GROQ_API_KEY from its environment.
		key = strings.TrimSpace(os.Getenv("GROQ_API_KEY"))
	}
	if key == "" && o.Problems() == before {
		o.Errorf(`no credentials: set "API_KEY" (or "api_key") or the GROQ_API_KEY environment variable`)
	}
	ep := openai.Endpoint{Vendor: "groq", Base: baseURL(o, transcribeGroqBaseURL), Key: key}
	return newTranscribeMultipart(link, "groq_whisper", ep, o, deps, transcribeGroqModel, map[string]string{"response_format": "json"})
}

func newTranscribeMultipart(link, vendorLabel string, ep openai.Endpoint, o *options.Reader, deps Deps, defModel string, fields map[string]string) (*transcribeMultipart, error) {
	m, err := newVendorMetrics(deps.Metrics)
	if err != nil {
		return nil, err
	}
	t := &transcribeMultipart{metrics: m.forLink(link), endpoint: ep, http: deps.HTTP, vendorLabel: vendorLabel, fields: map[string]string{}}
	if t.http == nil {
		t.http = http.DefaultClient
	}
	if t.modelName = o.String("model", defModel); t.modelName == "" && o.Has("model") {
		o.Failf("model", "must not be empty")
	}
	for k, v := range fields {
		t.fields[k] = v
	}
	for _, k := range []string{"language", "prompt", "response_format", "temperature"} {
		if !o.Has(k) {
			continue
		}
		vals := transcribeQueryValues(o.Raw(k))
		if len(vals) != 1 {
			o.Fail(k, "a single value")
			continue
		}
		t.fields[k] = vals[0]
	}
	t.timeout, t.policy = vendorCallOptions(o)
	return t, nil
}

// transcribeUsage is the usage OpenAI-style vendors report: tokens
// (gpt-4o-transcribe) or seconds of audio (whisper-1), and verbose_json's
// duration.
type transcribeUsage struct {
	Usage *struct {
		InputTokens  *float64 `json:"input_tokens"`
		OutputTokens *float64 `json:"output_tokens"`
		Seconds      *float64 `json:"seconds"`
	} `json:"usage"`
	Duration *float64 `json:"duration"`
}

func (u transcribeUsage) callUsage() callUsage {
	var c callUsage
	if u.Duration != nil {
		c.seconds = max(*u.Duration, 0)
	}
	if u.Usage == nil {
		return c
	}
	if u.Usage.Seconds != nil {
		c.seconds = max(*u.Usage.Seconds, 0)
	}
	if u.Usage.InputTokens != nil || u.Usage.OutputTokens != nil {
		c.tokens = true
		if u.Usage.InputTokens != nil {
			c.inputTokens = max(*u.Usage.InputTokens, 0)
		}
		if u.Usage.OutputTokens != nil {
			c.outputTokens = max(*u.Usage.OutputTokens, 0)
		}
	}
	return c
}

func (t *transcribeMultipart) transcribe(ctx context.Context, audio *transcribeAudio) (*transcription, error) {
	var buf bytes.Buffer
	mw := multipart.NewWriter(&buf)
	h := textproto.MIMEHeader{}
	h.Set("Content-Disposition", fmt.Sprintf(`form-data; name="file"; filename=%q`, audio.filename))
	ct := audio.mediaType
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	fw, err := mw.CreatePart(h)
	if err != nil {
		return nil, err
	}
	if _, err := fw.Write(audio.data); err != nil {
		return nil, err
	}
	if err := mw.WriteField("model", t.modelName); err != nil {
		return nil, err
	}
	for _, k := range transcribeSortedKeys(t.fields) {
		if err := mw.WriteField(k, t.fields[k]); err != nil {
			return nil, err
		}
	}
	if err := mw.Close(); err != nil {
		return nil, err
	}
	payload, contentType := buf.Bytes(), mw.FormDataContentType()
	record := t.metrics.recorder(t.modelName)
	call := &httpx.Call{
		Vendor: t.endpoint.Vendor, Operation: "audio/transcriptions",
		Policy: t.policy, Timeout: t.timeout,
		Secrets: []string{t.endpoint.Key}, Record: record,
		NewRequest: func(ctx context.Context) (*http.Request, error) {
			r, err := http.NewRequestWithContext(ctx, http.MethodPost, t.endpoint.URL(t.modelName, "audio/transcriptions"), bytes.NewReader(payload))
			if err != nil {
				return nil, err
			}
			r.Header.Set("Content-Type", contentType)
			r.Header.Set("Accept", "application/json")
			t.endpoint.Authorize(r.Header)
			return r, nil
		},
	}
	body, err := call.Do(ctx, t.http)
	if err != nil {
		return nil, err
	}
	parsed, err := decodeJSON(body)
	obj, isObj := parsed.(map[string]any)
	if err != nil || !isObj {
		record("invalid_response")
		if err == nil {
			return nil, fmt.Errorf("%s: malformed answer: not a JSON object", call.Name())
		}
		return nil, fmt.Errorf("%s: malformed answer: %s", call.Name(), httpx.JSONError(err))
	}
	if _, ok := obj["text"].(string); !ok {
		record("invalid_response")
		return nil, fmt.Errorf("%s: malformed answer: no text", call.Name())
	}
	record("ok")
	var u transcribeUsage
	_ = json.Unmarshal(body, &u) // a usage of another shape is not counted
	tr := &transcription{body: obj, usage: u.callUsage()}
	if tr.usage.tokens {
		t.metrics.Tokens(t.modelName, tr.usage.inputTokens, tr.usage.outputTokens)
	}
	return tr, nil
}

// transcribeDeepgram posts audio to Deepgram's pre-recorded API.
type transcribeDeepgram struct {
	metrics   linkMetrics
	http      *http.Client
	base      string
	key       string
	query     url.Values
	modelName string
	timeout   time.Duration
	policy    httpx.Policy
}

func (t *transcribeDeepgram) vendor() string { return "deepgram" }
func (t *transcribeDeepgram) model() string  { return t.modelName }

func newTranscribeDeepgram(link string, o *options.Reader, deps Deps) (transcribeVendor, error) {
	m, err := newVendorMetrics(deps.Metrics)
	if err != nil {
		return nil, err
	}
	t := &transcribeDeepgram{metrics: m.forLink(link), http: deps.HTTP, query: url.Values{}}
	if t.http == nil {
		t.http = http.DefaultClient
	}
	before := o.Problems()
	if t.key = o.Secret("DEEPGRAM_KEY", "api_key"); t.key == "" && o.Problems() == before {
		o.Errorf(`no credentials: set "DEEPGRAM_KEY"`)
	}
	t.base = baseURL(o, transcribeDGBaseURL, "api_url", "base_url")
	api := o.Map("api")
	for _, k := range api.Keys() {
		for _, v := range transcribeQueryValues(api.Raw(k)) {
			t.query.Add(k, v)
		}
	}
	if !t.query.Has("model") {
		t.query.Set("model", transcribeDGModel)
	}
	if !t.query.Has("smart_format") {
		t.query.Set("smart_format", "true")
	}
	t.modelName = t.query.Get("model")
	t.timeout, t.policy = vendorCallOptions(o)
	return t, nil
}

type transcribeDGResponse struct {
	Metadata *struct {
		Duration *float64 `json:"duration"`
	} `json:"metadata"`
	Results *struct {
		Channels []struct {
			DetectedLanguage *string          `json:"detected_language"`
			Alternatives     []map[string]any `json:"alternatives"`
		} `json:"channels"`
	} `json:"results"`
}

func (t *transcribeDeepgram) transcribe(ctx context.Context, audio *transcribeAudio) (*transcription, error) {
	ct := audio.mediaType
	if ct == "" {
		ct = "application/octet-stream"
	}
	endpoint := t.base + "/listen?" + t.query.Encode()
	record := t.metrics.recorder(t.modelName)
	call := &httpx.Call{
		Vendor: "deepgram", Operation: "listen",
		Policy: t.policy, Timeout: t.timeout,
		Secrets: []string{t.key}, Record: record,
		NewRequest: func(ctx context.Context) (*http.Request, error) {
			r, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, bytes.NewReader(audio.data))
			if err != nil {
				return nil, err
			}
			r.Header.Set("Content-Type", ct)
			r.Header.Set("Accept", "application/json")
			r.Header.Set("Authorization", "Token "+t.key)
			return r, nil
		},
	}
	body, err := call.Do(ctx, t.http)
	if err != nil {
		return nil, err
	}
	// Decode twice: typed to find the alternative, generic (json.Number) to
	// keep every field of it as Deepgram sent it.
	var typed transcribeDGResponse
	if err := json.Unmarshal(body, &typed); err != nil {
		record("invalid_response")
		return nil, fmt.Errorf("%s: malformed answer: %s", call.Name(), httpx.JSONError(err))
	}
	if typed.Results == nil || len(typed.Results.Channels) == 0 || len(typed.Results.Channels[0].Alternatives) == 0 {
		record("invalid_response")
		return nil, fmt.Errorf("%s: malformed answer: no results.channels[0].alternatives[0]", call.Name())
	}
	generic, err := decodeJSON(body)
	if err != nil {
		record("invalid_response")
		return nil, fmt.Errorf("%s: malformed answer: %s", call.Name(), httpx.JSONError(err))
	}
	ch0 := generic.(map[string]any)["results"].(map[string]any)["channels"].([]any)[0].(map[string]any)
	alt, ok := ch0["alternatives"].([]any)[0].(map[string]any)
	if !ok {
		record("invalid_response")
		return nil, fmt.Errorf("%s: malformed answer: alternative is not an object", call.Name())
	}
	if _, ok := alt["transcript"].(string); !ok {
		record("invalid_response")
		return nil, fmt.Errorf("%s: malformed answer: no transcript", call.Name())
	}
	record("ok")
	// conserver adds the channel's detected language ("en" when absent).
	lang := "en"
	if l := typed.Results.Channels[0].DetectedLanguage; l != nil {
		lang = *l
	}
	alt["detected_language"] = lang
	tr := &transcription{body: alt}
	if c, ok := vcon.Number(alt["confidence"]); ok {
		tr.confidence = &c
	}
	// Deepgram bills the seconds of audio it heard.
	if m := typed.Metadata; m != nil && m.Duration != nil {
		tr.usage.seconds = max(*m.Duration, 0)
	}
	return tr, nil
}
