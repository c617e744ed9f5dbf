package links

import (
	"fmt"
	"strings"
	"testing"
)

// TestModuleOptionErrors is each link module's table of refused options.
// The error names the link, its module and every bad key (one New reports
// all of them), and never quotes a credential or a URL.
func TestModuleOptionErrors(t *testing.T) {
	const key = "sk-s3cret-000000"
	llm := func(kv ...any) map[string]any {
		out := map[string]any{"OPENAI_API_KEY": key}
		for i := 0; i < len(kv); i += 2 {
			out[kv[i].(string)] = kv[i+1]
		}
		return out
	}
	tests := map[string][]struct {
		name string
		opts map[string]any
		want []string // each must appear
	}{
		"links.tag": {
			{"absent", nil, []string{`option "tags": required`}},
			{"items", map[string]any{"tags": []any{":x", int64(3)}}, []string{`option "tags": item 1: want a string, got 3`}},
		},
		"links.tag_router": {
			{"every bad key", map[string]any{"tag_routes": map[string]any{"a": int64(5), "b": []any{}}, "forward_original": "no"}, []string{
				`option "tag_routes.a": want a list of strings, got 5`,
				`option "tag_routes.b": no target list`,
				`option "forward_original": want true or false (or 1 or 0), got "no"`,
			}},
		},
		"links.jq_link": {
			{"every bad key", map[string]any{"filter": ".[", "forward_matches": int64(2)}, []string{
				`option "forward_matches": want true or false (or 1 or 0), got 2`,
				`option "filter": invalid jq program`,
			}},
		},
		"links.lawful_basis": {
			{"absent", nil, []string{`option "required_purposes": required`}},
			{"every bad key", map[string]any{"required_purposes": []any{"analysis", " "}, "on_missing": "drop", "clock_skew": "1h", "at": "yesterday"}, []string{
				`option "required_purposes": item 1: empty purpose`,
				`option "on_missing": want halt or route, got "drop"`,
				`option "clock_skew": want a duration from 0s to 5m`,
				`option "at": want an RFC 3339 timestamp`,
			}},
			{"route without lists", map[string]any{"required_purposes": []any{"analysis"}, "on_missing": "route"}, []string{`option "route_to": required with on_missing: route`}},
			{"route to no list", map[string]any{"required_purposes": []any{"analysis"}, "on_missing": "route", "route_to": []any{}}, []string{`option "route_to": required with on_missing: route`}},
			{"lists without route", map[string]any{"required_purposes": []any{"analysis"}, "route_to": []any{"review"}}, []string{`option "route_to": only with on_missing: route`}},
		},
		"links.sampler": {
			{"every bad key", map[string]any{"method": "random", "value": "half", "seed": []any{}}, []string{
				`option "value": want a number, got "half"`,
				`option "method": unknown method "random"`,
				`option "seed": want a string or a number, got a list`,
			}},
		},
		"links.expire_vcon": {
			{"every bad key", map[string]any{"seconds": "1h"}, []string{`option "seconds": want a whole number, got "1h"`}},
		},
		"links.diet": {
			{"every bad key", map[string]any{"remove_dialog_body": "maybe", "post_media_to_url": "media?token=s3cret", "s3_bucket": "b"}, []string{
				`option "remove_dialog_body": want true or false (or 1 or 0), got "maybe"`,
				`option "post_media_to_url": want an absolute http:// or https:// URL`,
				`option "s3_bucket": uploading dialog bodies to S3 is not supported`,
			}},
		},
		"links.webhook": {
			{"every bad key", map[string]any{"webhook-urls": []any{"/hook?token=s3cret"}, "timeout": "soon", "retries": int64(21), "headers": map[string]any{"Authorization": []any{key}}}, []string{
				`option "webhook-urls": item 0: want an absolute http:// or https:// URL`,
				`option "headers": value of "Authorization": want a string, got a list`,
				`option "timeout": want a duration such as 30s or 30 (seconds), got "soon"`,
				`option "retries": want a whole number from 0 to 20, got 21`,
			}},
		},
		"links.http_step": {
			{"every bad key", map[string]any{"url": "ftp://step?token=s3cret", "timeout": int64(0), "retries": 1.5}, []string{
				`option "url": want an absolute http:// or https:// URL`,
				`option "timeout": want a duration such as 30s or 30 (seconds), got 0`,
				`option "retries": want a whole number from 0 to 10, got 1.5`,
			}},
		},
		"links.analyze": {
			{"no credentials", map[string]any{}, []string{"no credentials: set LITELLM_PROXY_URL"}},
			{"every bad key", llm("temperature", "hot", "max_retries", int64(-1), "source", map[string]any{"analysis_type": int64(1)}, "base_url", "api.example"), []string{
				`option "base_url": want an absolute http:// or https:// URL`,
				`option "max_retries": want a whole number from 0 to 2147483647, got -1`,
				`option "temperature": want a number, got "hot"`,
				`option "source.analysis_type": want a string, got 1`,
			}},
			{"credential not quoted", map[string]any{"OPENAI_API_KEY": int64(123456789)}, []string{`option "OPENAI_API_KEY": want a string, got a number`}},
		},
		"links.analyze_and_label": {
			{"every bad key", llm("response_format", "json", "sampling_rate", int64(2)), []string{
				`option "sampling_rate": want a number between 0 and 1, got 2`,
				`option "response_format": want a map like {type: json_object}, got "json"`,
			}},
		},
		"links.check_and_tag": {
			{"every bad key", llm("tag_value", "", "only_if", map[string]any{"section": "dialog"}), []string{
				`option "tag_name": required, missing`,
				`option "tag_value": required, empty`,
				`option "evaluation_question": required, missing`,
				`option "only_if.section": want "analysis" or "attachments", got "dialog"`,
				`option "only_if.includes": required`,
			}},
		},
		"links.analyze_vcon": {
			{"every bad key", llm("remove_body_properties", "maybe", "model", ""), []string{
				`option "model": must not be empty`,
				`option "remove_body_properties": want true or false (or 1 or 0), got "maybe"`,
			}},
		},
		"links.transcribe": {
			{"no vendor", map[string]any{"vendor_options": map[string]any{"minimum_duration": "long"}}, []string{
				`option "vendor": required`,
				`option "vendor_options.minimum_duration": want a number, got "long"`,
			}},
			{"vendor options", map[string]any{"vendor": "deepgram", "vendor_options": map[string]any{"DEEPGRAM_KEY": "${DG_NOT_SET}", "download_timeout": "later", "allow_private_networks": "sure"}}, []string{
				`option "vendor_options.DEEPGRAM_KEY": refers to ${DG_NOT_SET}`,
				`option "vendor_options.download_timeout": want a duration such as 30s or 30 (seconds), got "later"`,
				`option "vendor_options.allow_private_networks": want true or false (or 1 or 0), got "sure"`,
			}},
		},
		"links.openai_transcribe": {
			{"every bad key", map[string]any{"OPENAI_API_KEY": key, "model": "", "language": []any{"en", "fr"}, "max_download_bytes": int64(0)}, []string{
				`option "model": must not be empty`,
				`option "language": want a single value, got a list`,
				`option "max_download_bytes": want a positive number of bytes, got 0`,
			}},
		},
		"links.groq_whisper": {
			{"every bad key", map[string]any{"API_KEY": key, "base_url": "groq", "timeout": "-5s"}, []string{
				`option "base_url": want an absolute http:// or https:// URL`,
				`option "timeout": want a duration such as 30s or 30 (seconds), got "-5s"`,
			}},
		},
		"links.deepgram_link": {
			{"every bad key", map[string]any{"DEEPGRAM_KEY": key, "api": "nova", "minimum_confidence": "high"}, []string{
				`option "api": want a map, got "nova"`,
				`option "minimum_confidence": want a number, got "high"`,
			}},
		},
		"links.redact": {
			{"absent", nil, []string{`option "original_storages": required`}},
			{"every bad key", map[string]any{
				"original_storages": []any{"restricted", "restricted"}, "replacement": "blank", "parties": "hide",
				"mute_audio": "maybe", "mute_padding": "soon", "mute_audo": true,
				"external": map[string]any{"headers": map[string]any{"Authorization": []any{key}}, "retries": int64(11)},
			}, []string{
				`option "mute_audo": unknown option of links.redact`,
				`option "replacement": want mask or remove, got "blank"`,
				`option "external.retries": want a whole number from 0 to 10, got 11`,
				`option "external.url": required when external is set`,
				`option "external.headers": value of "Authorization": want a string, got a list`,
				`option "mute_audio": want true or false (or 1 or 0), got "maybe"`,
				`option "mute_padding": want a duration such as 30s or 30 (seconds), got "soon"`,
				`option "parties": want keep or remove, got "hide"`,
				`option "original_storages": item 1: a storage name, once`,
			}},
			{"engine refuses", map[string]any{"original_storages": []any{}, "types": []any{"iban"}, "patterns": map[string]any{"emp": "("}}, []string{
				`unknown type "iban"`,
			}},
			{"bad pattern", map[string]any{"original_storages": []any{}, "patterns": map[string]any{"emp": "EMP-("}}, []string{
				`pattern "emp": error parsing regexp`,
			}},
			{"empty pattern", map[string]any{"original_storages": []any{}, "patterns": map[string]any{"emp": ""}}, []string{
				`pattern "emp" matches the empty string`,
			}},
		},
		"links.sign": {
			{"absent", nil, []string{
				`option "private_key": required, missing`,
				`set certificates (the chain sent as x5c, as the draft requires) or kid`,
			}},
			{"every bad key", map[string]any{"private_key": "-----BEGIN PRIVATE KEY-----\ns3cret\n-----END PRIVATE KEY-----\n", "certificates": "not pem", "algorithm": "HS256"}, []string{
				`option "private_key": want a PEM private key`,
				`option "certificates": want the signing certificate and its issuers as PEM: no CERTIFICATE block found`,
				`option "algorithm": want one of [RS256 ES256 EdDSA], got "HS256"`,
			}},
			{"unset variable", map[string]any{"private_key": "${SIGNING_KEY_NOT_SET}", "kid": "k"}, []string{`option "private_key": refers to ${SIGNING_KEY_NOT_SET}`}},
		},
		"links.verify": {
			{"nothing trusted", map[string]any{"keep_signed": "perhaps"}, []string{
				`option "keep_signed": want true or false (or 1 or 0), got "perhaps"`,
				`set trust_roots (CA certificates for x5c chains) or jwks (public keys by kid)`,
			}},
			{"every bad key", map[string]any{"trust_roots": "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", "jwks": "{keys", "allow_unsigned": int64(2)}, []string{
				`option "trust_roots": want CA certificates as PEM: certificate 1 does not parse`,
				`option "jwks": want a JSON Web Key Set`,
				`option "allow_unsigned": want true or false (or 1 or 0), got 2`,
			}},
		},
		"links.encrypt": {
			{"absent", nil, []string{`option "recipients": required, missing`}},
			{"every bad key", map[string]any{"recipients": "no keys here", "key_algorithm": "dir"}, []string{
				`option "recipients": want the recipients' RSA public keys or certificates as PEM: no PUBLIC KEY or CERTIFICATE block found`,
				`option "key_algorithm": want RSA-OAEP or RSA-OAEP-256, got "dir"`,
			}},
		},
		"links.decrypt": {
			{"absent", nil, []string{`option "private_key": required, missing`}},
			{"not a key", map[string]any{"private_key": int64(123456789)}, []string{`option "private_key": want a string, got a number`}},
		},
		"links.post_analysis_to_slack": {
			{"neither way to Slack", map[string]any{}, []string{`set "token" (a Slack bot token) or "webhook_url"`}},
			{"every bad key", map[string]any{"token": "xoxb-s3cret", "api_url": "slack", "max_retries": "many", "only_if": map[string]any{"includes": "x"}}, []string{
				`option "default_channel_name": required with "token"`,
				`option "api_url": want an absolute http:// or https:// URL`,
				`option "only_if.analysis_type": required`,
				`option "max_retries": want a whole number from 0 to 2147483647, got "many"`,
			}},
		},
	}
	for _, module := range Known() {
		if _, ok := tests[module]; !ok {
			t.Errorf("%s has no option error cases", module)
		}
	}
	for module, cases := range tests {
		for _, tc := range cases {
			t.Run(module+"/"+tc.name, func(t *testing.T) {
				t.Setenv("GROQ_API_KEY", "")
				l, err := New("bad", module, tc.opts, Deps{})
				if err == nil {
					t.Fatalf("New accepted %v, built %T", tc.opts, l)
				}
				msg := err.Error()
				if !strings.HasPrefix(msg, fmt.Sprintf("link %q (%s): ", "bad", module)) {
					t.Errorf("error %q does not name the link and its module", msg)
				}
				for _, w := range tc.want {
					if !strings.Contains(msg, w) {
						t.Errorf("error %q\ndoes not contain %q", msg, w)
					}
				}
				if strings.Contains(msg, "s3cret") || strings.Contains(msg, "123456789") {
					t.Errorf("error %q quotes a secret", msg)
				}
			})
		}
	}
}

// TestMissingCredentialsWithOtherErrors checks that a missing credential is
// reported beside a bad key read before it, not only once that is fixed.
func TestMissingCredentialsWithOtherErrors(t *testing.T) {
	for module, opts := range map[string]map[string]any{
		"links.analyze":      {"LITELLM_PROXY_URL": "litellm:4000"},
		"links.analyze_vcon": {"AZURE_OPENAI_ENDPOINT": "azure"},
		"links.transcribe":   {"vendor": "openai", "vendor_options": map[string]any{"LITELLM_PROXY_URL": "litellm:4000"}},
	} {
		_, err := New("bad", module, opts, Deps{})
		if err == nil || !strings.Contains(err.Error(), "want an absolute http:// or https:// URL") || !strings.Contains(err.Error(), "no credentials") {
			t.Errorf("%s: err = %v, want both the bad URL and the missing credential", module, err)
		}
	}
}
