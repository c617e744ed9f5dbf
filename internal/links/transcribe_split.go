package links

// Long recordings: a recording over the vendor's upload limit (or longer
// than max_chunk_duration) is cut into parts by internal/audio, the parts
// are transcribed concurrently, and their answers are joined into one
// answer of the vendor's own shape with every time shifted by its part's
// start. WAV is cut natively; other formats are first turned into WAV by
// ffmpeg, when it is installed.

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/vcon-operator/vcon-operator/internal/audio"
	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// The upload limits the vendors document: OpenAI's (and Groq's, which is
// OpenAI's API) 25 MB per file, Deepgram's 2 GB.
const (
	transcribeWhisperMaxUpload  = 25_000_000
	transcribeDeepgramMaxUpload = 2_000_000_000
)

// transcribeSplitDefaults are the vendors' defaults for the split options.
// max_chunk_duration for openai is conserver's (480 s: gpt-4o-transcribe
// refuses long inputs well under the 25 MB bound).
var transcribeSplitDefaults = map[string]struct {
	maxBytes    float64
	maxDuration float64
}{
	"openai":   {transcribeWhisperMaxUpload, 480},
	"groq":     {transcribeWhisperMaxUpload, 0},
	"deepgram": {transcribeDeepgramMaxUpload, 0},
}

// transcribeSplit is how one link cuts long recordings.
type transcribeSplit struct {
	bounds      audio.Bounds
	concurrency int
	ffmpeg      string
}

func readTranscribeSplit(vendor string, o *options.Reader) transcribeSplit {
	def := transcribeSplitDefaults[vendor]
	s := transcribeSplit{}
	maxBytes := o.Float("max_upload_bytes", def.maxBytes)
	if maxBytes < 1024 {
		o.Fail("max_upload_bytes", "a number of bytes of at least 1024")
	}
	s.bounds.MaxBytes = int64(maxBytes)
	maxDur := o.Float("max_chunk_duration", def.maxDuration)
	if maxDur < 0 {
		o.Fail("max_chunk_duration", "a number of seconds, or 0 for no bound")
	}
	s.bounds.MaxDuration = time.Duration(maxDur * float64(time.Second))
	if o.Bool("use_silence_chunking", true) {
		s.bounds.Silence = &audio.Silence{
			Threshold: o.Float("silence_thresh", -40),
			MinLength: time.Duration(o.Float("silence_len", 2000) * float64(time.Millisecond)),
		}
		if s.bounds.Silence.MinLength <= 0 {
			o.Fail("silence_len", "a positive number of milliseconds")
		}
	}
	s.concurrency = o.IntRange("max_concurrent_parts", 4, 1, 64)
	s.ffmpeg = o.String("ffmpeg_path", "ffmpeg")
	if s.ffmpeg == "" {
		o.Failf("ffmpeg_path", "must not be empty")
	}
	return s
}

// over says why a recording of n bytes and seconds (0 when unknown) must
// be split, or "" when it fits.
func (s transcribeSplit) over(n int, seconds float64) string {
	if int64(n) > s.bounds.MaxBytes {
		return fmt.Sprintf("%d bytes is over max_upload_bytes %d", n, s.bounds.MaxBytes)
	}
	if s.bounds.MaxDuration > 0 && seconds > s.bounds.MaxDuration.Seconds() {
		return fmt.Sprintf("%.0f s is over max_chunk_duration %.0f s", seconds, s.bounds.MaxDuration.Seconds())
	}
	return ""
}

// transcribePart is where one part sits in the recording.
type transcribePart struct {
	offset, seconds float64
}

// transcribeRecording transcribes one recording, in parts when it is too
// large for one upload. seconds is the audio's length: measured for WAV,
// the dialog's duration otherwise (0 when it has none).
func (l *transcribeLink) transcribeRecording(ctx context.Context, dialog map[string]any, a *transcribeAudio) (tr *transcription, seconds float64, err error) {
	seconds, _ = vcon.Number(dialog["duration"])
	var wav *audio.WAV
	if audio.IsWAV(a.data) {
		w, perr := audio.ParseWAV(a.data)
		if perr == nil {
			wav, seconds = w, w.Seconds()
		} else if why := l.split.over(len(a.data), 0); why != "" {
			return nil, 0, fmt.Errorf("recording (%s) must be split but cannot be read: %w", why, perr)
		}
	}
	why := l.split.over(len(a.data), seconds)
	if why == "" {
		tr, err := l.call(ctx, a)
		return tr, seconds, err
	}
	if wav == nil {
		wav, err = l.toWAV(ctx, a, why)
		if err != nil {
			return nil, 0, err
		}
		seconds = wav.Seconds()
	}
	spans, err := wav.Plan(l.split.bounds)
	if err != nil {
		return nil, 0, fmt.Errorf("split recording: %w", err)
	}
	parts := make([]transcribePart, len(spans))
	for i, s := range spans {
		parts[i] = transcribePart{offset: wav.FrameSeconds(s.Start), seconds: wav.FrameSeconds(s.End - s.Start)}
	}
	results := make([]*transcription, len(spans))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(l.split.concurrency)
	stem := strings.TrimSuffix(a.filename, path.Ext(a.filename))
	for i, s := range spans {
		g.Go(func() error {
			part := &transcribeAudio{
				data:      wav.Encode(s.Start, s.End),
				filename:  fmt.Sprintf("%s-part%03d.wav", stem, i+1),
				mediaType: "audio/wav",
			}
			r, err := l.call(gctx, part)
			if err != nil {
				return fmt.Errorf("part %d of %d (from %.1f s): %w", i+1, len(spans), parts[i].offset, err)
			}
			results[i] = r
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, 0, err
	}
	l.logger.Debug("transcribed recording in parts", "link", l.name, "parts", len(spans), "seconds", seconds)
	return joinTranscriptions(results, parts), seconds, nil
}

// toWAV turns a recording that is not WAV into one, for splitting.
func (l *transcribeLink) toWAV(ctx context.Context, a *transcribeAudio, why string) (*audio.WAV, error) {
	kind := a.mediaType
	if kind == "" {
		kind = path.Ext(a.filename)
	}
	data, err := audio.ToWAV(ctx, l.split.ffmpeg, a.data, path.Ext(a.filename))
	if errors.Is(err, audio.ErrNoFFmpeg) {
		return nil, fmt.Errorf("recording (%s, %s) must be split, and splitting a recording that is not WAV needs ffmpeg: %v; install ffmpeg where the worker runs (the worker image has none: see docs/steps.md), set ffmpeg_path, or send WAV", kind, why, err)
	}
	if err != nil {
		return nil, fmt.Errorf("recording (%s, %s) must be split: %w", kind, why, err)
	}
	w, err := audio.ParseWAV(data)
	if err != nil {
		return nil, fmt.Errorf("ffmpeg's WAV: %w", err)
	}
	return w, nil
}

// call sends one upload to the vendor and returns its answer. Every upload
// goes through here, a whole recording or one part of a long one, so that
// what bounds a Link's calls (its limits) is applied in this one place.
func (l *transcribeLink) call(ctx context.Context, a *transcribeAudio) (*transcription, error) {
	return l.vendor.transcribe(ctx, a)
}

// joinTranscriptions merges the answers for consecutive parts into one
// answer of the same shape, as if the vendor had heard the whole
// recording: texts joined in order, every start and end shifted by its
// part's offset, segments renumbered, usage summed, confidence weighted
// by each part's length.
func joinTranscriptions(results []*transcription, parts []transcribePart) *transcription {
	if len(results) == 1 {
		return results[0]
	}
	bodies := make([]map[string]any, len(results))
	out := &transcription{}
	for i, r := range results {
		bodies[i] = r.body
		out.usage.add(r.usage)
	}
	out.body = joinBodies(bodies, parts)
	if c, ok := vcon.Number(out.body["confidence"]); ok {
		out.confidence = &c
	}
	return out
}

func joinBodies(bodies []map[string]any, parts []transcribePart) map[string]any {
	out := map[string]any{}
	var keys []string
	seen := map[string]bool{}
	for _, b := range bodies {
		for _, k := range transcribeSortedKeys(b) {
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	total := 0.0
	for _, p := range parts {
		total += p.seconds
	}
	for _, k := range keys {
		switch k {
		case "text", "transcript":
			out[k] = joinText(bodies, k, " ", true)
		case "confidence":
			if c, ok := weightedMean(bodies, k, parts); ok {
				out[k] = c
			}
		case "duration":
			out[k] = roundTime(total)
		case "usage":
			var u any
			for _, b := range bodies {
				u = sumNumbers(u, b[k])
			}
			out[k] = u
		case "paragraphs":
			// Deepgram's paragraphs: a transcript whose paragraphs each
			// start on a new line, and the paragraphs themselves.
			inner := make([]map[string]any, 0, len(bodies))
			for _, b := range bodies {
				m, _ := b[k].(map[string]any)
				inner = append(inner, m)
			}
			p := map[string]any{}
			for ik, iv := range firstMap(inner) {
				p[ik] = iv
			}
			p["transcript"] = joinText(inner, "transcript", "", false)
			p["paragraphs"] = concatShifted(inner, "paragraphs", parts)
			out[k] = p
		default:
			if _, isList := firstValue(bodies, k).([]any); isList {
				out[k] = concatShifted(bodies, k, parts)
				continue
			}
			out[k] = firstValue(bodies, k)
		}
	}
	if segs, ok := out["segments"].([]any); ok {
		for i, s := range segs {
			if m, ok := s.(map[string]any); ok {
				if _, has := m["id"]; has {
					m["id"] = i
				}
			}
		}
	}
	return out
}

func firstValue(bodies []map[string]any, k string) any {
	for _, b := range bodies {
		if v, ok := b[k]; ok {
			return v
		}
	}
	return nil
}

func firstMap(ms []map[string]any) map[string]any {
	for _, m := range ms {
		if m != nil {
			return m
		}
	}
	return nil
}

func joinText(bodies []map[string]any, k, sep string, trim bool) string {
	var texts []string
	for _, b := range bodies {
		s, _ := b[k].(string)
		if trim {
			s = strings.TrimSpace(s)
		}
		if s != "" {
			texts = append(texts, s)
		}
	}
	return strings.Join(texts, sep)
}

func weightedMean(bodies []map[string]any, k string, parts []transcribePart) (float64, bool) {
	var sum, weight float64
	for i, b := range bodies {
		if c, ok := vcon.Number(b[k]); ok {
			sum += c * parts[i].seconds
			weight += parts[i].seconds
		}
	}
	if weight == 0 {
		return 0, false
	}
	return sum / weight, true
}

// concatShifted concatenates the list at k of every part, shifting the
// times in each entry by its part's offset.
func concatShifted(bodies []map[string]any, k string, parts []transcribePart) []any {
	out := []any{}
	for i, b := range bodies {
		list, _ := b[k].([]any)
		for _, e := range list {
			out = append(out, shiftTimes(e, parts[i].offset))
		}
	}
	return out
}

// shiftTimes adds offset seconds to every start and end in v, at any
// depth (Deepgram's sentences sit inside paragraphs), and to Whisper's
// seek, which counts 10 ms frames.
func shiftTimes(v any, offset float64) any {
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			switch k {
			case "start", "end":
				if n, ok := vcon.Number(e); ok {
					t[k] = roundTime(n + offset)
				}
			case "seek":
				if n, ok := vcon.Number(e); ok {
					t[k] = int64(math.Round(n + offset*100))
				}
			default:
				t[k] = shiftTimes(e, offset)
			}
		}
	case []any:
		for i, e := range t {
			t[i] = shiftTimes(e, offset)
		}
	}
	return v
}

// roundTime keeps times to the microsecond, so that sums of binary
// fractions read as the vendor's decimals.
func roundTime(s float64) float64 { return math.Round(s*1e6) / 1e6 }

// sumNumbers adds b into a: numbers are summed at every depth of two
// usage objects; anything else keeps a's value (or b's when a has none).
func sumNumbers(a, b any) any {
	if a == nil {
		return cloneJSON(b)
	}
	am, aok := a.(map[string]any)
	bm, bok := b.(map[string]any)
	if aok && bok {
		for k, bv := range bm {
			am[k] = sumNumbers(am[k], bv)
		}
		return am
	}
	an, aIsNum := vcon.Number(a)
	bn, bIsNum := vcon.Number(b)
	if aIsNum && bIsNum {
		return an + bn
	}
	return a
}

func cloneJSON(v any) any {
	switch t := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			out[k] = cloneJSON(e)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = cloneJSON(e)
		}
		return out
	}
	return v
}
