package links

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vcon-operator/vcon-operator/internal/audio/audiotest"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// usageRecords reads the vCon's ai_usage attachment.
func usageRecords(t *testing.T, v *vcon.VCon) []aiUsageRecord {
	t.Helper()
	var out []aiUsageRecord
	n := 0
	for _, a := range v.List(vcon.Attachments) {
		if a["purpose"] != AIUsagePurpose {
			continue
		}
		n++
		if a["encoding"] != "json" {
			t.Errorf("ai_usage encoding = %v, want json", a["encoding"])
		}
		if err := json.Unmarshal([]byte(a["body"].(string)), &out); err != nil {
			t.Fatalf("ai_usage body: %v", err)
		}
	}
	if n > 1 {
		t.Errorf("%d ai_usage attachments, want one", n)
	}
	return out
}

// instantUsageRetries makes the usage post's retries instant and fixes
// created_at.
func instantUsageRetries(t *testing.T) {
	t.Helper()
	oldPolicy, oldNow := usagePolicy, usageNow
	usagePolicy.Sleep = func(ctx context.Context, _ time.Duration) error { return ctx.Err() }
	usageNow = func() time.Time { return time.Date(2026, 3, 4, 5, 6, 7, 890000000, time.FixedZone("x", 3600)) }
	t.Cleanup(func() { usagePolicy, usageNow = oldPolicy, oldNow })
}

// TestAIUsage checks what each vendor link records per call: on the vCon
// in conserver's payload shape, posted to send_ai_usage_data_to_url with
// the bearer token, and in the metrics by chain, link and model.
func TestAIUsage(t *testing.T) {
	const (
		uuid   = "018f0000-0000-8000-8000-0000000000cc"
		token  = "usage-token-000000000001"
		when   = "2026-03-04T04:06:07.890000Z"
		portal = "/usage/track"
	)
	inline := func(data []byte, dur float64) string {
		return fmt.Sprintf(`{"type":"recording","body":%q,"encoding":"base64","mediatype":"audio/wav","duration":%v}`, base64.StdEncoding.EncodeToString(data), dur)
	}
	transcripts := `"analysis":[{"type":"transcript","dialog":0,"vendor":"x","encoding":"none","body":"I want a refund"},
	  {"type":"transcript","dialog":1,"vendor":"x","encoding":"none","body":"thanks"}]`
	minute := audiotest.WAV(splitRate, 1, audiotest.Tone(30, 300), audiotest.Quiet(3), audiotest.Tone(27, 400))
	tests := []struct {
		name        string
		module      string
		opts        func(vendorURL, portalURL string) map[string]any
		doc         string
		replies     []fakeReply // the vendor's
		respond     func(r fakeRequest) fakeReply
		portal      []fakeReply
		want        []aiUsageRecord
		wantPosts   int // requests the portal received
		wantTokens  map[string]float64
		wantSeconds float64
		wantOutcome map[string]float64
	}{
		{
			name:   "analyze: tokens per dialog, posted with the token",
			module: "links.analyze",
			opts: func(v, p string) map[string]any {
				return map[string]any{"OPENAI_API_KEY": "sk-a", "base_url": v, "model": "gpt-4o-mini", "source": map[string]any{"text_location": "body"},
					"send_ai_usage_data_to_url": p + portal, "ai_usage_api_token": token}
			},
			doc:     `"dialog":[{"type":"text","body":"a"},{"type":"text","body":"b"}],` + transcripts,
			replies: []fakeReply{chatAnswer("summary one", 120, 30), chatAnswer("summary two", 80, 20)},
			portal:  []fakeReply{{status: 201}},
			want: []aiUsageRecord{
				{when, uuid, "VCON_PROCESSING", "ANALYZE", "tokens", 120, 30, "gpt-4o-mini"},
				{when, uuid, "VCON_PROCESSING", "ANALYZE", "tokens", 80, 20, "gpt-4o-mini"},
			},
			wantPosts:   2,
			wantTokens:  map[string]float64{"input": 200, "output": 50},
			wantOutcome: map[string]float64{"ok": 2},
		},
		{
			name:   "check_and_tag without a usage URL: recorded, not posted",
			module: "links.check_and_tag",
			opts: func(v, p string) map[string]any {
				return map[string]any{"OPENAI_API_KEY": "sk-a", "base_url": v, "tag_name": "t", "tag_value": "v", "evaluation_question": "q?"}
			},
			doc:        `"dialog":[{"type":"text","body":"a"}],"analysis":[{"type":"transcript","dialog":0,"vendor":"x","encoding":"none","body":"hello"}]`,
			replies:    []fakeReply{chatAnswer(`{"applies":true}`, 50, 5)},
			want:       []aiUsageRecord{{when, uuid, "VCON_PROCESSING", "CHECK_AND_TAG", "tokens", 50, 5, "gpt-5"}},
			wantTokens: map[string]float64{"input": 50, "output": 5},
		},
		{
			name:   "gpt-4o-transcribe: billed by token, the audio's seconds counted",
			module: "links.openai_transcribe",
			opts: func(v, p string) map[string]any {
				return map[string]any{"OPENAI_API_KEY": "sk-t", "base_url": v, "send_ai_usage_data_to_url": p + portal, "ai_usage_api_token": token}
			},
			doc:         `"dialog":[{"type":"recording","body":"QVVESU9CWVRFUw","encoding":"base64","mediatype":"audio/mpeg","duration":90}]`,
			replies:     []fakeReply{{status: 200, body: `{"text":"hi","usage":{"type":"tokens","input_tokens":1400,"output_tokens":33,"total_tokens":1433}}`}},
			portal:      []fakeReply{{status: 200}},
			want:        []aiUsageRecord{{when, uuid, "VCON_PROCESSING", "OPENAI_TRANSCRIBE", "tokens", 1400, 33, "gpt-4o-transcribe"}},
			wantPosts:   1,
			wantTokens:  map[string]float64{"input": 1400, "output": 33},
			wantSeconds: 90,
			wantOutcome: map[string]float64{"ok": 1},
		},
		{
			name:   "deepgram: billed by the seconds Deepgram heard, rounded as conserver posts them",
			module: "links.deepgram_link",
			opts: func(v, p string) map[string]any {
				return map[string]any{"DEEPGRAM_KEY": "dg", "api_url": v, "minimum_duration": 0, "send_ai_usage_data_to_url": p + portal}
			},
			doc: `"dialog":[{"type":"recording","body":"QVVESU9CWVRFUw","encoding":"base64","duration":90}]`,
			replies: []fakeReply{{status: 200, body: `{"metadata":{"duration":91.6},
			  "results":{"channels":[{"alternatives":[{"transcript":"hi","confidence":0.2}]}]}}`}},
			portal:      []fakeReply{{status: 202}},
			want:        []aiUsageRecord{{when, uuid, "VCON_PROCESSING", "DEEPGRAM_TRANSCRIBE", "seconds", 92, 0, "nova-3"}},
			wantPosts:   1,
			wantSeconds: 91.6,
			wantOutcome: map[string]float64{"ok": 1},
		},
		{
			name:   "groq reports nothing: the WAV's measured length",
			module: "links.groq_whisper",
			opts: func(v, p string) map[string]any {
				return map[string]any{"API_KEY": "gsk", "base_url": v, "minimum_duration": 0}
			},
			doc:         `"dialog":[` + inline(audiotest.WAV(8000, 1, audiotest.Tone(12.5, 440)), 0) + `]`,
			replies:     []fakeReply{{status: 200, body: `{"text":"hi","x_groq":{"id":"r"}}`}},
			want:        []aiUsageRecord{{when, uuid, "VCON_PROCESSING", "GROQ_TRANSCRIBE", "seconds", 13, 0, "whisper-large-v3-turbo"}},
			wantSeconds: 12.5,
		},
		{
			name:   "a recording in parts is one record, its parts' seconds summed",
			module: "links.transcribe",
			opts: func(v, p string) map[string]any {
				return map[string]any{"vendor": "openai", "vendor_options": map[string]any{"OPENAI_API_KEY": "sk-t", "base_url": v,
					"model": "whisper-1", "max_chunk_duration": 20, "send_ai_usage_data_to_url": p + portal}}
			},
			doc: `"dialog":[` + inline(minute, 60) + `]`,
			respond: func(r fakeRequest) fakeReply {
				up := transcribeParseUpload(t, r)
				pcm, err := checkWAVPart([]byte(up.file))
				if err != nil {
					return fakeReply{status: 400, body: `{"error":{"message":"not WAV"}}`}
				}
				return fakeReply{status: 200, body: fmt.Sprintf(`{"text":"x","usage":{"type":"duration","seconds":%v}}`, float64(len(pcm)/2)/splitRate)}
			},
			portal:      []fakeReply{{status: 200}},
			want:        []aiUsageRecord{{when, uuid, "VCON_PROCESSING", "OPENAI_TRANSCRIBE", "seconds", 60, 0, "whisper-1"}},
			wantPosts:   1,
			wantSeconds: 60,
			wantOutcome: map[string]float64{"ok": 1},
		},
		{
			name:   "a portal that keeps failing: retried, counted, and the vCon goes on",
			module: "links.analyze",
			opts: func(v, p string) map[string]any {
				return map[string]any{"OPENAI_API_KEY": "sk-a", "base_url": v, "model": "m", "source": map[string]any{"text_location": "body"},
					"send_ai_usage_data_to_url": p + portal, "ai_usage_api_token": token}
			},
			doc:         `"dialog":[{"type":"text","body":"a"}],` + transcripts,
			replies:     []fakeReply{chatAnswer("s", 10, 1)},
			portal:      []fakeReply{{status: 503}},
			want:        []aiUsageRecord{{when, uuid, "VCON_PROCESSING", "ANALYZE", "tokens", 10, 1, "m"}},
			wantPosts:   3,
			wantTokens:  map[string]float64{"input": 10, "output": 1},
			wantOutcome: map[string]float64{"failed": 1},
		},
		{
			name:   "a portal that refuses: not retried",
			module: "links.analyze",
			opts: func(v, p string) map[string]any {
				return map[string]any{"OPENAI_API_KEY": "sk-a", "base_url": v, "model": "m", "source": map[string]any{"text_location": "body"},
					"send_ai_usage_data_to_url": p + portal, "ai_usage_api_token": token}
			},
			doc:         `"dialog":[{"type":"text","body":"a"}],` + transcripts,
			replies:     []fakeReply{chatAnswer("s", 10, 1)},
			portal:      []fakeReply{{status: 401, body: `{"detail":"bad token"}`}},
			want:        []aiUsageRecord{{when, uuid, "VCON_PROCESSING", "ANALYZE", "tokens", 10, 1, "m"}},
			wantPosts:   1,
			wantTokens:  map[string]float64{"input": 10, "output": 1},
			wantOutcome: map[string]float64{"failed": 1},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			instantVendorRetries(t)
			instantUsageRetries(t)
			vendor := newVendorFake(t, tt.replies...)
			if tt.respond != nil {
				vendor = newVendorFakeFunc(t, tt.respond)
			}
			portalFake := newVendorFake(t, tt.portal...)
			reg := prometheus.NewRegistry()
			link := fmt.Sprintf("usage-%d", i)
			opts := tt.opts(vendor.srv.URL, portalFake.srv.URL)
			l, err := New(link, tt.module, opts, Deps{HTTP: &http.Client{}, Chain: "calls", Metrics: reg})
			if err != nil {
				t.Fatal(err)
			}
			v := mustParseVCon(t, `{"uuid":"`+uuid+`",`+tt.doc+`}`)
			if _, err := l.Run(context.Background(), v); err != nil {
				t.Fatalf("Run: %v", err)
			}
			got := usageRecords(t, v)
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("records on the vCon:\n got %+v\nwant %+v", got, tt.want)
			}
			posts := portalFake.requests()
			if len(posts) != tt.wantPosts {
				t.Fatalf("%d posts, want %d", len(posts), tt.wantPosts)
			}
			for j, p := range posts {
				if p.method != http.MethodPost || p.path != portal || p.header.Get("Content-Type") != "application/json" {
					t.Errorf("post %d: %s %s %s", j, p.method, p.path, p.header.Get("Content-Type"))
				}
				if wantAuth := map[bool]string{true: "Bearer " + token}[opts["ai_usage_api_token"] != nil]; p.header.Get("Authorization") != wantAuth {
					t.Errorf("post %d Authorization %q, want %q", j, p.header.Get("Authorization"), wantAuth)
				}
				// The payload is conserver's: exactly its keys.
				var payload map[string]any
				if err := json.Unmarshal(p.body, &payload); err != nil {
					t.Fatal(err)
				}
				if len(payload) != 8 {
					t.Errorf("post %d has keys %v, want conserver's eight", j, payload)
				}
				var rec aiUsageRecord
				_ = json.Unmarshal(p.body, &rec)
				if k := min(j, len(tt.want)-1); rec != tt.want[k] && tt.wantPosts == len(tt.want) {
					t.Errorf("post %d = %+v, want %+v", j, rec, tt.want[k])
				}
			}
			raw, _ := v.Marshal()
			assertNoSecret(t, string(raw), token, portalFake.srv.URL)

			m, err := newUsageMetrics(reg)
			if err != nil {
				t.Fatal(err)
			}
			model := tt.want[0].AIModel
			for _, kind := range []string{"input", "output"} {
				if got := testutil.ToFloat64(m.tokens.WithLabelValues("calls", link, model, kind)); got != tt.wantTokens[kind] {
					t.Errorf("vcon_ai_tokens_total{kind=%q} = %v, want %v", kind, got, tt.wantTokens[kind])
				}
			}
			if got := testutil.ToFloat64(m.audioSeconds.WithLabelValues("calls", link, model)); got != tt.wantSeconds {
				t.Errorf("vcon_ai_audio_seconds_total = %v, want %v", got, tt.wantSeconds)
			}
			for _, outcome := range []string{"ok", "failed"} {
				if got := testutil.ToFloat64(m.posts.WithLabelValues("calls", link, outcome)); got != tt.wantOutcome[outcome] {
					t.Errorf("vcon_ai_usage_posts_total{outcome=%q} = %v, want %v", outcome, got, tt.wantOutcome[outcome])
				}
			}
		})
	}
}
