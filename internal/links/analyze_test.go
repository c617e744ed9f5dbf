package links

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vcon-operator/vcon-operator/internal/openai"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// analyzeTestDoc has two recordings: dialog 0 with a JSON transcript (encoding
// json), dialog 1 with a plain-text transcript, a dialog body the model
// must not see, and one tag.
const analyzeTestDoc = `{
  "vcon": "0.0.1", "uuid": "018f0000-0000-8000-8000-00000000abcd", "created_at": "2025-01-01T00:00:00Z",
  "parties": [{"tel": "+15550001"}],
  "dialog": [
    {"type": "recording", "body": "QVVESU9CWVRFUw", "encoding": "base64url", "duration": 90},
    {"type": "recording", "url": "https://media.example/b.wav", "duration": 45}
  ],
  "analysis": [
    {"type": "transcript", "dialog": 0, "vendor": "deepgram", "encoding": "json",
     "body": "{\"paragraphs\":{\"transcript\":\"I want a refund\"},\"transcript\":\"I want a refund\"}"},
    {"type": "transcript", "dialog": 1, "vendor": "deepgram", "encoding": "none", "body": "plain words"}
  ],
  "attachments": [{"purpose": "tags", "encoding": "json", "body": "[\"existing:1\"]"}]
}`

// chatBody decodes a chat request a fake received.
type chatBody struct {
	Model          string           `json:"model"`
	Messages       []openai.Message `json:"messages"`
	Temperature    *float64         `json:"temperature"`
	ResponseFormat map[string]any   `json:"response_format"`
}

func chatBodies(t *testing.T, reqs []fakeRequest) []chatBody {
	t.Helper()
	out := make([]chatBody, len(reqs))
	for i, r := range reqs {
		if err := json.Unmarshal(r.body, &out[i]); err != nil {
			t.Fatalf("chat request %d: %v", i, err)
		}
	}
	return out
}

func TestAILinks(t *testing.T) {
	const key = "sk-analyze-key-0000001"
	tests := []struct {
		name         string
		module       string
		opts         map[string]any
		random       float64
		replies      []fakeReply
		wantRequests int
		wantErr      string
		check        func(t *testing.T, v *vcon.VCon, reqs []chatBody, link string)
	}{
		{
			name:   "analyze summarises the dialog with a JSON transcript",
			module: "links.analyze",
			opts:   map[string]any{"prompt": "Summarize this"},
			replies: []fakeReply{
				chatAnswer("The customer wants a refund.", 20, 6),
			},
			wantRequests: 1,
			check: func(t *testing.T, v *vcon.VCon, reqs []chatBody, link string) {
				r := reqs[0]
				if r.Model != "gpt-3.5-turbo-16k" || r.Temperature == nil || *r.Temperature != 0 || r.ResponseFormat != nil {
					t.Errorf("request = %+v", r)
				}
				want := []openai.Message{{Role: "system", Content: "You are a helpful assistant."}, {Role: "user", Content: "Summarize this\n\nI want a refund"}}
				if len(r.Messages) != 2 || r.Messages[0] != want[0] || r.Messages[1] != want[1] {
					t.Errorf("messages = %q", r.Messages)
				}
				got := analysesOfType(v, "summary")
				if len(got) != 1 {
					t.Fatalf("summaries = %v", got)
				}
				b, _ := json.Marshal(got[0])
				wantJSON := `{"body":"The customer wants a refund.","dialog":0,"encoding":"none","type":"summary","vendor":"openai","vendor_schema":{"model":"gpt-3.5-turbo-16k","prompt":"Summarize this"}}`
				if string(b) != wantJSON {
					t.Errorf("analysis = %s\nwant       %s", b, wantJSON)
				}
				if testutil.ToFloat64(testVendorMetrics(t).tokens.WithLabelValues(link, "gpt-3.5-turbo-16k", "prompt")) != 20 {
					t.Error("prompt tokens not recorded under the link's name")
				}
			},
		},
		{
			name:   "analyze reads a plain string body with text_location body",
			module: "links.analyze",
			opts: map[string]any{"analysis_type": "sentiment", "model": "gpt-4o", "temperature": 0.3,
				"system_prompt": "Be terse.", "source": map[string]any{"text_location": "body"}},
			replies:      []fakeReply{chatAnswer("negative", 1, 1), chatAnswer("neutral", 1, 1)},
			wantRequests: 2,
			check: func(t *testing.T, v *vcon.VCon, reqs []chatBody, link string) {
				if !strings.Contains(reqs[1].Messages[1].Content, "plain words") || reqs[1].Messages[0].Content != "Be terse." {
					t.Errorf("second request = %+v", reqs[1])
				}
				if *reqs[0].Temperature != 0.3 || reqs[0].Model != "gpt-4o" {
					t.Errorf("first request = %+v", reqs[0])
				}
				got := analysesOfType(v, "sentiment")
				if len(got) != 2 || got[0]["body"] != "negative" || got[1]["body"] != "neutral" || got[1]["dialog"] != json.Number("1") {
					t.Errorf("sentiments = %v", got)
				}
			},
		},
		{
			name:         "analyze skips dialogs already analysed",
			module:       "links.analyze",
			opts:         map[string]any{"analysis_type": "transcript", "source": map[string]any{"analysis_type": "transcript", "text_location": "body"}},
			wantRequests: 0,
		},
		{
			name:         "analyze without a source analysis does nothing",
			module:       "links.analyze",
			opts:         map[string]any{"source": map[string]any{"analysis_type": "wtf_transcript"}},
			wantRequests: 0,
			check: func(t *testing.T, v *vcon.VCon, _ []chatBody, link string) {
				if len(v.List(vcon.Analysis)) != 2 {
					t.Error("analysis changed")
				}
			},
		},
		{
			name:         "only_if that does not match skips the vCon",
			module:       "links.analyze",
			opts:         map[string]any{"only_if": map[string]any{"section": "attachments", "type": "tags", "includes": "vip:yes"}},
			wantRequests: 0,
		},
		{
			name:         "only_if on tags that matches runs",
			module:       "links.analyze",
			opts:         map[string]any{"only_if": map[string]any{"section": "attachments", "purpose": "tags", "includes": "existing:1"}},
			replies:      []fakeReply{chatAnswer("s", 1, 1)},
			wantRequests: 1,
		},
		{
			name:         "only_if on an analysis body substring runs",
			module:       "links.analyze",
			opts:         map[string]any{"only_if": map[string]any{"section": "analysis", "type": "transcript", "includes": "refund"}},
			replies:      []fakeReply{chatAnswer("s", 1, 1)},
			wantRequests: 1,
		},
		{
			name:         "sampling_rate leaves out an unlucky vCon",
			module:       "links.analyze",
			opts:         map[string]any{"sampling_rate": 0.5},
			random:       0.7,
			wantRequests: 0,
		},
		{
			name:         "sampling_rate keeps a lucky vCon",
			module:       "links.analyze",
			opts:         map[string]any{"sampling_rate": 0.5},
			random:       0.2,
			replies:      []fakeReply{chatAnswer("s", 1, 1)},
			wantRequests: 1,
		},
		{
			name:         "analyze dead-letters on 401 without quoting the key",
			module:       "links.analyze",
			replies:      []fakeReply{{status: 401, body: `{"error":{"message":"Incorrect API key provided: ` + key + `","code":"invalid_api_key"}}`}},
			wantRequests: 1,
			wantErr:      "analyze summary: dialog 0: openai chat/completions: HTTP 401",
		},
		{
			name:         "analyze_vcon sends the vCon without dialog bodies and stores JSON",
			module:       "links.analyze_vcon",
			replies:      []fakeReply{chatAnswer(`{"topic": "refund",  "score": 3}`, 1, 1)},
			wantRequests: 1,
			check: func(t *testing.T, v *vcon.VCon, reqs []chatBody, link string) {
				r := reqs[0]
				if r.ResponseFormat["type"] != "json_object" || r.Model != "gpt-3.5-turbo-16k" {
					t.Errorf("request = %+v", r)
				}
				user := r.Messages[1].Content
				if !strings.HasPrefix(user, "Analyze this vCon and return a JSON object with your analysis.\n\n{") ||
					strings.Contains(user, "QVVESU9CWVRFUw") || !strings.Contains(user, "018f0000-0000-8000-8000-00000000abcd") {
					t.Errorf("user message = %q", user)
				}
				got := analysesOfType(v, "json_analysis")
				if len(got) != 1 || got[0]["encoding"] != "json" || got[0]["dialog"] != json.Number("0") || got[0]["vendor"] != "openai" {
					t.Fatalf("analysis = %v", got)
				}
				if got[0]["body"] != `{"score":3,"topic":"refund"}` {
					t.Errorf("body = %v", got[0]["body"])
				}
				schema := got[0]["vendor_schema"].(map[string]any)
				if schema["system_prompt"] == nil || schema["model"] != "gpt-3.5-turbo-16k" {
					t.Errorf("vendor_schema = %v", schema)
				}
				if v.List(vcon.Dialog)[0]["body"] != "QVVESU9CWVRFUw" {
					t.Error("the vCon's own dialog body was removed")
				}
			},
		},
		{
			name:         "analyze_vcon keeps bodies when asked",
			module:       "links.analyze_vcon",
			opts:         map[string]any{"remove_body_properties": false},
			replies:      []fakeReply{chatAnswer(`{}`, 1, 1)},
			wantRequests: 1,
			check: func(t *testing.T, _ *vcon.VCon, reqs []chatBody, link string) {
				if !strings.Contains(reqs[0].Messages[1].Content, "QVVESU9CWVRFUw") {
					t.Error("dialog body missing")
				}
			},
		},
		{
			name:         "analyze_vcon refuses an answer that is not JSON",
			module:       "links.analyze_vcon",
			replies:      []fakeReply{chatAnswer(`Sure! Here is {`, 1, 1)},
			wantRequests: 1,
			wantErr:      "model answer is not JSON",
		},
		{
			name:         "analyze_vcon runs once per vCon",
			module:       "links.analyze_vcon",
			opts:         map[string]any{"analysis_type": "transcript"},
			wantRequests: 0,
		},
		{
			name:         "analyze_and_label turns labels into tags",
			module:       "links.analyze_and_label",
			replies:      []fakeReply{chatAnswer(`{"labels": ["refund", "angry customer", "existing"]}`, 1, 1)},
			wantRequests: 1,
			check: func(t *testing.T, v *vcon.VCon, reqs []chatBody, link string) {
				r := reqs[0]
				if r.Model != "gpt-4-turbo" || *r.Temperature != 0.2 || r.ResponseFormat["type"] != "json_object" ||
					r.Messages[0].Content != labelSystemPrompt || !strings.HasPrefix(r.Messages[1].Content, labelPrompt+"\n\n") {
					t.Errorf("request = %+v", r)
				}
				want := []string{"existing:1", "refund:refund", "angry customer:angry customer", "existing:existing"}
				if got := tagsOf(t, v); strings.Join(got, "|") != strings.Join(want, "|") {
					t.Errorf("tags = %q, want %q", got, want)
				}
				got := analysesOfType(v, "labeled_analysis")
				if len(got) != 1 || got[0]["encoding"] != "json" || !strings.Contains(got[0]["body"].(string), "angry customer") {
					t.Errorf("analysis = %v", got)
				}
			},
		},
		{
			name:         "analyze_and_label keeps an unparsable answer as text",
			module:       "links.analyze_and_label",
			replies:      []fakeReply{chatAnswer(`labels: refund`, 1, 1)},
			wantRequests: 1,
			check: func(t *testing.T, v *vcon.VCon, _ []chatBody, link string) {
				got := analysesOfType(v, "labeled_analysis")
				if len(got) != 1 || got[0]["encoding"] != "none" || got[0]["body"] != "labels: refund" {
					t.Fatalf("analysis = %v", got)
				}
				if got[0]["vendor_schema"].(map[string]any)["parse_error"] == nil {
					t.Error("parse_error not recorded")
				}
				if tags := tagsOf(t, v); len(tags) != 1 {
					t.Errorf("tags = %q", tags)
				}
			},
		},
		{
			name:   "check_and_tag tags when the model says it applies",
			module: "links.check_and_tag",
			opts: map[string]any{"tag_name": "escalation", "tag_value": "yes",
				"evaluation_question": "Did the customer ask for a manager?"},
			replies:      []fakeReply{chatAnswer(`{"applies": true}`, 1, 1), chatAnswer(`{"applies": false}`, 1, 1)},
			wantRequests: 2,
			check: func(t *testing.T, v *vcon.VCon, reqs []chatBody, link string) {
				r := reqs[0]
				if r.Model != "gpt-5" || r.Temperature != nil || r.ResponseFormat["type"] != "json_object" {
					t.Errorf("request = %+v", r)
				}
				if !strings.HasPrefix(r.Messages[1].Content, "Question: Did the customer ask for a manager?\n\nText to evaluate:\n{") {
					t.Errorf("user message = %q", r.Messages[1].Content)
				}
				if !strings.HasPrefix(reqs[1].Messages[1].Content, "Question: Did the customer ask for a manager?\n\nText to evaluate:\nplain words\n\n") {
					t.Errorf("second user message = %q", reqs[1].Messages[1].Content)
				}
				if got := tagsOf(t, v); strings.Join(got, "|") != "existing:1|escalation:yes" {
					t.Errorf("tags = %q", got)
				}
				got := analysesOfType(v, "tag_evaluation")
				if len(got) != 2 || got[0]["body"] != `{"applies":true,"link_name":"`+link+`","tag":"escalation:yes"}` ||
					got[1]["body"] != `{"applies":false,"link_name":"`+link+`","tag":"escalation:yes"}` || got[0]["encoding"] != "json" {
					t.Errorf("analyses = %v", got)
				}
			},
		},
		{
			name:   "check_and_tag does not take the string false for a yes",
			module: "links.check_and_tag",
			opts: map[string]any{"tag_name": "t", "tag_value": "v", "evaluation_question": "q?",
				"source": map[string]any{"text_location": "body.transcript"}},
			replies:      []fakeReply{chatAnswer(`{"applies": "false"}`, 1, 1)},
			wantRequests: 1,
			check: func(t *testing.T, v *vcon.VCon, _ []chatBody, link string) {
				if got := tagsOf(t, v); len(got) != 1 {
					t.Errorf("tags = %q", got)
				}
			},
		},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			instantVendorRetries(t)
			oldRandom := samplingRandom
			samplingRandom = func() float64 { return tt.random }
			t.Cleanup(func() { samplingRandom = oldRandom })

			fake := newVendorFake(t, tt.replies...)
			opts := map[string]any{"OPENAI_API_KEY": key, "base_url": fake.srv.URL + "/v1", "max_retries": 0}
			for k, v := range tt.opts {
				opts[k] = v
			}
			name := "ai-links-" + strconv.Itoa(i)
			l := newTestLink(t, name, tt.module, opts)
			v := mustParseVCon(t, analyzeTestDoc)
			res, err := l.Run(context.Background(), v)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				assertNoSecret(t, err.Error(), key)
			} else if err != nil {
				t.Fatalf("Run: %v", err)
			}
			if !continues(res) {
				t.Errorf("result = %+v, want Continue", res)
			}
			reqs := fake.requests()
			if len(reqs) != tt.wantRequests {
				t.Fatalf("requests = %d, want %d", len(reqs), tt.wantRequests)
			}
			for _, r := range reqs {
				if r.path != "/v1/chat/completions" || r.header.Get("Authorization") != "Bearer "+key {
					t.Errorf("request to %s with auth %q", r.path, r.header.Get("Authorization"))
				}
			}
			if tt.check != nil {
				tt.check(t, v, chatBodies(t, reqs), name)
			}
			if _, err := v.Marshal(); err != nil {
				t.Errorf("vCon no longer encodes: %v", err)
			}
		})
	}
}

func TestAILinksRefuseBadOptions(t *testing.T) {
	base := map[string]any{"OPENAI_API_KEY": "sk-x"}
	with := func(kv ...any) map[string]any {
		m := map[string]any{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i].(string)] = kv[i+1]
		}
		return m
	}
	tests := []struct {
		module  string
		opts    map[string]any
		wantErr string
	}{
		{"links.analyze", map[string]any{}, "no credentials"},
		{"links.analyze", with("temperature", "hot"), `option "temperature": want a number, got "hot"`},
		{"links.analyze", with("sampling_rate", 2), `option "sampling_rate": want a number between 0 and 1, got 2`},
		{"links.analyze", with("only_if", map[string]any{"section": "dialog", "includes": "x"}), `option "only_if.section": want "analysis" or "attachments", got "dialog"`},
		{"links.analyze", with("only_if", map[string]any{"section": "analysis", "type": "x"}), `option "only_if.includes": required`},
		{"links.analyze", with("source", "transcript"), `option "source": want a map, got "transcript"`},
		{"links.analyze", with("model", ""), `option "model": must not be empty`},
		{"links.analyze", with("timeout", -1), `option "timeout": want a duration such as 30s or 30 (seconds), got -1`},
		{"links.analyze", with("max_retries", 1.5), `option "max_retries": want a whole number from 0 to 2147483647, got 1.5`},
		{"links.analyze_vcon", with("remove_body_properties", "maybe"), `option "remove_body_properties": want true or false (or 1 or 0), got "maybe"`},
		{"links.analyze_and_label", with("response_format", "json"), `option "response_format": want a map like {type: json_object}, got "json"`},
		{"links.check_and_tag", with("tag_value", "v", "evaluation_question", "q"), `option "tag_name": required, missing`},
		{"links.check_and_tag", with("tag_name", "n", "evaluation_question", "q"), `option "tag_value": required, missing`},
		{"links.check_and_tag", with("tag_name", "n", "tag_value", "v"), `option "evaluation_question": required, missing`},
	}
	for _, tt := range tests {
		_, err := New("bad", tt.module, tt.opts, Deps{HTTP: &http.Client{}})
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%s %v: err = %v, want it to contain %q", tt.module, tt.opts, err, tt.wantErr)
		}
	}
}

func TestAITextAt(t *testing.T) {
	tests := []struct {
		entry string
		path  string
		want  string
	}{
		{`{"body":"{\"paragraphs\":{\"transcript\":\"hi\"}}","encoding":"json"}`, "body.paragraphs.transcript", "hi"},
		{`{"body":{"paragraphs":{"transcript":"legacy"}},"encoding":"none"}`, "body.paragraphs.transcript", "legacy"},
		{`{"body":"{\"paragraphs\":{\"transcript\":\"mislabelled\"}}","encoding":"none"}`, "body.paragraphs.transcript", "mislabelled"},
		{`{"body":"just text","encoding":"none"}`, "body", "just text"},
		{`{"body":"just text","encoding":"none"}`, "body.paragraphs.transcript", ""},
		{`{"body":"{\"utterances\":[{\"text\":\"first\"}]}","encoding":"json"}`, "body.utterances.0.text", "first"},
		{`{"body":"{\"utterances\":[]}","encoding":"json"}`, "body.utterances.3.text", ""},
		{`{"body":"{\"a\":{\"b\":1}}","encoding":"json"}`, "body.a", `{"b":1}`},
		{`{"vendor":"x"}`, "body", ""},
	}
	for _, tt := range tests {
		var entry map[string]any
		if err := json.Unmarshal([]byte(tt.entry), &entry); err != nil {
			t.Fatal(err)
		}
		if got := textAt(entry, tt.path); got != tt.want {
			t.Errorf("textAt(%s, %q) = %q, want %q", tt.entry, tt.path, got, tt.want)
		}
	}
}
