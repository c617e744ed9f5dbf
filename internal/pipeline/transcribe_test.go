package pipeline

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
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
