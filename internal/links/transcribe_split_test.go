package links

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/audio/audiotest"
)

// The long-recording tests: a generated recording of tones (the "speech")
// and silences, whose every tone is known, goes to local vendor servers
// that check each upload, "hear" its tones and answer in the vendor's wire
// format with times relative to the upload.

const splitRate = 16000

// toneRun is a stretch of sound in a recording.
type toneRun struct {
	start, end float64
	hz         int
}

// layout builds a recording from the test's description and remembers
// where its tones are.
type layout struct {
	segs  []audiotest.Segment
	tones []toneRun
	t     float64
	n     int
}

func (l *layout) tone(seconds float64, hz int) {
	l.segs = append(l.segs, audiotest.Tone(seconds, float64(hz)))
	l.tones = append(l.tones, toneRun{l.t, l.t + seconds, hz})
	l.t += seconds
}

func (l *layout) quiet(seconds float64) {
	l.segs = append(l.segs, audiotest.Quiet(seconds))
	l.t += seconds
}

// talk fills the recording up to until with utterances of 9.5 s, each
// followed by half a second of silence (shorter than silence_len).
func (l *layout) talk(until float64) {
	for l.t+10 <= until {
		l.tone(9.5, 300+100*(l.n%7))
		l.n++
		l.quiet(0.5)
	}
	if r := until - l.t; r > 1 {
		l.tone(r-0.5, 1000)
		l.quiet(0.5)
	} else if r > 0 {
		l.quiet(r)
	}
}

// fortyMinutes is 40 minutes at 16 kHz mono (76.8 MB): with the 25 MB
// bound (781 s) it needs four parts. Part 1 ends in the silence at
// 699.5-703 s; part 2 finds no silence near its bound, inside a 400 s
// monologue, and is cut there; part 3 has two silences in reach and ends
// in the later one, at 2199.5-2203 s.
func fortyMinutes() *layout {
	l := &layout{}
	l.talk(700)
	l.quiet(3)
	l.talk(1200)
	l.tone(400, 250)
	l.quiet(0.5)
	l.talk(2100)
	l.quiet(3)
	l.talk(2200)
	l.quiet(3)
	l.talk(2400)
	return l
}

// hear finds the tones in 16-bit mono PCM: 10 ms windows whose mean
// amplitude is audible, joined into runs; the pitch from zero crossings.
// Times are relative to the samples' start.
func hear(pcm []byte, rate int) []toneRun {
	const win = 160
	n := len(pcm) / 2
	sample := func(i int) int16 { return int16(binary.LittleEndian.Uint16(pcm[2*i:])) }
	var runs []toneRun
	runStart := -1
	flush := func(end int) {
		if runStart < 0 {
			return
		}
		crossings := 0
		for i := runStart + 1; i < end; i++ {
			if (sample(i-1) < 0) != (sample(i) < 0) {
				crossings++
			}
		}
		secs := float64(end-runStart) / float64(rate)
		hz := int(math.Round(float64(crossings)/2/secs/10) * 10)
		runs = append(runs, toneRun{float64(runStart) / float64(rate), float64(end) / float64(rate), hz})
		runStart = -1
	}
	for w := 0; w < n; w += win {
		end := min(w+win, n)
		var sum float64
		for i := w; i < end; i++ {
			sum += math.Abs(float64(sample(i)))
		}
		if sum/float64(end-w) > 1000 {
			if runStart < 0 {
				runStart = w
			}
			continue
		}
		flush(w)
	}
	flush(n)
	return runs
}

// checkWAVPart checks an upload independently of internal/audio: a
// canonical 16 kHz mono 16-bit header whose sizes match the file. It
// returns the samples.
func checkWAVPart(file []byte) ([]byte, error) {
	if len(file) < 44 || string(file[0:4]) != "RIFF" || string(file[8:16]) != "WAVEfmt " || string(file[36:40]) != "data" {
		return nil, fmt.Errorf("not a canonical WAV header: %q", file[:min(len(file), 44)])
	}
	if got := binary.LittleEndian.Uint32(file[4:]); int(got) != len(file)-8 {
		return nil, fmt.Errorf("RIFF size %d, file %d bytes", got, len(file))
	}
	if binary.LittleEndian.Uint16(file[20:]) != 1 || binary.LittleEndian.Uint16(file[22:]) != 1 || binary.LittleEndian.Uint32(file[24:]) != splitRate || binary.LittleEndian.Uint16(file[34:]) != 16 {
		return nil, fmt.Errorf("format is not 16 kHz mono 16-bit PCM: % x", file[20:36])
	}
	size := int(binary.LittleEndian.Uint32(file[40:]))
	if 44+size+size%2 != len(file) {
		return nil, fmt.Errorf("data chunk says %d bytes, file has %d after the header", size, len(file)-44)
	}
	return file[44 : 44+size], nil
}

// splitUpload is one part as a fake vendor received it.
type splitUpload struct {
	name string
	pcm  []byte
	runs []toneRun // what the fake heard, relative to the part
}

// splitVendor is a fake transcription vendor that refuses uploads over
// limit or that are not WAV, hears the tones of each part and answers with
// answer(). Uploads named in waitFor are held until the named upload
// arrives, which proves parts go out together, not one after another.
type splitVendor struct {
	t        *testing.T
	limit    int
	mu       sync.Mutex
	uploads  []splitUpload
	arrived  map[string]chan struct{}
	waitFor  map[string]string
	inFlight atomic.Int32
	maxSeen  atomic.Int32
}

func newSplitVendor(t *testing.T, limit int, waitFor map[string]string) *splitVendor {
	v := &splitVendor{t: t, limit: limit, arrived: map[string]chan struct{}{}, waitFor: waitFor}
	return v
}

func (v *splitVendor) signal(name string) chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	ch, ok := v.arrived[name]
	if !ok {
		ch = make(chan struct{})
		v.arrived[name] = ch
	}
	return ch
}

// receive checks one upload and records what it heard; a non-nil reply is
// the refusal to send.
func (v *splitVendor) receive(name string, file []byte) (*splitUpload, *fakeReply) {
	n := v.inFlight.Add(1)
	defer v.inFlight.Add(-1)
	for {
		m := v.maxSeen.Load()
		if n <= m || v.maxSeen.CompareAndSwap(m, n) {
			break
		}
	}
	if len(file) > v.limit {
		return nil, &fakeReply{status: 413, body: fmt.Sprintf(`{"error":{"message":"Maximum content size limit (%d) exceeded (%d bytes read)"}}`, v.limit, len(file))}
	}
	pcm, err := checkWAVPart(file)
	if err != nil {
		return nil, &fakeReply{status: 400, body: fmt.Sprintf(`{"error":{"message":%q}}`, err.Error())}
	}
	close(v.signal(name))
	if other, ok := v.waitFor[name]; ok {
		select {
		case <-v.signal(other):
		case <-time.After(30 * time.Second):
			return nil, &fakeReply{status: 500, body: fmt.Sprintf(`{"error":{"message":"%s never arrived while %s waited: parts are not sent concurrently"}}`, other, name)}
		}
	}
	up := splitUpload{name: name, pcm: pcm, runs: hear(pcm, splitRate)}
	v.mu.Lock()
	v.uploads = append(v.uploads, up)
	v.mu.Unlock()
	return &up, nil
}

// sorted returns the uploads in part order (by their file names).
func (v *splitVendor) sorted() []splitUpload {
	v.mu.Lock()
	defer v.mu.Unlock()
	out := append([]splitUpload(nil), v.uploads...)
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// whisperAnswer is verbose_json as OpenAI's whisper-1 answers it.
func whisperAnswer(up *splitUpload) fakeReply {
	seconds := float64(len(up.pcm)/2) / splitRate
	var segs, words []any
	var texts []string
	for i, r := range up.runs {
		text := fmt.Sprintf(" tone %d", r.hz)
		texts = append(texts, text)
		segs = append(segs, map[string]any{"id": i, "seek": 0, "start": r.start, "end": r.end, "text": text,
			"tokens": []int{50364, 1000 + r.hz}, "temperature": 0, "avg_logprob": -0.25, "compression_ratio": 1.2, "no_speech_prob": 0.01})
		words = append(words, map[string]any{"word": "tone", "start": r.start, "end": r.end})
	}
	b, _ := json.Marshal(map[string]any{"task": "transcribe", "language": "english", "duration": seconds,
		"text": strings.Join(texts, ""), "segments": segs, "words": words,
		"usage": map[string]any{"type": "duration", "seconds": math.Ceil(seconds)}})
	return fakeReply{status: 200, body: string(b)}
}

// serveRecording serves one recording at /rec.<ext>.
func serveRecording(t *testing.T, data []byte, contentType string) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(data)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// whisperTranscript is the part of verbose_json the tests read back.
type whisperTranscript struct {
	Text     string  `json:"text"`
	Duration float64 `json:"duration"`
	Language string  `json:"language"`
	Segments []struct {
		ID    int     `json:"id"`
		Seek  int     `json:"seek"`
		Start float64 `json:"start"`
		End   float64 `json:"end"`
		Text  string  `json:"text"`
	} `json:"segments"`
	Words []struct {
		Start float64 `json:"start"`
		End   float64 `json:"end"`
	} `json:"words"`
	Usage struct {
		Type    string  `json:"type"`
		Seconds float64 `json:"seconds"`
	} `json:"usage"`
}

func storedTranscript(t *testing.T, analysis map[string]any, into any) {
	t.Helper()
	body, _ := analysis["body"].(string)
	if err := json.Unmarshal([]byte(body), into); err != nil {
		t.Fatalf("transcript body: %v", err)
	}
}

var partName = regexp.MustCompile(`^rec-part(\d{3})\.wav$`)

// TestTranscribeLongRecording sends a 40-minute WAV to a Whisper-style
// vendor that takes at most 25 MB: four parts, each a valid WAV under the
// limit, cut in silences where there are some, sent two at a time and
// joined into one verbose_json transcript on the recording's clock.
func TestTranscribeLongRecording(t *testing.T) {
	instantVendorRetries(t)
	rec := fortyMinutes()
	wav := audiotest.WAV(splitRate, 1, rec.segs...)
	pcm := wav[44:]
	const limit = 25_000_000
	// part001 is answered only once part002 has arrived: the parts must
	// be in flight together, and joined by position, not by arrival.
	vendor := newSplitVendor(t, limit, map[string]string{"rec-part001.wav": "rec-part002.wav"})
	fake := newVendorFakeFunc(t, func(r fakeRequest) fakeReply {
		up := transcribeParseUpload(t, r)
		if up.fields["model"] != "whisper-1" || up.fields["response_format"] != "verbose_json" || up.fileType != "audio/wav" {
			return fakeReply{status: 400, body: fmt.Sprintf(`{"error":{"message":"unexpected upload %q %v"}}`, up.filename, up.fields)}
		}
		got, refusal := vendor.receive(up.filename, []byte(up.file))
		if refusal != nil {
			return *refusal
		}
		return whisperAnswer(got)
	})
	media := serveRecording(t, wav, "audio/wav")
	l := newTestLink(t, "long-openai", "links.transcribe", map[string]any{"vendor": "openai", "vendor_options": map[string]any{
		"OPENAI_API_KEY": "sk-long", "base_url": fake.srv.URL + "/v1", "allow_private_networks": true,
		"model": "whisper-1", "response_format": "verbose_json", "max_chunk_duration": 0, "max_concurrent_parts": 2}})
	v := mustParseVCon(t, `{"uuid":"018f0000-0000-8000-8000-0000000000bb","dialog":[{"type":"recording","url":"`+media.URL+`/calls/rec.wav","duration":2400}]}`)
	if _, err := l.Run(context.Background(), v); err != nil {
		t.Fatalf("Run: %v", err)
	}

	// The parts: in order, each under the limit, together exactly the
	// recording, cut where the layout says.
	ups := vendor.sorted()
	if len(ups) != 4 {
		t.Fatalf("%d uploads, want 4", len(ups))
	}
	var joined []byte
	offsets := make([]float64, len(ups))
	for i, up := range ups {
		if m := partName.FindStringSubmatch(up.name); m == nil || m[1] != fmt.Sprintf("%03d", i+1) {
			t.Errorf("upload %d is named %q", i, up.name)
		}
		if size := 44 + len(up.pcm) + len(up.pcm)%2; size > limit {
			t.Errorf("part %d is %d bytes, over %d", i+1, size, limit)
		}
		offsets[i] = float64(len(joined)/2) / splitRate
		joined = append(joined, up.pcm...)
	}
	if !bytes.Equal(joined, pcm) {
		t.Fatalf("the parts are not the recording: %d bytes of samples, want %d", len(joined), len(pcm))
	}
	maxPart := float64((limit-44-1)/2) / splitRate
	wantCuts := []struct {
		lo, hi float64
		why    string
	}{
		{701.225, 701.275, "the middle of the silence at 699.5-703 s"},
		{701.25 + maxPart - 0.03, 701.25 + maxPart + 0.03, "the bound, inside the monologue"},
		{2201.225, 2201.275, "the middle of the later silence, at 2199.5-2203 s"},
	}
	for i, c := range wantCuts {
		if cut := offsets[i+1]; cut < c.lo || cut > c.hi {
			t.Errorf("part %d starts at %.4f s, want %s (%.2f-%.2f)", i+2, cut, c.why, c.lo, c.hi)
		}
	}
	if n := vendor.maxSeen.Load(); n != 2 {
		t.Errorf("%d parts were in flight at once, want max_concurrent_parts 2", n)
	}

	// The transcript: one analysis, every segment on the recording's clock.
	ts := analysesOfType(v, "transcript")
	if len(ts) != 1 || ts[0]["vendor"] != "openai" {
		t.Fatalf("transcripts = %v", ts)
	}
	var got whisperTranscript
	storedTranscript(t, ts[0], &got)
	var want []toneRun
	for i, up := range ups {
		for _, r := range up.runs {
			want = append(want, toneRun{r.start + offsets[i], r.end + offsets[i], r.hz})
		}
	}
	if len(got.Segments) != len(want) || len(got.Words) != len(want) {
		t.Fatalf("%d segments and %d words, want %d", len(got.Segments), len(got.Words), len(want))
	}
	var texts []string
	seekReported := false
	for i, s := range got.Segments {
		w := want[i]
		if s.ID != i || math.Abs(s.Start-w.start) > 1e-6 || math.Abs(s.End-w.end) > 1e-6 || s.Text != fmt.Sprintf(" tone %d", w.hz) {
			t.Errorf("segment %d = %+v, want id %d %.6f-%.6f tone %d", i, s, i, w.start, w.end, w.hz)
		}
		if wd := got.Words[i]; math.Abs(wd.Start-w.start) > 1e-6 || math.Abs(wd.End-w.end) > 1e-6 {
			t.Errorf("word %d at %.6f-%.6f, want %.6f-%.6f", i, wd.Start, wd.End, w.start, w.end)
		}
		texts = append(texts, strings.TrimSpace(s.Text))
		partOf := sort.SearchFloat64s(offsets, s.Start+1e-9) - 1
		if wantSeek := int(math.Round(offsets[partOf] * 100)); s.Seek != wantSeek && !seekReported {
			t.Errorf("segment %d seek %d, want %d (its part's start in 10 ms frames)", i, s.Seek, wantSeek)
			seekReported = true
		}
	}
	if want := strings.Join(texts, " "); got.Text != want {
		t.Errorf("text is not the parts' texts in order:\n got %.200q\nwant %.200q", got.Text, want)
	}
	wantSeconds := 0.0
	for _, up := range ups {
		wantSeconds += math.Ceil(float64(len(up.pcm)/2) / splitRate)
	}
	if got.Duration != 2400 || got.Usage.Type != "duration" || got.Usage.Seconds != wantSeconds || got.Language != "english" {
		t.Errorf("duration %v, usage %+v, language %q; want 2400, the parts' seconds summed, english", got.Duration, got.Usage, got.Language)
	}

	// Against the layout: every tone heard once, where it is, except the
	// monologue, cut in two at the bound.
	if len(want) != len(rec.tones)+1 {
		t.Fatalf("%d tones heard, want the %d of the recording plus the split monologue", len(want), len(rec.tones))
	}
	j := 0
	for _, tone := range rec.tones {
		h := want[j]
		if tone.hz == 250 {
			if math.Abs(h.end-offsets[2]) > 1e-6 || math.Abs(want[j+1].start-offsets[2]) > 1e-6 {
				t.Errorf("monologue heard as %v and %v, want it cut at %.4f", h, want[j+1], offsets[2])
			}
			h.end = want[j+1].end
			j++
		}
		if math.Abs(h.start-tone.start) > 0.011 || math.Abs(h.end-tone.end) > 0.011 || h.hz != tone.hz {
			t.Errorf("tone %v heard as %v", tone, h)
		}
		j++
	}
}

// deepgramAnswer is a pre-recorded answer with words and paragraphs.
func deepgramAnswer(up *splitUpload) fakeReply {
	seconds := float64(len(up.pcm)/2) / splitRate
	var words, paras []any
	var texts, ptexts []string
	for _, r := range up.runs {
		texts = append(texts, fmt.Sprintf("tone %d", r.hz))
		ptexts = append(ptexts, fmt.Sprintf("Tone %d.", r.hz))
		words = append(words, map[string]any{"word": "tone", "start": r.start, "end": r.end, "confidence": 0.9, "punctuated_word": "Tone"})
		paras = append(paras, map[string]any{"start": r.start, "end": r.end, "num_words": 2,
			"sentences": []any{map[string]any{"text": fmt.Sprintf("Tone %d.", r.hz), "start": r.start, "end": r.end}}})
	}
	confidence := 0.6
	if seconds > 100 {
		confidence = 0.9
	}
	b, _ := json.Marshal(map[string]any{
		"metadata": map[string]any{"request_id": "r", "duration": seconds, "channels": 1},
		"results": map[string]any{"channels": []any{map[string]any{"alternatives": []any{map[string]any{
			"transcript": strings.Join(texts, " "), "confidence": confidence, "words": words,
			"paragraphs": map[string]any{"transcript": "\n" + strings.Join(ptexts, " "), "paragraphs": paras},
		}}}}},
	})
	return fakeReply{status: 200, body: string(b)}
}

// deepgramTranscript is the part of Deepgram's alternative the tests read.
type deepgramTranscript struct {
	Transcript       string  `json:"transcript"`
	Confidence       float64 `json:"confidence"`
	DetectedLanguage string  `json:"detected_language"`
	Words            []struct {
		Start float64 `json:"start"`
		End   float64 `json:"end"`
	} `json:"words"`
	Paragraphs struct {
		Transcript string `json:"transcript"`
		Paragraphs []struct {
			Start     float64 `json:"start"`
			End       float64 `json:"end"`
			Sentences []struct {
				Start float64 `json:"start"`
				End   float64 `json:"end"`
			} `json:"sentences"`
		} `json:"paragraphs"`
	} `json:"paragraphs"`
}

// requireFFmpegBinary fails the test when ffmpeg is missing: the tests that
// need it must not pass by skipping.
func requireFFmpegBinary(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal("ffmpeg is not on PATH; install it: hack/deps.sh (apt-get install -y ffmpeg)")
	}
	return bin
}

// mp3Of encodes a WAV as a 128 kbit/s MP3 with ffmpeg.
func mp3Of(t *testing.T, wav []byte) []byte {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.wav"), filepath.Join(dir, "out.mp3")
	if err := os.WriteFile(in, wav, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(requireFFmpegBinary(t), "-nostdin", "-loglevel", "error", "-i", in, "-c:a", "libmp3lame", "-b:a", "128k", out)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestTranscribeSplitCases covers the other vendors' shapes and the
// formats that are not WAV.
func TestTranscribeSplitCases(t *testing.T) {
	requireFFmpegBinary(t)
	sixMinutes := &layout{}
	sixMinutes.talk(100)
	sixMinutes.quiet(3)
	sixMinutes.talk(360)
	sixWAV := audiotest.WAV(splitRate, 1, sixMinutes.segs...)
	minute := &layout{}
	minute.talk(60)
	minuteMP3 := mp3Of(t, audiotest.WAV(splitRate, 1, minute.segs...))
	short := audiotest.WAV(splitRate, 1, audiotest.Tone(5, 440))

	tests := []struct {
		name        string
		vendor      string // openai or deepgram
		opts        map[string]any
		recording   []byte
		contentType string
		duration    float64
		emptyPATH   bool
		limit       int
		wantParts   int
		wantErr     []string
		check       func(t *testing.T, ups []splitUpload, offsets []float64, analysis map[string]any)
	}{
		{
			name:   "deepgram: words, paragraphs and sentences shifted, confidence weighted by length",
			vendor: "deepgram", recording: sixWAV, contentType: "audio/wav", duration: 360,
			opts:  map[string]any{"max_upload_bytes": 4_000_000, "max_concurrent_parts": 1, "minimum_confidence": 0.7},
			limit: 4_000_000, wantParts: 4,
			check: func(t *testing.T, ups []splitUpload, offsets []float64, a map[string]any) {
				// Part 1 ends in the silence at 99.5-103 s: 101.25 s.
				if math.Abs(offsets[1]-101.25) > 0.025 {
					t.Errorf("part 2 starts at %.4f, want in the middle of the silence at 99.5-103 s", offsets[1])
				}
				var got deepgramTranscript
				storedTranscript(t, a, &got)
				var wantConf, total float64
				var words []toneRun
				var texts, ptexts []string
				for i, up := range ups {
					secs := float64(len(up.pcm)/2) / splitRate
					c := 0.6
					if secs > 100 {
						c = 0.9
					}
					wantConf += c * secs
					total += secs
					var tx, px []string
					for _, r := range up.runs {
						words = append(words, toneRun{r.start + offsets[i], r.end + offsets[i], r.hz})
						tx = append(tx, fmt.Sprintf("tone %d", r.hz))
						px = append(px, fmt.Sprintf("Tone %d.", r.hz))
					}
					texts = append(texts, strings.Join(tx, " "))
					ptexts = append(ptexts, "\n"+strings.Join(px, " "))
				}
				if math.Abs(got.Confidence-wantConf/total) > 1e-9 {
					t.Errorf("confidence %v, want %v", got.Confidence, wantConf/total)
				}
				if got.Transcript != strings.Join(texts, " ") || got.Paragraphs.Transcript != strings.Join(ptexts, "") || got.DetectedLanguage != "en" {
					t.Errorf("transcript %.80q, paragraphs %.80q, language %q", got.Transcript, got.Paragraphs.Transcript, got.DetectedLanguage)
				}
				if len(got.Words) != len(words) || len(got.Paragraphs.Paragraphs) != len(words) {
					t.Fatalf("%d words, %d paragraphs; want %d", len(got.Words), len(got.Paragraphs.Paragraphs), len(words))
				}
				for i, w := range words {
					p := got.Paragraphs.Paragraphs[i]
					for _, at := range [][2]float64{{got.Words[i].Start, got.Words[i].End}, {p.Start, p.End}, {p.Sentences[0].Start, p.Sentences[0].End}} {
						if math.Abs(at[0]-w.start) > 1e-6 || math.Abs(at[1]-w.end) > 1e-6 {
							t.Errorf("entry %d at %v, want %.6f-%.6f", i, at, w.start, w.end)
						}
					}
				}
			},
		},
		{
			name:   "a WAV under the limit goes as it is",
			vendor: "openai", recording: short, contentType: "audio/wav", duration: 5,
			limit: 25_000_000, wantParts: 1,
			check: func(t *testing.T, ups []splitUpload, _ []float64, _ map[string]any) {
				if ups[0].name != "rec.wav" || !bytes.Equal(ups[0].pcm, short[44:]) {
					t.Errorf("upload %q was changed", ups[0].name)
				}
			},
		},
		{
			name:   "mp3 over the limit: converted by ffmpeg, cut in the gaps",
			vendor: "openai", recording: minuteMP3, contentType: "audio/mpeg", duration: 60,
			opts:  map[string]any{"max_upload_bytes": 400_000, "silence_len": 400},
			limit: 400_000, wantParts: 6,
			check: func(t *testing.T, ups []splitUpload, offsets []float64, a map[string]any) {
				for i, off := range offsets[1:] {
					// Gaps are at 9.5-10 s, 19.5-20 s, ...: the middle of one.
					if frac := math.Mod(off, 10); math.Abs(frac-9.75) > 0.06 {
						t.Errorf("part %d starts at %.3f s, not in a gap", i+2, off)
					}
				}
				var got whisperTranscript
				storedTranscript(t, a, &got)
				if len(got.Segments) != 6 || math.Abs(got.Duration-60) > 0.1 {
					t.Errorf("%d segments over %.2f s, want the 6 utterances of 60 s", len(got.Segments), got.Duration)
				}
				for i, s := range got.Segments {
					if start := float64(i) * 10; math.Abs(s.Start-start) > 0.06 {
						t.Errorf("utterance %d at %.3f s, want %.0f s", i, s.Start, start)
					}
				}
			},
		},
		{
			name:   "mp3 over the limit without ffmpeg (ffmpeg_path missing)",
			vendor: "openai", recording: minuteMP3, contentType: "audio/mpeg", duration: 60,
			opts:    map[string]any{"max_upload_bytes": 400_000, "ffmpeg_path": "/nonexistent/ffmpeg"},
			wantErr: []string{"transcribe dialog 0: recording (audio/mpeg, ", "bytes is over max_upload_bytes 400000) must be split", "needs ffmpeg", `"/nonexistent/ffmpeg" was not found`, "install ffmpeg"},
		},
		{
			name:   "mp3 over the limit without ffmpeg (not on PATH)",
			vendor: "openai", recording: minuteMP3, contentType: "audio/mpeg", duration: 60, emptyPATH: true,
			opts:    map[string]any{"max_upload_bytes": 400_000},
			wantErr: []string{"needs ffmpeg", `"ffmpeg" was not found`, "install ffmpeg"},
		},
		{
			name:   "mp3 longer than max_chunk_duration without ffmpeg",
			vendor: "openai", recording: minuteMP3, contentType: "audio/mpeg", duration: 60, emptyPATH: true,
			opts:    map[string]any{"max_chunk_duration": 30},
			wantErr: []string{"60 s is over max_chunk_duration 30 s", "needs ffmpeg"},
		},
		{
			name:   "mp3 that fits goes as it is, without ffmpeg",
			vendor: "openai", recording: minuteMP3, contentType: "audio/mpeg", duration: 60, emptyPATH: true,
			limit: 25_000_000, wantParts: 1,
		},
		{
			name:   "a part the vendor refuses fails the recording",
			vendor: "openai", recording: sixWAV, contentType: "audio/wav", duration: 360,
			opts:    map[string]any{"max_upload_bytes": 4_000_000, "max_retries": 0},
			limit:   3_500_000, // the fake takes less than the link sends
			wantErr: []string{"transcribe dialog 0: part ", "of 4 (from ", "HTTP 413", "Maximum content size limit"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			instantVendorRetries(t)
			vendor := newSplitVendor(t, tt.limit, nil)
			var arrivals atomic.Int32
			fake := newVendorFakeFunc(t, func(r fakeRequest) fakeReply {
				if tt.vendor == "deepgram" {
					if r.header.Get("Content-Type") != "audio/wav" {
						return fakeReply{status: 400, body: `{"err_code":"BAD","err_msg":"content type"}`}
					}
					up, refusal := vendor.receive(fmt.Sprintf("upload%03d", arrivals.Add(1)), r.body)
					if refusal != nil {
						return *refusal
					}
					return deepgramAnswer(up)
				}
				up := transcribeParseUpload(t, r)
				file := []byte(up.file)
				if up.fileType == "audio/mpeg" {
					// A whole MP3: the fake cannot hear it; it counts it.
					if !bytes.Equal(file, tt.recording) {
						return fakeReply{status: 400, body: `{"error":{"message":"MP3 changed"}}`}
					}
					vendor.mu.Lock()
					vendor.uploads = append(vendor.uploads, splitUpload{name: up.filename})
					vendor.mu.Unlock()
					return fakeReply{status: 200, body: `{"text":"whole"}`}
				}
				got, refusal := vendor.receive(up.filename, file)
				if refusal != nil {
					return *refusal
				}
				return whisperAnswer(got)
			})
			media := serveRecording(t, tt.recording, tt.contentType)
			vo := map[string]any{"allow_private_networks": true, "minimum_duration": 0}
			if tt.vendor == "deepgram" {
				vo["DEEPGRAM_KEY"], vo["api_url"] = "dg-key", fake.srv.URL+"/v1"
			} else {
				vo["OPENAI_API_KEY"], vo["base_url"] = "sk-key", fake.srv.URL+"/v1"
				vo["model"], vo["response_format"] = "whisper-1", "verbose_json"
			}
			for k, v := range tt.opts {
				vo[k] = v
			}
			l := newTestLink(t, "split-"+tt.vendor, "links.transcribe", map[string]any{"vendor": tt.vendor, "vendor_options": vo})
			ext := map[string]string{"audio/wav": "wav", "audio/mpeg": "mp3"}[tt.contentType]
			v := mustParseVCon(t, fmt.Sprintf(`{"uuid":"u-split","dialog":[{"type":"recording","url":"%s/calls/rec.%s","duration":%v}]}`, media.URL, ext, tt.duration))
			if tt.emptyPATH {
				t.Setenv("PATH", t.TempDir())
			}
			_, err := l.Run(context.Background(), v)
			if len(tt.wantErr) > 0 {
				if err == nil {
					t.Fatal("Run succeeded, want an error")
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("err = %v\nwant it to contain %q", err, w)
					}
				}
				if n := len(analysesOfType(v, "transcript")); n != 0 {
					t.Errorf("%d transcripts stored despite the error", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("Run: %v", err)
			}
			ups := vendor.sorted()
			if len(ups) != tt.wantParts {
				t.Fatalf("%d uploads, want %d", len(ups), tt.wantParts)
			}
			offsets := make([]float64, len(ups))
			at := 0
			for i, up := range ups {
				if size := 44 + len(up.pcm) + len(up.pcm)%2; up.pcm != nil && size > tt.limit {
					t.Errorf("part %d is %d bytes, over %d", i+1, size, tt.limit)
				}
				offsets[i] = float64(at/2) / splitRate
				at += len(up.pcm)
			}
			ts := analysesOfType(v, "transcript")
			if len(ts) != 1 {
				t.Fatalf("%d transcripts, want 1", len(ts))
			}
			if tt.check != nil {
				tt.check(t, ups, offsets, ts[0])
			}
		})
	}
}
