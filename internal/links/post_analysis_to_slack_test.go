package links

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// slackTestDoc: dialog 0 flagged NEEDS REVIEW with a summary; dialog 1
// flagged but already posted; a strolid_dealer attachment when team != "".
func slackTestDoc(team string) string {
	att := ""
	if team != "" {
		att = `, "attachments": [{"purpose": "strolid_dealer", "encoding": "json",
		  "body": "{\"name\":\"Acme Motors\",\"team\":{\"name\":\"` + team + ` Team\"}}"}]`
	}
	return `{"uuid": "018f0000-0000-8000-8000-0000000000bb", "created_at": "2025-01-01T00:00:00Z",
  "dialog": [{"type": "recording"}, {"type": "recording"}],
  "analysis": [
    {"type": "customer_frustration", "dialog": 0, "vendor": "openai", "encoding": "none", "body": "NEEDS REVIEW: upset"},
    {"type": "summary", "dialog": 0, "vendor": "openai", "encoding": "none", "body": "Customer asked for a refund."},
    {"type": "customer_frustration", "dialog": 1, "vendor": "openai", "encoding": "none", "body": "NEEDS REVIEW", "was_posted_to_slack": true},
    {"type": "customer_frustration", "dialog": 1, "vendor": "openai", "encoding": "none", "body": "fine"}
  ]` + att + `}`
}

type slackSent struct {
	Channel string           `json:"channel"`
	Text    string           `json:"text"`
	Blocks  []map[string]any `json:"blocks"`
}

func TestSlackPost(t *testing.T) {
	const token = "xoxb-0000-secret-token"
	okReply := fakeReply{status: 200, body: `{"ok":true,"channel":"C1","ts":"1.2"}`}
	tests := []struct {
		name     string
		team     string
		opts     map[string]any
		webhook  bool
		replies  []fakeReply
		wantErr  string
		wantSent []slackSent // channel and text only
		posted   bool
		checkReq func(t *testing.T, r fakeRequest, sent slackSent)
	}{
		{
			name:     "bot token posts conserver's message to the default channel",
			opts:     map[string]any{"url": "https://portal.example/vcons/{vcon_id}"},
			replies:  []fakeReply{okReply},
			wantSent: []slackSent{{Channel: "alerts", Text: "Customer asked for a refund."}},
			posted:   true,
			checkReq: func(t *testing.T, r fakeRequest, sent slackSent) {
				if r.path != "/api/chat.postMessage" || r.header.Get("Authorization") != "Bearer "+token ||
					!strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
					t.Errorf("request %s auth %q type %q", r.path, r.header.Get("Authorization"), r.header.Get("Content-Type"))
				}
				if len(sent.Blocks) != 3 {
					t.Fatalf("blocks = %v", sent.Blocks)
				}
				b, _ := json.Marshal(sent.Blocks)
				for _, want := range []string{
					`"text":"Check this out :neutral_face:"`, `"text":"Customer asked for a refund."`,
					`"url":"https://portal.example/vcons/018f0000-0000-8000-8000-0000000000bb"`, `"action_id":"button-action"`,
				} {
					if !strings.Contains(string(b), want) {
						t.Errorf("blocks lack %s: %s", want, b)
					}
				}
			},
		},
		{
			name:    "a team channel is posted first, with the dealer",
			team:    "Boston",
			opts:    map[string]any{"url": "https://hex.example/app"},
			replies: []fakeReply{okReply},
			wantSent: []slackSent{
				{Channel: "team-boston-alerts", Text: "Customer asked for a refund. #Acme Motors"},
				{Channel: "alerts", Text: "Customer asked for a refund. #Acme Motors"},
			},
			posted: true,
			checkReq: func(t *testing.T, _ fakeRequest, sent slackSent) {
				b, _ := json.Marshal(sent.Blocks)
				if !strings.Contains(string(b), `"url":"https://hex.example/app?_vcon_id=\"018f0000-0000-8000-8000-0000000000bb\""`) {
					t.Errorf("legacy details url missing: %s", b)
				}
			},
		},
		{
			name:    "an unknown team channel is reported to the default channel and fails",
			team:    "Nowhere",
			replies: []fakeReply{{status: 200, body: `{"ok":false,"error":"channel_not_found"}`}, okReply},
			wantErr: "slack chat.postMessage to team-nowhere-alerts: channel_not_found",
			wantSent: []slackSent{
				{Channel: "team-nowhere-alerts", Text: "Customer asked for a refund. #Acme Motors"},
				{Channel: "alerts", Text: "The channel name doesn't exist - team-nowhere-alerts"},
			},
		},
		{
			name:     "Slack's ok:false on the default channel is an error",
			replies:  []fakeReply{{status: 200, body: `{"ok":false,"error":"invalid_auth"}`}},
			wantErr:  "slack chat.postMessage to alerts: invalid_auth",
			wantSent: []slackSent{{Channel: "alerts", Text: "Customer asked for a refund."}},
		},
		{
			name:     "rate limited, then posted",
			replies:  []fakeReply{{status: 429, header: map[string]string{"Retry-After": "1"}, body: `{"ok":false,"error":"ratelimited"}`}, okReply},
			wantSent: []slackSent{{Channel: "alerts", Text: "Customer asked for a refund."}, {Channel: "alerts", Text: "Customer asked for a refund."}},
			posted:   true,
		},
		{
			name:     "only_if that matches nothing posts nothing",
			opts:     map[string]any{"only_if": map[string]any{"analysis_type": "customer_frustration", "includes": "ESCALATE"}},
			wantSent: nil,
		},
		{
			name:     "incoming webhook",
			webhook:  true,
			opts:     map[string]any{"url": "https://portal.example/{vcon_id}"},
			replies:  []fakeReply{{status: 200, header: map[string]string{"Content-Type": "text/html"}, body: "ok"}},
			wantSent: []slackSent{{Text: "Customer asked for a refund."}},
			posted:   true,
			checkReq: func(t *testing.T, r fakeRequest, _ slackSent) {
				if r.path != "/services/T0/B0/hooksecret" || r.header.Get("Authorization") != "" {
					t.Errorf("webhook request %s auth %q", r.path, r.header.Get("Authorization"))
				}
				if strings.Contains(string(r.body), `"channel"`) {
					t.Errorf("webhook body names a channel: %s", r.body)
				}
			},
		},
		{
			name:     "incoming webhook failure does not quote the webhook url",
			webhook:  true,
			replies:  []fakeReply{{status: 404, header: map[string]string{"Content-Type": "text/html"}, body: "no_service"}},
			wantErr:  "slack incoming webhook: HTTP 404: no_service",
			wantSent: []slackSent{{Text: "Customer asked for a refund."}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			instantVendorRetries(t)
			fake := newVendorFake(t, tt.replies...)
			opts := map[string]any{"max_retries": 2}
			if tt.webhook {
				opts["webhook_url"] = fake.srv.URL + "/services/T0/B0/hooksecret"
			} else {
				opts["token"], opts["default_channel_name"], opts["api_url"] = token, "alerts", fake.srv.URL+"/api"
			}
			for k, v := range tt.opts {
				opts[k] = v
			}
			l := newTestLink(t, "slack", "links.post_analysis_to_slack", opts)
			v := mustParseVCon(t, slackTestDoc(tt.team))
			_, err := l.Run(context.Background(), v)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tt.wantErr)
				}
				assertNoSecret(t, err.Error(), token, "hooksecret")
			} else if err != nil {
				t.Fatalf("Run: %v", err)
			}
			reqs := fake.requests()
			if len(reqs) != len(tt.wantSent) {
				t.Fatalf("posts = %d, want %d", len(reqs), len(tt.wantSent))
			}
			for i, r := range reqs {
				var sent slackSent
				if err := json.Unmarshal(r.body, &sent); err != nil {
					t.Fatal(err)
				}
				if sent.Channel != tt.wantSent[i].Channel || sent.Text != tt.wantSent[i].Text {
					t.Errorf("post %d = %q %q, want %q %q", i, sent.Channel, sent.Text, tt.wantSent[i].Channel, tt.wantSent[i].Text)
				}
				if tt.checkReq != nil && i == 0 {
					tt.checkReq(t, r, sent)
				}
			}
			flagged := v.List(vcon.Analysis)[0]
			if posted, _ := flagged["was_posted_to_slack"].(bool); posted != tt.posted {
				t.Errorf("was_posted_to_slack = %v, want %v", flagged["was_posted_to_slack"], tt.posted)
			}
			if tt.posted {
				// Posted once: a second run sends nothing.
				before := len(fake.requests())
				if _, err := l.Run(context.Background(), v); err != nil {
					t.Fatal(err)
				}
				if len(fake.requests()) != before {
					t.Error("second run posted again")
				}
			}
		})
	}
}

func TestSlackRefusesBadOptions(t *testing.T) {
	tests := []struct {
		opts    map[string]any
		wantErr string
	}{
		{map[string]any{}, `set "token"`},
		{map[string]any{"token": "xoxb-1"}, `option "default_channel_name": required with "token"`},
		{map[string]any{"token": "xoxb-1", "webhook_url": "https://hooks.slack.com/x", "default_channel_name": "c"}, "only one of"},
		{map[string]any{"webhook_url": "hooks.slack.com/x"}, `option "webhook_url": want an absolute http:// or https:// URL`},
		{map[string]any{"token": "xoxb-1", "default_channel_name": "c", "only_if": map[string]any{"includes": "x"}}, `option "only_if.analysis_type": required`},
		{map[string]any{"token": "${AI_TEST_SLACK_UNSET}", "default_channel_name": "c"}, "AI_TEST_SLACK_UNSET"},
	}
	for _, tt := range tests {
		_, err := New("bad", "links.post_analysis_to_slack", tt.opts, Deps{})
		if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
			t.Errorf("%v: err = %v, want it to contain %q", tt.opts, err, tt.wantErr)
		}
	}
}
