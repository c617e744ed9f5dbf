package links

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
)

// transcribeTestDoc: dialog 0 inline audio (base64), 1 a text dialog, 2 a
// recording by url, 3 too short, 4 already transcribed.
func transcribeTestDoc(mediaURL string) string {
	return `{
  "uuid": "018f0000-0000-8000-8000-0000000000aa", "created_at": "2025-01-01T00:00:00Z",
  "dialog": [
    {"type": "recording", "body": "QVVESU9CWVRFUw==", "encoding": "base64", "mediatype": "audio/wav", "duration": 90},
    {"type": "text", "body": "hi", "encoding": "none"},
    {"type": "recording", "url": "` + mediaURL + `", "duration": 120},
    {"type": "recording", "body": "QVVESU9CWVRFUw", "encoding": "base64url", "duration": 1},
    {"type": "recording", "body": "QVVESU9CWVRFUw", "encoding": "base64url", "duration": 300}
  ],
  "analysis": [{"type": "transcript", "dialog": 4, "vendor": "x", "encoding": "none", "body": "done"}]
}`
}

// transcribeMedia serves one recording, and counts downloads.
func transcribeMedia(t *testing.T) (*httptest.Server, *int) {
	t.Helper()
	var hits int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits++
		switch r.URL.Path {
		case "/calls/c2.mp3":
			w.Header().Set("Content-Type", "audio/mpeg")
			_, _ = io.WriteString(w, "MP3BYTES")
		case "/redirect":
			http.Redirect(w, r, r.URL.Query().Get("to"), http.StatusFound)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &hits
}

// transcribeUpload is a multipart upload as the fake vendor saw it.
type transcribeUpload struct {
	fields   map[string]string
	filename string
	fileType string
	file     string
}

func transcribeParseUpload(t *testing.T, r fakeRequest) transcribeUpload {
	t.Helper()
	mt, params, err := mime.ParseMediaType(r.header.Get("Content-Type"))
	if err != nil || mt != "multipart/form-data" {
		t.Fatalf("Content-Type = %q", r.header.Get("Content-Type"))
	}
	up := transcribeUpload{fields: map[string]string{}}
	mr := multipart.NewReader(bytes.NewReader(r.body), params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(p)
		if p.FormName() == "file" {
			up.filename, up.fileType, up.file = p.FileName(), p.Header.Get("Content-Type"), string(data)
			continue
		}
		up.fields[p.FormName()] = string(data)
	}
	return up
}

func TestTranscribeVendors(t *testing.T) {
	const (
		openaiKey = "sk-transcribe-key-000001"
		groqKey   = "gsk_groq_key_000000001"
		dgKey     = "dg-key-00000000000001"
	)
	openaiAnswer := `{"text":"hello there","usage":{"type":"tokens","input_tokens":14,"output_tokens":3,"total_tokens":17}}`
	openaiStored := `{"text":"hello there","usage":{"input_tokens":14,"output_tokens":3,"total_tokens":17,"type":"tokens"}}`
	dgAnswer := func(transcript string, confidence float64) fakeReply {
		return fakeReply{status: 200, body: fmt.Sprintf(`{"metadata":{"request_id":"r","duration":91.5,"channels":1},
 "results":{"channels":[{"alternatives":[{"transcript":%q,"confidence":%v,"words":[{"word":"hello","start":0.1,"end":0.4,"confidence":0.99}]}]}]}}`, transcript, confidence)}
	}
	tests := []struct {
		name       string
		module     string
		opts       func(vendorURL string) map[string]any
		replies    []fakeReply
		wantVendor string
		wantDialog []int // dialogs transcribed, in order
		secret     string
		checkReq   func(t *testing.T, i int, r fakeRequest)
		wantBody   []string
		check      func(t *testing.T, link string)
	}{
		{
			name:   "openai via links.transcribe",
			module: "links.transcribe",
			opts: func(u string) map[string]any {
				return map[string]any{"vendor": "openai", "vendor_options": map[string]any{
					"OPENAI_API_KEY": openaiKey, "base_url": u + "/v1", "allow_private_networks": true}}
			},
			replies:    []fakeReply{{status: 200, body: openaiAnswer}},
			wantVendor: "openai", wantDialog: []int{0, 2}, secret: openaiKey,
			checkReq: func(t *testing.T, i int, r fakeRequest) {
				if r.path != "/v1/audio/transcriptions" || r.header.Get("Authorization") != "Bearer "+openaiKey {
					t.Errorf("request %d: %s auth %q", i, r.path, r.header.Get("Authorization"))
				}
				up := transcribeParseUpload(t, r)
				want := []transcribeUpload{
					{fields: map[string]string{"model": "gpt-4o-transcribe"}, filename: "audio.wav", fileType: "audio/wav", file: "AUDIOBYTES"},
					{fields: map[string]string{"model": "gpt-4o-transcribe"}, filename: "c2.mp3", fileType: "audio/mpeg", file: "MP3BYTES"},
				}[i]
				if fmt.Sprint(up) != fmt.Sprint(want) {
					t.Errorf("upload %d = %+v, want %+v", i, up, want)
				}
			},
			wantBody: []string{openaiStored, openaiStored},
			check: func(t *testing.T, link string) {
				if got := testutil.ToFloat64(testVendorMetrics(t).tokens.WithLabelValues(link, "gpt-4o-transcribe", "prompt")); got != 28 {
					t.Errorf("prompt tokens = %v, want 28", got)
				}
				if got := testutil.ToFloat64(testVendorMetrics(t).requests.WithLabelValues(link, "gpt-4o-transcribe", "ok")); got != 2 {
					t.Errorf("ok requests = %v, want 2", got)
				}
			},
		},
		{
			name:   "groq via the legacy links.groq_whisper with flat options",
			module: "links.groq_whisper",
			opts: func(u string) map[string]any {
				return map[string]any{"API_KEY": groqKey, "base_url": u + "/openai/v1", "allow_private_networks": true, "language": "en"}
			},
			replies:    []fakeReply{{status: 200, body: `{"text":" Hello.","x_groq":{"id":"req_1"}}`}},
			wantVendor: "groq_whisper", wantDialog: []int{0, 2}, secret: groqKey,
			checkReq: func(t *testing.T, i int, r fakeRequest) {
				if r.path != "/openai/v1/audio/transcriptions" || r.header.Get("Authorization") != "Bearer "+groqKey {
					t.Errorf("request %d: %s auth %q", i, r.path, r.header.Get("Authorization"))
				}
				up := transcribeParseUpload(t, r)
				if up.fields["model"] != "whisper-large-v3-turbo" || up.fields["response_format"] != "json" || up.fields["language"] != "en" || up.file == "" {
					t.Errorf("upload %d = %+v", i, up)
				}
			},
			wantBody: []string{`{"text":" Hello.","x_groq":{"id":"req_1"}}`, `{"text":" Hello.","x_groq":{"id":"req_1"}}`},
		},
		{
			name:   "deepgram via the legacy links.deepgram_link drops low confidence",
			module: "links.deepgram_link",
			opts: func(u string) map[string]any {
				return map[string]any{"DEEPGRAM_KEY": dgKey, "api_url": u + "/v1", "allow_private_networks": true,
					"api": map[string]any{"model": "nova-2", "language": "en", "punctuate": true}}
			},
			replies:    []fakeReply{dgAnswer("hello there", 0.93), dgAnswer("mumble", 0.2)},
			wantVendor: "deepgram", wantDialog: []int{0}, secret: dgKey,
			checkReq: func(t *testing.T, i int, r fakeRequest) {
				if r.path != "/v1/listen" || r.rawQuery != "language=en&model=nova-2&punctuate=true&smart_format=true" {
					t.Errorf("request %d: %s?%s", i, r.path, r.rawQuery)
				}
				if r.header.Get("Authorization") != "Token "+dgKey {
					t.Errorf("Authorization = %q", r.header.Get("Authorization"))
				}
				wantType, wantBody := []string{"audio/wav", "audio/mpeg"}[i], []string{"AUDIOBYTES", "MP3BYTES"}[i]
				if r.header.Get("Content-Type") != wantType || string(r.body) != wantBody {
					t.Errorf("request %d: %s %q", i, r.header.Get("Content-Type"), r.body)
				}
			},
			wantBody: []string{`{"confidence":0.93,"detected_language":"en","transcript":"hello there","words":[{"confidence":0.99,"end":0.4,"start":0.1,"word":"hello"}]}`},
		},
		{
			name:   "deepgram defaults model and smart_format",
			module: "links.transcribe",
			opts: func(u string) map[string]any {
				return map[string]any{"vendor": "deepgram", "transcribe_options": map[string]any{
					"DEEPGRAM_KEY": dgKey, "api_url": u + "/v1", "allow_private_networks": true, "minimum_duration": 100, "minimum_confidence": 0}}
			},
			replies:    []fakeReply{dgAnswer("x", 0.1)},
			wantVendor: "deepgram", wantDialog: []int{2}, secret: dgKey,
			checkReq: func(t *testing.T, _ int, r fakeRequest) {
				if r.rawQuery != "model=nova-3&smart_format=true" {
					t.Errorf("query = %s", r.rawQuery)
				}
			},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			instantVendorRetries(t)
			media, _ := transcribeMedia(t)
			fake := newVendorFake(t, tt.replies...)
			link := fmt.Sprintf("transcribe-%d", i)
			l := newTestLink(t, link, tt.module, tt.opts(fake.srv.URL))
			v := mustParseVCon(t, transcribeTestDoc(media.URL+"/calls/c2.mp3"))
			if _, err := l.Run(context.Background(), v); err != nil {
				t.Fatalf("Run: %v", err)
			}
			reqs := fake.requests()
			for i, r := range reqs {
				if r.method != http.MethodPost {
					t.Errorf("method %s", r.method)
				}
				tt.checkReq(t, i, r)
			}
			var got []int
			var transcripts []map[string]any
			for _, a := range analysesOfType(v, "transcript") {
				if a["vendor"] == "x" {
					continue
				}
				transcripts = append(transcripts, a)
				n, _ := a["dialog"].(json.Number).Int64()
				got = append(got, int(n))
				if a["vendor"] != tt.wantVendor || a["encoding"] != "json" {
					t.Errorf("transcript = %v", a)
				}
				raw, _ := json.Marshal(a)
				assertNoSecret(t, string(raw), tt.secret, fake.srv.URL)
				if _, ok := a["vendor_schema"].(map[string]any)["opts"].(map[string]any); !ok {
					t.Errorf("vendor_schema = %v", a["vendor_schema"])
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.wantDialog) {
				t.Errorf("transcribed dialogs %v, want %v", got, tt.wantDialog)
			}
			for i, want := range tt.wantBody {
				if i < len(transcripts) && transcripts[i]["body"] != want {
					t.Errorf("body %d = %v\nwant %s", i, transcripts[i]["body"], want)
				}
			}
			if tt.check != nil {
				tt.check(t, link)
			}
			// A second run finds everything transcribed (or refused).
			before := len(fake.requests())
			if _, err := l.Run(context.Background(), v); err != nil {
				t.Fatal(err)
			}
			if extra := len(fake.requests()) - before; extra != len(reqs)-len(tt.wantDialog) {
				t.Errorf("second run sent %d requests", extra)
			}
		})
	}
}

func TestTranscribeFailures(t *testing.T) {
	const key = "dg-secret-key-000000009"
	tests := []struct {
		name         string
		opts         map[string]any
		dialog       string // the one recording dialog; %s is the media server URL
		replies      []fakeReply
		wantErr      string
		wantRequests int
	}{
		{
			name:         "401 fails at once",
			dialog:       `{"type":"recording","body":"QVVESU9CWVRFUw","encoding":"base64url"}`,
			replies:      []fakeReply{{status: 401, body: `{"err_code":"INVALID_AUTH","err_msg":"Invalid credentials: ` + key + `"}`}},
			wantErr:      "transcribe dialog 0: deepgram listen: HTTP 401: INVALID_AUTH: Invalid credentials",
			wantRequests: 1,
		},
		{
			name:         "500 then success",
			dialog:       `{"type":"recording","body":"QVVESU9CWVRFUw","encoding":"base64url"}`,
			replies:      []fakeReply{{status: 502}, {status: 200, body: `{"results":{"channels":[{"alternatives":[{"transcript":"ok","confidence":0.9}]}]}}`}},
			wantRequests: 2,
		},
		{
			name:         "500 until retries run out",
			opts:         map[string]any{"max_retries": 1},
			dialog:       `{"type":"recording","body":"QVVESU9CWVRFUw","encoding":"base64url"}`,
			replies:      []fakeReply{{status: 503, body: `{"err_code":"BUSY","err_msg":"try later"}`}},
			wantErr:      "deepgram listen: HTTP 503 after 2 attempts: BUSY",
			wantRequests: 2,
		},
		{
			name:         "malformed answer",
			dialog:       `{"type":"recording","body":"QVVESU9CWVRFUw","encoding":"base64url"}`,
			replies:      []fakeReply{{status: 200, body: `{"results":{"channels":[]}}`}},
			wantErr:      "malformed answer",
			wantRequests: 1,
		},
		{
			name:         "not JSON at all",
			dialog:       `{"type":"recording","body":"QVVESU9CWVRFUw","encoding":"base64url"}`,
			replies:      []fakeReply{{status: 200, body: `<html>`}},
			wantErr:      "malformed answer",
			wantRequests: 1,
		},
		{
			name:         "timeout",
			opts:         map[string]any{"timeout": 0.05, "max_retries": 0},
			dialog:       `{"type":"recording","body":"QVVESU9CWVRFUw","encoding":"base64url"}`,
			replies:      []fakeReply{{hang: true}},
			wantErr:      "deepgram listen: no answer within 50ms",
			wantRequests: 1,
		},
		{
			name:    "private address refused by default",
			opts:    map[string]any{"allow_private_networks": false},
			dialog:  `{"type":"recording","url":"%s/calls/c2.mp3?sig=PRESIGNED"}`,
			wantErr: "refusing to download from internal address 127.0.0.1",
		},
		{
			name:    "localhost refused by default",
			opts:    map[string]any{"allow_private_networks": false},
			dialog:  `{"type":"recording","url":"http://localhost:1/a.wav"}`,
			wantErr: "refusing to download from internal address",
		},
		{
			name:    "non-http scheme refused",
			dialog:  `{"type":"recording","url":"file:///etc/passwd"}`,
			wantErr: `scheme "file"`,
		},
		{
			name:    "redirect to another scheme refused",
			dialog:  `{"type":"recording","url":"%s/redirect?to=ftp://example.com/a.wav"}`,
			wantErr: `refusing redirect to a "ftp" URL`,
		},
		{
			name:    "download over the size limit",
			opts:    map[string]any{"max_download_bytes": 4},
			dialog:  `{"type":"recording","url":"%s/calls/c2.mp3?sig=PRESIGNED"}`,
			wantErr: "over max_download_bytes 4",
		},
		{
			name:    "download not found",
			dialog:  `{"type":"recording","url":"%s/missing.wav?sig=PRESIGNED"}`,
			wantErr: "HTTP 404",
		},
		{
			name:    "inline body that is not base64",
			dialog:  `{"type":"recording","body":"!!not base64!!","encoding":"base64"}`,
			wantErr: "not valid base64",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			instantVendorRetries(t)
			media, _ := transcribeMedia(t)
			fake := newVendorFake(t, tt.replies...)
			opts := map[string]any{"DEEPGRAM_KEY": key, "api_url": fake.srv.URL, "allow_private_networks": true, "minimum_duration": 0}
			for k, v := range tt.opts {
				opts[k] = v
			}
			l := newTestLink(t, "transcribe-failures", "links.deepgram_link", opts)
			dialog := tt.dialog
			if strings.Contains(dialog, "%s") {
				dialog = fmt.Sprintf(dialog, media.URL)
			}
			v := mustParseVCon(t, `{"uuid":"u1","dialog":[`+dialog+`]}`)
			_, err := l.Run(context.Background(), v)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Run: %v", err)
				}
				if len(analysesOfType(v, "transcript")) != 1 {
					t.Error("transcript not stored")
				}
			} else {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				assertNoSecret(t, err.Error(), key, "PRESIGNED", "/etc/passwd")
				if len(analysesOfType(v, "transcript")) != 0 {
					t.Error("a transcript was stored despite the error")
				}
			}
			if n := len(fake.requests()); n != tt.wantRequests {
				t.Errorf("vendor requests = %d, want %d", n, tt.wantRequests)
			}
		})
	}
}

// TestTranscribeRedirectGuard checks that the address check runs on every
// connection: a first hop that is allowed cannot redirect to one that is not.
func TestTranscribeRedirectGuard(t *testing.T) {
	target, _ := transcribeMedia(t)
	entry, _ := transcribeMedia(t)
	entryPort := netip.MustParseAddrPort(strings.TrimPrefix(entry.URL, "http://")).Port()
	f := &transcribeFetcher{
		client: httpx.GuardedClient(func(ap netip.AddrPort) error {
			if ap.Port() != entryPort {
				return fmt.Errorf("refusing %s", ap)
			}
			return nil
		}),
		maxBytes: 1 << 20, timeout: 5 * time.Second,
	}
	tests := []struct {
		url     string
		wantErr string
	}{
		{entry.URL + "/calls/c2.mp3", ""},
		{entry.URL + "/redirect?to=" + target.URL + "/calls/c2.mp3", "refusing 127.0.0.1"},
		{target.URL + "/calls/c2.mp3", "refusing 127.0.0.1"},
	}
	for _, tt := range tests {
		_, err := f.audio(context.Background(), map[string]any{"type": "recording", "url": tt.url})
		if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("audio(%s): err = %v, want %q", tt.url, err, tt.wantErr)
		}
	}
}

func TestTranscribeRefusesBadOptions(t *testing.T) {
	t.Setenv("GROQ_API_KEY", "")
	tests := []struct {
		module  string
		opts    map[string]any
		wantErr string
	}{
		{"links.transcribe", map[string]any{}, `option "vendor": required: openai, groq or deepgram`},
		{"links.transcribe", map[string]any{"vendor": "whisper_builtin"}, `option "vendor": required: openai, groq or deepgram (conserver's built-in whisper is not available)`},
		{"links.transcribe", map[string]any{"vendor": "hugging_face"}, `"hugging_face" is not supported`},
		{"links.transcribe", map[string]any{"vendor": "openai", "vendor_options": "x"}, `option "vendor_options": want a map, got "x"`},
		{"links.transcribe", map[string]any{"vendor": "openai"}, "no credentials"},
		{"links.groq_whisper", map[string]any{}, "GROQ_API_KEY"},
		{"links.deepgram_link", map[string]any{"api": map[string]any{}}, `"DEEPGRAM_KEY"`},
		{"links.deepgram_link", map[string]any{"DEEPGRAM_KEY": "k", "api": "nova"}, `option "api": want a map, got "nova"`},
		{"links.deepgram_link", map[string]any{"DEEPGRAM_KEY": "k", "max_download_bytes": 0}, `"max_download_bytes"`},
		{"links.deepgram_link", map[string]any{"DEEPGRAM_KEY": "k", "allow_private_networks": "perhaps"}, `"allow_private_networks"`},
		{"links.openai_transcribe", map[string]any{"OPENAI_API_KEY": "k", "model": ""}, `option "model": must not be empty`},
		{"links.deepgram_link", map[string]any{"vendor": "openai", "vendor_options": map[string]any{}}, "vendor_options: no credentials"},
		{"links.openai_transcribe", map[string]any{"OPENAI_API_KEY": "k", "max_upload_bytes": 100}, `option "max_upload_bytes": want a number of bytes of at least 1024`},
		{"links.openai_transcribe", map[string]any{"OPENAI_API_KEY": "k", "max_chunk_duration": -1}, `option "max_chunk_duration"`},
		{"links.openai_transcribe", map[string]any{"OPENAI_API_KEY": "k", "max_concurrent_parts": 0}, `option "max_concurrent_parts"`},
		{"links.openai_transcribe", map[string]any{"OPENAI_API_KEY": "k", "silence_len": 0}, `option "silence_len": want a positive number of milliseconds`},
		{"links.openai_transcribe", map[string]any{"OPENAI_API_KEY": "k", "use_silence_chunking": "maybe"}, `option "use_silence_chunking"`},
		{"links.deepgram_link", map[string]any{"DEEPGRAM_KEY": "k", "ffmpeg_path": ""}, `option "ffmpeg_path": must not be empty`},
		{"links.deepgram_link", map[string]any{"DEEPGRAM_KEY": "k", "send_ai_usage_data_to_url": "ftp://usage.example"}, `option "send_ai_usage_data_to_url"`},
		{"links.analyze", map[string]any{"OPENAI_API_KEY": "k", "send_ai_usage_data_to_url": "not a url"}, `option "send_ai_usage_data_to_url"`},
		{"links.analyze", map[string]any{"OPENAI_API_KEY": "k", "ai_usage_api_token": 7}, `option "ai_usage_api_token": want a string`},
	}
	for _, tt := range tests {
		_, err := New("bad", tt.module, tt.opts, Deps{})
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s %v: err = %v, want it to contain %q", tt.module, tt.opts, err, tt.wantErr)
		}
	}
}
