package links

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

const dietDoc = `{
  "uuid": "u1",
  "dialog": [
    {"type": "recording", "body": "UklGRg==", "encoding": "base64url", "mediatype": "audio/wav"},
    {"type": "text", "body": "", "encoding": "none"},
    {"type": "recording", "url": "https://elsewhere/x.wav"}
  ],
  "analysis": [{"type": "summary", "body": "{\"text\":\"hi\",\"system_prompt\":\"be evil\"}", "encoding": "json",
                "vendor_schema": {"model": "m", "system_prompt": "be nice"}}],
  "attachments": [
    {"purpose": "tags", "body": "[]", "encoding": "json"},
    {"type": "transcript_raw", "body": "x"},
    {"purpose": "image", "mediatype": "image/png", "body": "x"},
    {"purpose": "doc", "mimetype": "application/pdf", "body": "x"}
  ]
}`

func TestDiet(t *testing.T) {
	tests := []struct {
		name  string
		opts  map[string]any
		check func(t *testing.T, doc map[string]any)
	}{
		{
			name: "nothing asked, nothing removed",
			opts: nil,
			check: func(t *testing.T, doc map[string]any) {
				if dialogs(doc)[0]["body"] != "UklGRg==" || doc["analysis"] == nil || len(doc["attachments"].([]any)) != 4 {
					t.Fatalf("document changed: %v", doc)
				}
			},
		},
		{
			name: "remove_dialog_body empties bodies as conserver does",
			opts: map[string]any{"remove_dialog_body": true},
			check: func(t *testing.T, doc map[string]any) {
				d := dialogs(doc)
				if d[0]["body"] != "" || d[1]["body"] != "" {
					t.Fatalf("bodies left: %v", d)
				}
				if _, added := d[2]["body"]; added {
					t.Fatal("a body was added to a dialog that had none")
				}
			},
		},
		{
			name: "remove_analysis",
			opts: map[string]any{"remove_analysis": true},
			check: func(t *testing.T, doc map[string]any) {
				if _, ok := doc["analysis"]; ok {
					t.Fatal("analysis kept")
				}
			},
		},
		{
			name: "remove_attachment_types by purpose, legacy type and media type",
			opts: map[string]any{"remove_attachment_types": []any{"transcript_raw", "image/png", "application/pdf"}},
			check: func(t *testing.T, doc map[string]any) {
				atts := doc["attachments"].([]any)
				if len(atts) != 1 || atts[0].(map[string]any)["purpose"] != "tags" {
					t.Fatalf("attachments left: %v", atts)
				}
			},
		},
		{
			name: "remove_system_prompts in objects and JSON string bodies",
			opts: map[string]any{"remove_system_prompts": true},
			check: func(t *testing.T, doc map[string]any) {
				raw, _ := json.Marshal(doc)
				if strings.Contains(string(raw), "system_prompt") {
					t.Fatalf("system_prompt left: %s", raw)
				}
				a := doc["analysis"].([]any)[0].(map[string]any)
				if a["body"] != `{"text":"hi"}` || a["vendor_schema"].(map[string]any)["model"] != "m" {
					t.Fatalf("analysis damaged: %v", a)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v := parseVCon(t, dietDoc)
			if res := run(t, mustNew(t, "links.diet", tc.opts, Deps{}), v); !continues(res) {
				t.Fatalf("result %+v, want Continue", res)
			}
			tc.check(t, v.Doc())
		})
	}
}

func dialogs(doc map[string]any) []map[string]any {
	var out []map[string]any
	for _, d := range doc["dialog"].([]any) {
		out = append(out, d.(map[string]any))
	}
	return out
}

func TestDietPostMedia(t *testing.T) {
	tests := []struct {
		name    string
		status  int
		answer  string
		wantErr string
	}{
		{name: "stored, dialog points at the copy", status: 200, answer: `{"url":"https://media.example/abc"}`},
		{name: "201 is success too", status: 201, answer: `{"url":"https://media.example/abc"}`},
		{name: "server error keeps the body", status: 500, answer: `oops`, wantErr: "status 500"},
		{name: "answer without url keeps the body", status: 200, answer: `{}`, wantErr: `no "url"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var posts []map[string]any
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				var p map[string]any
				data, _ := io.ReadAll(r.Body)
				if err := json.Unmarshal(data, &p); err != nil || r.Header.Get("Content-Type") != "application/json" {
					http.Error(w, "bad request", 400)
					return
				}
				posts = append(posts, p)
				w.WriteHeader(tc.status)
				_, _ = io.WriteString(w, tc.answer)
			}))
			defer srv.Close()
			l := mustNew(t, "links.diet", map[string]any{"remove_dialog_body": true, "post_media_to_url": srv.URL + "/store?token=s3cret"},
				Deps{HTTP: srv.Client()})
			v := parseVCon(t, dietDoc)
			_, err := l.Run(context.Background(), v)
			if len(posts) != 1 {
				t.Fatalf("%d posts, want 1 (only the non-empty body)", len(posts))
			}
			if posts[0]["content"] != "UklGRg==" || posts[0]["vcon_uuid"] != "u1" {
				t.Fatalf("payload %v, want conserver's {content, vcon_uuid, dialog_id}", posts[0])
			}
			d := dialogs(v.Doc())[0]
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "s3cret") {
					t.Fatalf("error %q leaks the URL's query", err)
				}
				if d["body"] != "UklGRg==" {
					t.Fatal("body dropped although the upload failed")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := d["body"]; ok || d["url"] != "https://media.example/abc" {
				t.Fatalf("dialog %v, want url set and body removed", d)
			}
		})
	}
}

func TestDietBadOptions(t *testing.T) {
	checkBadOptions(t, "links.diet", Deps{}, []badOptionCase{
		{name: "bool as string", opts: map[string]any{"remove_analysis": "yes"}, want: `option "remove_analysis": want true or false`},
		{name: "types not a list", opts: map[string]any{"remove_attachment_types": int64(5)}, want: `option "remove_attachment_types": want a list of strings, got 5`},
		{name: "post url scheme", opts: map[string]any{"post_media_to_url": "ftp://host/x"}, want: `option "post_media_to_url": want an absolute http:// or https:// URL`},
		{name: "s3 upload", opts: map[string]any{"s3_bucket": "media"}, want: `option "s3_bucket": uploading dialog bodies to S3 is not supported by this link; use storage.s3`},
	})
	if _, err := New("ok", "links.diet", map[string]any{"s3_bucket": "", "aws_region": "us-east-1"}, Deps{}); err != nil {
		t.Fatalf("empty S3 options refused: %v", err)
	}
}

// TestDietSystemPromptsInBodies: a body names the key plainly or with
// escapes, or not at all (then it is left as it is, not re-encoded).
func TestDietSystemPromptsInBodies(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{`{"system_prompt":"x","t":1}`, `{"t":1}`},
		{`{"\u0073ystem_prompt":"x","t":1}`, `{"t":1}`},
		{`{"t":1, "words": [ {"w": "caf\u00e9"} ]}`, `{"t":1, "words": [ {"w": "caf\u00e9"} ]}`},
		{`{"t": 1.50, "prompt": "system"}`, `{"t": 1.50, "prompt": "system"}`},
	} {
		v := vcon.New("u1")
		v.Append(vcon.Analysis, map[string]any{"type": "summary", "encoding": "json", "body": tc.body})
		run(t, mustNew(t, "links.diet", map[string]any{"remove_system_prompts": true}, Deps{}), v)
		if got := v.List(vcon.Analysis)[0]["body"]; got != tc.want {
			t.Errorf("body %s became %s, want %s", tc.body, got, tc.want)
		}
	}
}
