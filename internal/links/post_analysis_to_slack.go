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
	"net/http"
	"strings"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
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
	o := vendorOpts(raw)
	s := &slackPost{name: name, logger: deps.Logger, http: deps.HTTP}
	if s.logger == nil {
		s.logger = slog.Default()
	}
	if s.http == nil {
		s.http = http.DefaultClient
	}
	var err error
	if s.token, err = o.secret("token"); err != nil {
		return nil, err
	}
	if s.webhookURL, err = o.secret("webhook_url"); err != nil {
		return nil, err
	}
	switch {
	case s.token == "" && s.webhookURL == "":
		return nil, errors.New(`set "token" (a Slack bot token) or "webhook_url" (an incoming webhook)`)
	case s.token != "" && s.webhookURL != "":
		return nil, errors.New(`set only one of "token" and "webhook_url"`)
	case s.webhookURL != "":
		if err := checkHTTPURL("webhook_url", s.webhookURL); err != nil {
			return nil, err
		}
	}
	if s.defaultChannel, err = o.firstStr("default_channel_name", "channel_name"); err != nil {
		return nil, err
	}
	if s.token != "" && s.defaultChannel == "" {
		return nil, errors.New(`option "default_channel_name" is required with "token"`)
	}
	if s.apiURL, err = o.str("api_url", slackDefaultAPIURL); err != nil {
		return nil, err
	}
	s.apiURL = strings.TrimRight(s.apiURL, "/")
	if err := checkHTTPURL("api_url", s.apiURL); err != nil {
		return nil, err
	}
	if s.detailsURL, err = o.str("url", ""); err != nil {
		return nil, err
	}
	if s.summaryType, err = o.str("analysis_to_post", "summary"); err != nil {
		return nil, err
	}
	s.onlyType, s.onlyIncludes = "customer_frustration", "NEEDS REVIEW"
	if o.set("only_if") {
		m, err := o.mapping("only_if")
		if err != nil {
			return nil, err
		}
		if s.onlyType, err = m.str("analysis_type", ""); err != nil || s.onlyType == "" {
			return nil, errors.New(`only_if: "analysis_type" is required`)
		}
		if s.onlyIncludes, err = m.str("includes", ""); err != nil || !m.set("includes") {
			return nil, errors.New(`only_if: "includes" is required`)
		}
	}
	if s.timeout, err = o.duration("timeout", 30*time.Second); err != nil {
		return nil, err
	}
	if s.retries, err = o.nonNegInt("max_retries", 3); err != nil {
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
		index, _ := vendorNumber(a["dialog"])
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
