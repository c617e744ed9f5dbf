package pipeline

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/vcon-operator/vcon-operator/internal/config"
	"github.com/vcon-operator/vcon-operator/internal/links"
	"github.com/vcon-operator/vcon-operator/internal/storage"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// TestTranscribeNeedsFFmpeg: a recording that is not WAV and must be split
// dead-letters its vCon on a worker without ffmpeg, with a reason that
// says what to install; the vendor is never called.
func TestTranscribeNeedsFFmpeg(t *testing.T) {
	e := newEnv(t)
	media := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audio/mpeg")
		_, _ = w.Write(append([]byte("ID3\x04"), bytes.Repeat([]byte{0xFF, 0xFB, 0x90, 0x00}, 1000)...))
	}))
	defer media.Close()
	vendor := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the vendor was called: %s", r.URL.Path)
		http.Error(w, "no", http.StatusTeapot)
	}))
	defer vendor.Close()
	ch := e.chain(t, "main", []string{"in"}, []string{"out"}, []mod{{name: "transcribe", module: "links.openai_transcribe", opts: map[string]any{
		"OPENAI_API_KEY": "sk-test", "base_url": vendor.URL, "allow_private_networks": true,
		"max_upload_bytes": 2000, "ffmpeg_path": "/nonexistent/ffmpeg"}}}, nil)
	p, _, _ := e.processor(ch, testOptions(), "w1")
	uuid := testUUID(1)
	e.putBody(t, uuid, []byte(`{"vcon":"0.0.1","uuid":"`+uuid+`","created_at":"2024-03-05T10:00:00Z","parties":[{"tel":"+15551230000"}],
	  "dialog":[{"type":"recording","url":"`+media.URL+`/call.mp3","duration":600,"parties":[0]}]}`), time.Hour)
	if err := e.rdb.RPush(t.Context(), "in", uuid).Err(); err != nil {
		t.Fatal(err)
	}
	e.runOnce(t, p, uuid)
	if got := e.whereIs(t, uuid, "in", []string{"out"}); len(got) != 1 || got[0] != "dlq" {
		t.Fatalf("vCon is in %v, want the DLQ", got)
	}
	r := e.reason(t, uuid)
	for _, want := range []string{"transcribe dialog 0", "must be split", "needs ffmpeg", `"/nonexistent/ffmpeg" was not found`, "install ffmpeg"} {
		if !strings.Contains(r.Reason, want) {
			t.Errorf("reason %q\nwant it to contain %q", r.Reason, want)
		}
	}
	if r.Step != "link transcribe" {
		t.Errorf("step %q, want link transcribe", r.Step)
	}
}

// TestBuildLabelsUsageByChain: a link two chains share is built once per
// chain, and what its calls cost is counted under each chain's name.
func TestBuildLabelsUsageByChain(t *testing.T) {
	model := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"choices":[{"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":{"prompt_tokens":7,"completion_tokens":2}}`)
	}))
	defer model.Close()
	cfg, err := config.Parse([]byte(`
links:
  summarize: {module: links.analyze, options: {OPENAI_API_KEY: sk-x, base_url: "`+model.URL+`", model: m1, source: {text_location: body}}}
chains:
  sales:   {links: [summarize], ingress_lists: [in-sales]}
  support: {links: [summarize], ingress_lists: [in-support]}
`), nil)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	chains, closeAll, err := Build(context.Background(), cfg, "", links.Deps{HTTP: http.DefaultClient, Metrics: reg}, storage.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeAll()
	for i, ch := range chains {
		for range i + 1 { // sales once, support twice
			v, _ := vcon.Parse([]byte(`{"uuid":"u1","dialog":[{"type":"text","body":"x"}],"analysis":[{"type":"transcript","dialog":0,"vendor":"x","encoding":"none","body":"hi"}]}`))
			if _, err := ch.Links[0].Link.Run(context.Background(), v); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := `
# HELP vcon_ai_tokens_total Tokens that LLM and transcription calls were billed, by chain, link, model and kind (input or output).
# TYPE vcon_ai_tokens_total counter
vcon_ai_tokens_total{chain="sales",kind="input",link="summarize",model="m1"} 7
vcon_ai_tokens_total{chain="sales",kind="output",link="summarize",model="m1"} 2
vcon_ai_tokens_total{chain="support",kind="input",link="summarize",model="m1"} 14
vcon_ai_tokens_total{chain="support",kind="output",link="summarize",model="m1"} 4
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "vcon_ai_tokens_total"); err != nil {
		t.Error(err)
	}
}
