package links

// Getting a recording's bytes: from the dialog's inline body (base64 or
// base64url) or by downloading its url. A url comes from whoever posted the
// vCon, so a download is bounded in size and time, only http(s), and by
// default never reaches loopback, private, link-local or other internal
// addresses, checked on every connection (redirects and DNS answers
// included), not just on the first hostname.

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
)

const (
	transcribeDefaultMaxDownload     = 100 << 20
	transcribeDefaultDownloadTimeout = 5 * time.Minute
)

// transcribeAudio is a recording ready to send.
type transcribeAudio struct {
	data      []byte
	filename  string
	mediaType string
}

// transcribeFetcher gets audio for one link.
type transcribeFetcher struct {
	client   *http.Client
	maxBytes int64
	timeout  time.Duration
}

// newTranscribeFetcher builds the download client. With allowPrivate the
// shared client is used (tests, in-cluster media servers), still following
// only http(s) redirects; otherwise a client that checks every address it
// connects to.
func newTranscribeFetcher(shared *http.Client, allowPrivate bool, maxBytes int64, timeout time.Duration) *transcribeFetcher {
	f := &transcribeFetcher{maxBytes: maxBytes, timeout: timeout}
	if allowPrivate {
		f.client = httpx.WithRedirectCheck(shared)
	} else {
		f.client = httpx.GuardedClient(nil)
	}
	return f
}

// audio returns the dialog's recording, or nil when it has neither an
// inline body nor a url.
func (f *transcribeFetcher) audio(ctx context.Context, dialog map[string]any) (*transcribeAudio, error) {
	mediaType, _ := dialog["mediatype"].(string)
	if mediaType == "" {
		mediaType, _ = dialog["mimetype"].(string)
	}
	filename, _ := dialog["filename"].(string)
	if body, ok := dialog["body"].(string); ok && body != "" {
		data, err := transcribeDecodeBody(body, dialog["encoding"])
		if err != nil {
			return nil, err
		}
		return &transcribeAudio{data: data, filename: transcribeFilename(filename, mediaType), mediaType: mediaType}, nil
	}
	raw, _ := dialog["url"].(string)
	if raw == "" {
		return nil, nil
	}
	data, headerType, name, err := f.download(ctx, raw)
	if err != nil {
		return nil, err
	}
	if mediaType == "" {
		mediaType = headerType
	}
	if filename == "" {
		filename = name
	}
	return &transcribeAudio{data: data, filename: transcribeFilename(filename, mediaType), mediaType: mediaType}, nil
}

func transcribeDecodeBody(body string, encoding any) ([]byte, error) {
	enc, _ := encoding.(string)
	// Padding is optional in the wild and line breaks come from MIME tools;
	// the raw (unpadded) decoders accept both once they are stripped.
	clean := strings.TrimRight(strings.NewReplacer("\r", "", "\n", "", " ", "").Replace(body), "=")
	var order []*base64.Encoding
	switch strings.ToLower(enc) {
	case "base64url":
		order = []*base64.Encoding{base64.RawURLEncoding}
	case "base64":
		order = []*base64.Encoding{base64.RawStdEncoding}
	case "":
		order = []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding}
	default:
		return nil, fmt.Errorf("recording body has encoding %q; want base64 or base64url", enc)
	}
	for _, e := range order {
		if data, err := e.DecodeString(clean); err == nil && len(data) > 0 {
			return data, nil
		}
	}
	return nil, errors.New("recording body is not valid base64/base64url")
}

// download GETs raw within the size and time limits. Errors never quote the
// url: pre-signed urls carry credentials.
func (f *transcribeFetcher) download(ctx context.Context, raw string) ([]byte, string, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, "", "", errors.New("recording url does not parse")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, "", "", fmt.Errorf("recording url has scheme %q; only http and https are fetched", u.Scheme)
	}
	ctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, "", "", errors.New("recording url is not usable")
	}
	resp, err := f.client.Do(req)
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return nil, "", "", fmt.Errorf("download recording from %s: no complete answer within %s", u.Host, f.timeout)
		}
		return nil, "", "", fmt.Errorf("download recording from %s: %w", u.Host, httpx.StripURL(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, "", "", fmt.Errorf("download recording from %s: HTTP %d", u.Host, resp.StatusCode)
	}
	if resp.ContentLength > f.maxBytes {
		return nil, "", "", fmt.Errorf("download recording from %s: %d bytes is over max_download_bytes %d", u.Host, resp.ContentLength, f.maxBytes)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBytes+1))
	if err != nil {
		return nil, "", "", fmt.Errorf("download recording from %s: %w", u.Host, httpx.StripURL(err))
	}
	if int64(len(data)) > f.maxBytes {
		return nil, "", "", fmt.Errorf("download recording from %s: over max_download_bytes %d", u.Host, f.maxBytes)
	}
	if len(data) == 0 {
		return nil, "", "", fmt.Errorf("download recording from %s: empty answer", u.Host)
	}
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	name := ""
	if _, params, err := mime.ParseMediaType(resp.Header.Get("Content-Disposition")); err == nil {
		name = path.Base(params["filename"])
	}
	if name == "" || name == "." || name == "/" {
		name = path.Base(resp.Request.URL.Path)
	}
	return data, mediaType, name, nil
}

// transcribeFilename gives the vendor a file name with an extension it can
// use to guess the format (OpenAI and Groq reject names without one).
func transcribeFilename(name, mediaType string) string {
	name = path.Base(strings.TrimSpace(name))
	if name == "." || name == "/" {
		name = ""
	}
	if path.Ext(name) != "" {
		return name
	}
	if name == "" {
		name = "audio"
	}
	ext := ".mp3"
	switch strings.ToLower(mediaType) {
	case "audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave":
		ext = ".wav"
	case "audio/flac", "audio/x-flac":
		ext = ".flac"
	case "audio/ogg", "audio/opus":
		ext = ".ogg"
	case "audio/webm", "video/webm":
		ext = ".webm"
	case "audio/mp4", "audio/m4a", "audio/x-m4a":
		ext = ".m4a"
	case "video/mp4":
		ext = ".mp4"
	}
	return name + ext
}
