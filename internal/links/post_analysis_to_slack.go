package links

// links.post_analysis_to_slack: when an analysis of type only_if.analysis_type
// contains only_if.includes (conserver's default: a customer_frustration
// analysis saying "NEEDS REVIEW"), post the dialog's summary to Slack with a
// button linking to the vCon, and mark the analysis was_posted_to_slack so it
// is posted once. conserver's message and routing: a vCon with a
// strolid_dealer attachment naming a team also goes to team-{team}-alerts,
// with " #{dealer}" appended to the summary.
//
// Two ways to reach Slack: a bot `token` (chat.postMessage to
// default_channel_name, and team channels) or an incoming `webhook_url`
// (one fixed channel, so no team routing).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func init() { Register("links.post_analysis_to_slack", newSlackPost) }

const slackDefaultAPIURL = "https://slack.com/api"

type slackPost struct {
	name    string
	logger  *slog.Logger
	http    *http.Client
	timeout time.Duration
	retries int

	token, webhookURL, apiURL string
	defaultChannel            string
	detailsURL                string
	summaryType               string
	onlyType, onlyIncludes    string
}

func newSlackPost(name string, raw map[string]any, deps Deps) (Link, error) {
	o := options.New(raw)
	s := &slackPost{name: name, logger: deps.Logger, http: deps.HTTP}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	if s.http == nil {
		s.http = http.DefaultClient
	}
	before := o.Problems()
	s.token = o.Secret("token")
	// The incoming webhook's URL is its credential.
	s.webhookURL = options.CheckURL(o, "webhook_url", o.Secret("webhook_url"))
	switch {
	case s.token == "" && s.webhookURL == "" && o.Problems() == before:
		o.Errorf(`set "token" (a Slack bot token) or "webhook_url" (an incoming webhook)`)
	case s.token != "" && s.webhookURL != "":
		o.Errorf(`set only one of "token" and "webhook_url"`)
	}
	s.defaultChannel = o.First("default_channel_name", "channel_name")
	if s.token != "" && s.defaultChannel == "" {
		o.Failf("default_channel_name", `required with "token"`)
	}
	s.apiURL = strings.TrimRight(o.URL("api_url", slackDefaultAPIURL), "/")
	s.detailsURL = o.String("url", "")
	s.summaryType = o.String("analysis_to_post", "summary")
	s.onlyType, s.onlyIncludes = "customer_frustration", "NEEDS REVIEW"
	if o.Has("only_if") {
		m := o.Map("only_if")
		if s.onlyType = m.String("analysis_type", ""); s.onlyType == "" {
			m.Failf("analysis_type", "required")
		}
		if s.onlyIncludes = m.String("includes", ""); !m.Has("includes") {
			m.Failf("includes", "required")
		}
	}
	s.timeout = o.Duration("timeout", 30*time.Second)
	s.retries = o.IntRange("max_retries", 3, 0, math.MaxInt32)
	if err := o.Err(); err != nil {
		return nil, err
	}
	return s, nil
}

// slackDetailsURL is conserver's build_details_url: {vcon_id} substituted,
// or the legacy ?_vcon_id="<uuid>" suffix when the template has none.
func slackDetailsURL(template, uuid string) string {
	if template == "" {
		return ""
	}
	if strings.Contains(template, "{vcon_id}") {
		return strings.ReplaceAll(template, "{vcon_id}", uuid)
	}
	return template + `?_vcon_id="` + uuid + `"`
}

// slackBlocks is conserver's message.
func slackBlocks(abstract, detailsURL string) []any {
	blocks := []any{
		map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": "Check this out :neutral_face:"}},
		map[string]any{"type": "section", "text": map[string]any{"type": "mrkdwn", "text": abstract}},
	}
	if detailsURL != "" {
		blocks = append(blocks, map[string]any{
			"type": "section",
			"text": map[string]any{"type": "mrkdwn", "text": "Please review the details here:"},
			"accessory": map[string]any{
				"type":      "button",
				"text":      map[string]any{"type": "plain_text", "text": "Details", "emoji": true},
				"value":     "click_me_123",
				"url":       detailsURL,
				"action_id": "button-action",
			},
		})
	}
	return blocks
}

// slackDealer reads the team and dealer of a strolid_dealer attachment.
func slackDealer(v *vcon.VCon) (team, dealer string) {
	for _, a := range v.List(vcon.Attachments) {
		if a["purpose"] != "strolid_dealer" && a["type"] != "strolid_dealer" {
			continue
		}
		body, _ := decodedBody(a).(map[string]any)
		if d, ok := body["name"].(string); ok {
			dealer = d
		}
		if t, ok := body["team"].(map[string]any); ok {
			if n, ok := t["name"].(string); ok {
				if f := strings.Fields(n); len(f) > 0 {
					team = strings.ToLower(f[0])
				}
			}
		}
	}
	return team, dealer
}

func slackBodyText(body any) string {
	if s, ok := body.(string); ok {
		return s
	}
	if body == nil {
		return ""
	}
	return jsonString(body)
}

func (s *slackPost) Run(ctx context.Context, v *vcon.VCon) (Result, error) {
	for _, a := range v.List(vcon.Analysis) {
		if a["type"] != s.onlyType || !strings.Contains(slackBodyText(a["body"]), s.onlyIncludes) {
			continue
		}
		if posted, _ := a["was_posted_to_slack"].(bool); posted {
			continue
		}
		index, _ := vcon.Number(a["dialog"])
		abstract := slackBodyText(a["body"])
		if summary := vcon.FindAnalysis(v, int(index), s.summaryType); summary != nil {
			abstract = slackBodyText(summary["body"])
		} else {
			s.logger.Warn("no summary for the flagged dialog; posting the flagged analysis", "link", s.name, "vcon", v.UUID(), "dialog", int(index))
		}
		details := slackDetailsURL(s.detailsURL, v.UUID())
		if team, dealer := slackDealer(v); team != "" && team != "strolid" && s.webhookURL == "" {
			abstract += " #" + dealer
			if err := s.postOrNotify(ctx, "team-"+team+"-alerts", abstract, details); err != nil {
				return Continue, err
			}
		}
		if err := s.postOrNotify(ctx, s.defaultChannel, abstract, details); err != nil {
			return Continue, err
		}
		a["was_posted_to_slack"] = true
	}
	return Continue, nil
}

// slackAPIError is Slack's 200 {"ok": false, "error": "..."}.
type slackAPIError struct{ channel, code string }

func (e *slackAPIError) Error() string {
	return fmt.Sprintf("slack chat.postMessage to %s: %s", e.channel, e.code)
}

// postOrNotify posts; when Slack refuses a channel other than the default
// one, it tells the default channel so (conserver's fallback) and still
// fails, so the vCon is retried from the dead-letter queue.
func (s *slackPost) postOrNotify(ctx context.Context, channel, abstract, details string) error {
	err := s.post(ctx, map[string]any{"channel": channel, "text": abstract, "blocks": slackBlocks(abstract, details)})
	var apiErr *slackAPIError
	if err != nil && errors.As(err, &apiErr) && channel != s.defaultChannel {
		notice := map[string]any{"channel": s.defaultChannel, "text": "The channel name doesn't exist - " + channel}
		if nerr := s.post(ctx, notice); nerr != nil {
			s.logger.Error("could not tell the default channel about a failed post", "link", s.name, "err", nerr)
		}
	}
	return err
}

func (s *slackPost) post(ctx context.Context, msg map[string]any) error {
	if s.webhookURL != "" {
		delete(msg, "channel")
	}
	payload, err := json.Marshal(msg)
	if err != nil {
		return fmt.Errorf("encode slack message: %w", err)
	}
	target, operation, secret := s.apiURL+"/chat.postMessage", "chat.postMessage", s.token
	if s.webhookURL != "" {
		target, operation, secret = s.webhookURL, "incoming webhook", s.webhookURL
	}
	call := &httpx.Call{
		Vendor: "slack", Operation: operation, Policy: vendorRetries(s.retries), Timeout: s.timeout,
		Secrets: []string{secret},
		NewRequest: func(ctx context.Context) (*http.Request, error) {
			r, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(payload))
			if err != nil {
				return nil, err
			}
			r.Header.Set("Content-Type", "application/json; charset=utf-8")
			if s.token != "" {
				r.Header.Set("Authorization", "Bearer "+s.token)
			}
			return r, nil
		},
	}
	body, err := call.Do(ctx, s.http)
	if err != nil {
		return err
	}
	if s.webhookURL != "" {
		return nil // incoming webhooks answer 200 "ok"
	}
	var resp struct {
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal(body, &resp); err != nil {
		return fmt.Errorf("slack chat.postMessage: malformed answer: %s", httpx.JSONError(err))
	}
	if !resp.OK {
		channel, _ := msg["channel"].(string)
		code := httpx.VendorMessage([]byte(`{"error":`+jsonString(resp.Error)+`}`), []string{s.token})
		if code == "" {
			code = "ok is false"
		}
		return &slackAPIError{channel: channel, code: code}
	}
	return nil
}
