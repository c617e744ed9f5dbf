package secrets

import (
	"encoding/json"
	"testing"
)

func TestIsCredentialKey(t *testing.T) {
	for key, want := range map[string]bool{
		"password": true, "db_password": true, "passwd": true, "client_secret": true, "aws_secret_access_key": true, "aws_access_key_id": true,
		"OPENAI_API_KEY": true, "apiKey": true, "x-api-key": true, "DEEPGRAM_KEY": true, "key": true, "LITELLM_MASTER_KEY": true,
		"AZURE_OPENAI_API_KEY": true, "Authorization": true, "token": true, "api_token": true, "X-Auth-Token": true, "slackToken": true,
		"credentials": true, "Cookie": true, "sentinel_password": true,
		"max_tokens": false, "token_limit": false, "key_points": false, "key_phrases": false, "tokenizer": false, "keys": false, "keywords": false, "tags": false, "url": false, "model": false,
		"webhook-urls": false, "forward_matches": false, "Content-Type": false, "table_name": false, "host": false,
	} {
		if got := IsCredentialKey(key); got != want {
			t.Errorf("IsCredentialKey(%q) = %v, want %v", key, got, want)
		}
	}
}

func TestRedactURLs(t *testing.T) {
	for in, want := range map[string]string{
		"redis://user:pw@host:6379/0":                       "redis://user:***@host:6379/0",
		"redis://:pw@host":                                  "redis://:***@host",
		"postgres://u:p%40ss@db/x?sslmode=require":          "postgres://u:***@db/x?sslmode=require",
		"https://api.example.com/hook?token=abc&channel=c":  "https://api.example.com/hook?token=***&channel=c",
		"https://x/y?api_key=k#frag":                        "https://x/y?api_key=***#frag",
		"see redis://a:b@h and https://u:v@w/p for details": "see redis://a:***@h and https://u:***@w/p for details",
		"redis://user@host":                                 "redis://user@host",
		"https://example.com/path?max_tokens=5":             "https://example.com/path?max_tokens=5",
		"no url here":                                       "no url here",
	} {
		if got := RedactURLs(in); got != want {
			t.Errorf("RedactURLs(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestHasURLPassword(t *testing.T) {
	for in, want := range map[string]bool{
		"postgres://u:p@h/db": true, "redis://:p@h": true, "redis://u@h": false, "redis://h": false, "plain": false,
	} {
		if got := HasURLPassword(in); got != want {
			t.Errorf("HasURLPassword(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestRedact(t *testing.T) {
	in := `{"password":"p1","port":5432,"options":{"api_key":"k1","max_tokens":100,"enabled":true,"nothing":null},
"credentials":{"user":"u1","nested":["n1",{"x":"n2"}],"count":7},"token":"${SLACK_TOKEN}","secret":"${S:-fallback}",
"url":"redis://a:p2@h","headers":{"Authorization":"Bearer t1","Content-Type":"application/json"},"empty_password":""}`
	var doc any
	if err := json.Unmarshal([]byte(in), &doc); err != nil {
		t.Fatal(err)
	}
	got, err := json.Marshal(Redact(doc))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"credentials":{"count":"***","nested":["***",{"x":"***"}],"user":"***"},"empty_password":"",` +
		`"headers":{"Authorization":"***","Content-Type":"application/json"},` +
		`"options":{"api_key":"***","enabled":true,"max_tokens":100,"nothing":null},"password":"***","port":5432,` +
		`"secret":"***","token":"${SLACK_TOKEN}","url":"redis://a:***@h"}`
	if string(got) != want {
		t.Errorf("Redact:\n got %s\nwant %s", got, want)
	}
	// The input is not changed.
	if doc.(map[string]any)["password"] != "p1" {
		t.Error("Redact changed its input")
	}
}
