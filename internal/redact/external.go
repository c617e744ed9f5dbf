package redact

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// Detector is an external PII engine (Presidio, a vendor API, a model
// behind an adapter). It is given texts and returns, for each, the spans it
// finds, in byte offsets of that text. A Redactor asks it once per
// document, with all the document's texts, so a slow engine costs one
// round trip per vCon, not one per word.
type Detector interface {
	Detect(ctx context.Context, texts []string) ([][]Span, error)
}

// HTTPDetector is a Detector behind an HTTP endpoint. The wire format
// (docs/compliance.md has it with examples):
//
//	POST <URL>
//	Content-Type: application/json
//	{"texts": ["...", "..."], "offset_unit": "utf8"}
//
//	200 OK
//	{"results": [{"spans": [{"type": "person", "start": 0, "end": 5}]}, ...]}
//
// results has one entry per text, in order. Offsets are UTF-8 byte offsets,
// end exclusive, unless the answer says "offset_unit": "codepoint" (what a
// Python engine has without converting). A type is lower-cased; one that
// is not a plain name (letters, digits, _ and -) becomes "pii".
//
// Any other status, or an answer that does not fit the texts, is an error:
// a redactor that cannot ask its engine must not pass the text on as if
// the engine had found nothing. Errors never quote the answer, which may
// echo the text.
type HTTPDetector struct {
	URL string
	// Client sends the requests; nil means http.DefaultClient. A link passes
	// its SSRF-guarded client and sets the timeout there or in ctx.
	Client *http.Client
	// Header is added to every request (authorization).
	Header http.Header
	// MaxBatchBytes splits a document's texts over several requests;
	// 0 means 1 MiB. A text larger than that is sent alone.
	MaxBatchBytes int
}

type wireRequest struct {
	Texts      []string `json:"texts"`
	OffsetUnit string   `json:"offset_unit"`
}

type wireSpan struct {
	Type  string `json:"type"`
	Start int    `json:"start"`
	End   int    `json:"end"`
}

type wireResponse struct {
	Results []struct {
		Spans []wireSpan `json:"spans"`
	} `json:"results"`
	OffsetUnit string `json:"offset_unit"`
}

// Detect implements Detector.
func (h *HTTPDetector) Detect(ctx context.Context, texts []string) ([][]Span, error) {
	limit := h.MaxBatchBytes
	if limit <= 0 {
		limit = 1 << 20
	}
	out := make([][]Span, 0, len(texts))
	for lo := 0; lo < len(texts); {
		hi, size := lo+1, len(texts[lo])
		for hi < len(texts) && size+len(texts[hi]) <= limit {
			size += len(texts[hi])
			hi++
		}
		spans, err := h.batch(ctx, texts[lo:hi], size)
		if err != nil {
			return nil, err
		}
		out = append(out, spans...)
		lo = hi
	}
	return out, nil
}

func (h *HTTPDetector) batch(ctx context.Context, texts []string, size int) ([][]Span, error) {
	body, err := json.Marshal(wireRequest{Texts: texts, OffsetUnit: "utf8"})
	if err != nil {
		return nil, fmt.Errorf("redact: external detector: encode request: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("redact: external detector: %w", err)
	}
	for k, vs := range h.Header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	client := h.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		// url.Error quotes the URL, which may carry a token in its query.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("redact: external detector at %s: %w", req.URL.Host, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
		return nil, fmt.Errorf("redact: external detector at %s answered %s", req.URL.Host, resp.Status)
	}
	// An answer lists spans, not text: several times the input is plenty.
	maxAnswer := int64(1<<20 + 8*size)
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil {
		return nil, fmt.Errorf("redact: external detector at %s: read answer: %w", req.URL.Host, err)
	}
	if int64(len(data)) > maxAnswer {
		return nil, fmt.Errorf("redact: external detector at %s: answer larger than %d bytes", req.URL.Host, maxAnswer)
	}
	var wr wireResponse
	if err := json.Unmarshal(data, &wr); err != nil {
		return nil, fmt.Errorf("redact: external detector at %s: answer is not the expected JSON", req.URL.Host)
	}
	if len(wr.Results) != len(texts) {
		return nil, fmt.Errorf("redact: external detector at %s: %d results for %d texts", req.URL.Host, len(wr.Results), len(texts))
	}
	codepoints := false
	switch wr.OffsetUnit {
	case "", "utf8":
	case "codepoint":
		codepoints = true
	default:
		return nil, fmt.Errorf("redact: external detector at %s: unknown offset_unit %q; use utf8 or codepoint", req.URL.Host, wr.OffsetUnit)
	}
	out := make([][]Span, len(texts))
	for i, res := range wr.Results {
		for _, ws := range res.Spans {
			sp, err := externalSpan(texts[i], ws, codepoints)
			if err != nil {
				return nil, fmt.Errorf("redact: external detector at %s: text %d: %w", req.URL.Host, i, err)
			}
			out[i] = append(out[i], sp)
		}
	}
	return out, nil
}

// externalSpan checks one span against its text and converts it to byte
// offsets on rune boundaries (widened, never narrowed).
func externalSpan(text string, ws wireSpan, codepoints bool) (Span, error) {
	start, end := ws.Start, ws.End
	if codepoints {
		var ok bool
		if start, ok = byteOffset(text, start); !ok {
			return Span{}, fmt.Errorf("span start %d is outside the text", ws.Start)
		}
		if end, ok = byteOffset(text, end); !ok {
			return Span{}, fmt.Errorf("span end %d is outside the text", ws.End)
		}
	}
	if start < 0 || end > len(text) || start >= end {
		return Span{}, fmt.Errorf("span [%d,%d) does not fit a text of %d bytes", ws.Start, ws.End, len(text))
	}
	for start > 0 && !utf8.RuneStart(text[start]) {
		start--
	}
	for end < len(text) && !utf8.RuneStart(text[end]) {
		end++
	}
	t := strings.ToLower(ws.Type)
	if !patternName.MatchString(t) {
		t = "pii"
	}
	return Span{Type: Type(t), Start: start, End: end}, nil
}

// byteOffset converts a code point offset to a byte offset.
func byteOffset(text string, cp int) (int, bool) {
	if cp < 0 {
		return 0, false
	}
	n := 0
	for i := range text {
		if n == cp {
			return i, true
		}
		n++
	}
	return len(text), n == cp
}
