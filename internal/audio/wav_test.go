package audio

import (
	"bytes"
	"encoding/binary"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/audio/audiotest"
)

// chunk renders one RIFF chunk with its pad byte.
func chunk(id string, body []byte) []byte {
	out := append([]byte(id), binary.LittleEndian.AppendUint32(nil, uint32(len(body)))...)
	out = append(out, body...)
	if len(body)%2 == 1 {
		out = append(out, 0)
	}
	return out
}

// fmtBody is a plain 16-byte fmt chunk body.
func fmtBody(tag, channels, rate, bits int) []byte {
	align := channels * ((bits + 7) / 8)
	b := binary.LittleEndian.AppendUint16(nil, uint16(tag))
	b = binary.LittleEndian.AppendUint16(b, uint16(channels))
	b = binary.LittleEndian.AppendUint32(b, uint32(rate))
	b = binary.LittleEndian.AppendUint32(b, uint32(rate*align))
	b = binary.LittleEndian.AppendUint16(b, uint16(align))
	return binary.LittleEndian.AppendUint16(b, uint16(bits))
}

// extensibleBody is a WAVEFORMATEXTENSIBLE fmt body with sub-format tag.
func extensibleBody(sub, channels, rate, bits int) []byte {
	b := fmtBody(formatExtensible, channels, rate, bits)
	b = binary.LittleEndian.AppendUint16(b, 22)
	b = binary.LittleEndian.AppendUint16(b, uint16(bits))
	b = binary.LittleEndian.AppendUint32(b, 4)
	guid := make([]byte, 16)
	binary.LittleEndian.PutUint16(guid, uint16(sub))
	return append(b, guid...)
}

func riff(chunks ...[]byte) []byte {
	body := []byte("WAVE")
	for _, c := range chunks {
		body = append(body, c...)
	}
	return append(append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(len(body)))...), body...)
}

func TestParseWAV(t *testing.T) {
	pcm := bytes.Repeat([]byte{1, 2, 3, 4}, 10) // 10 stereo 16-bit frames
	streaming := riff(chunk("fmt ", fmtBody(formatPCM, 2, 8000, 16)), chunk("data", pcm))
	binary.LittleEndian.PutUint32(streaming[40:], math.MaxUint32)
	tests := []struct {
		name       string
		file       []byte
		wantFrames int
		wantRate   int
		wantChan   int
		wantErr    string
	}{
		{name: "canonical", file: audiotest.WAV(16000, 1, audiotest.Tone(0.5, 440)), wantFrames: 8000, wantRate: 16000, wantChan: 1},
		{name: "LIST and odd-sized chunks before data", file: riff(chunk("fmt ", fmtBody(formatPCM, 2, 8000, 16)), chunk("LIST", []byte("INFOx")), chunk("data", pcm)), wantFrames: 10, wantRate: 8000, wantChan: 2},
		{name: "extensible PCM", file: riff(chunk("fmt ", extensibleBody(formatPCM, 2, 8000, 16)), chunk("data", pcm)), wantFrames: 10, wantRate: 8000, wantChan: 2},
		{name: "streaming size is read to the end", file: streaming, wantFrames: 10, wantRate: 8000, wantChan: 2},
		{name: "partial trailing frame dropped", file: riff(chunk("fmt ", fmtBody(formatPCM, 2, 8000, 16)), chunk("data", append(pcm, 9, 9))), wantFrames: 10, wantRate: 8000, wantChan: 2},
		{name: "data size past the end", file: riff(chunk("fmt ", fmtBody(formatPCM, 2, 8000, 16)), chunk("data", pcm))[:44+20], wantFrames: 5, wantRate: 8000, wantChan: 2},
		{name: "not RIFF", file: []byte("ID3\x03 mp3 bytes here"), wantErr: "not a RIFF/WAVE file"},
		{name: "big-endian RIFX", file: append([]byte("RIFX\x00\x00\x00\x00WAVE"), pcm...), wantErr: "RIFX files are not supported"},
		{name: "no fmt", file: riff(chunk("data", pcm)), wantErr: "data chunk before the fmt chunk"},
		{name: "short fmt", file: riff(chunk("fmt ", []byte{1, 0, 1, 0}), chunk("data", pcm)), wantErr: "too short"},
		{name: "no data", file: riff(chunk("fmt ", fmtBody(formatPCM, 1, 8000, 16))), wantErr: "no data chunk"},
		{name: "zero channels", file: riff(chunk("fmt ", fmtBody(formatPCM, 0, 8000, 16)), chunk("data", pcm)), wantErr: "no channels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := ParseWAV(tt.file)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if w.Frames() != tt.wantFrames || w.SampleRate != tt.wantRate || w.Channels != tt.wantChan {
				t.Errorf("frames %d rate %d channels %d, want %d %d %d", w.Frames(), w.SampleRate, w.Channels, tt.wantFrames, tt.wantRate, tt.wantChan)
			}
		})
	}
}

// TestEncode checks that every part is a WAV of its own with the input's
// format and exactly the frames asked for, padded to an even size.
func TestEncode(t *testing.T) {
	odd := riff(chunk("fmt ", fmtBody(formatPCM, 1, 8000, 8)), chunk("LIST", []byte("abc")), chunk("data", []byte{10, 20, 30, 40, 50, 60, 70}))
	tests := []struct {
		name     string
		file     []byte
		from, to int
	}{
		{"16-bit stereo middle", audiotest.WAV(8000, 2, audiotest.Tone(1, 300)), 100, 4100},
		{"8-bit odd part is padded", odd, 1, 4},
		{"whole", odd, 0, 7},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := ParseWAV(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			part := w.Encode(tt.from, tt.to)
			if len(part)%2 != 0 {
				t.Errorf("part has odd size %d", len(part))
			}
			if got := binary.LittleEndian.Uint32(part[4:8]); int(got) != len(part)-8 {
				t.Errorf("RIFF size %d, file %d", got, len(part))
			}
			p, err := ParseWAV(part)
			if err != nil {
				t.Fatalf("part does not parse: %v", err)
			}
			if p.Frames() != tt.to-tt.from || p.SampleRate != w.SampleRate || p.Channels != w.Channels || p.BitsPerSample != w.BitsPerSample {
				t.Errorf("part %+v, want %d frames of %+v", p, tt.to-tt.from, w)
			}
			if !bytes.Equal(p.data, w.data[tt.from*w.BlockAlign:tt.to*w.BlockAlign]) {
				t.Error("part's samples differ from the input's")
			}
			if len(part) != w.HeaderSize()+len(p.data)+len(p.data)%2 {
				t.Errorf("part is %d bytes, header %d + data %d", len(part), w.HeaderSize(), len(p.data))
			}
		})
	}
}

func TestLevel(t *testing.T) {
	const halfScaleSine = -9.03 // 20*log10(0.5/sqrt(2))
	sine := func(bits int, encode func(v float64) []byte) []byte {
		var data []byte
		for i := 0; i < 8000; i++ {
			data = append(data, encode(0.5*math.Sin(2*math.Pi*400*float64(i)/8000))...)
		}
		return data
	}
	tests := []struct {
		name string
		fmt  []byte
		data []byte
		want float64
	}{
		{"16-bit", fmtBody(formatPCM, 1, 8000, 16), sine(16, func(v float64) []byte { return binary.LittleEndian.AppendUint16(nil, uint16(int16(v*32767))) }), halfScaleSine},
		{"8-bit unsigned", fmtBody(formatPCM, 1, 8000, 8), sine(8, func(v float64) []byte { return []byte{byte(128 + int(math.Round(v*127)))} }), halfScaleSine},
		{"24-bit", fmtBody(formatPCM, 1, 8000, 24), sine(24, func(v float64) []byte {
			x := int32(v * (1<<23 - 1))
			return []byte{byte(x), byte(x >> 8), byte(x >> 16)}
		}), halfScaleSine},
		{"float32 extensible", extensibleBody(formatIEEEFloat, 1, 8000, 32), sine(32, func(v float64) []byte { return binary.LittleEndian.AppendUint32(nil, math.Float32bits(float32(v))) }), halfScaleSine},
		{"µ-law silence", fmtBody(formatMuLaw, 1, 8000, 8), bytes.Repeat([]byte{0xFF}, 800), math.Inf(-1)},
		{"µ-law full scale", fmtBody(formatMuLaw, 1, 8000, 8), bytes.Repeat([]byte{0x80, 0x00}, 400), 20 * math.Log10(32124.0/32768)},
		{"A-law full scale", fmtBody(formatALaw, 1, 8000, 8), bytes.Repeat([]byte{0xAA, 0x2A}, 400), 20 * math.Log10(32256.0/32768)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := ParseWAV(riff(chunk("fmt ", tt.fmt), chunk("data", tt.data)))
			if err != nil {
				t.Fatal(err)
			}
			if !w.canMeasure() {
				t.Fatal("format not measurable")
			}
			got := w.Level(0, w.Frames())
			if math.IsInf(tt.want, -1) != math.IsInf(got, -1) || !math.IsInf(got, -1) && math.Abs(got-tt.want) > 0.1 {
				t.Errorf("Level = %.2f dBFS, want %.2f", got, tt.want)
			}
		})
	}
}

func TestPlan(t *testing.T) {
	const rate = 8000
	sec := func(s float64) int { return int(s * rate) }
	bytesFor := func(seconds float64) int64 { return 44 + 1 + int64(sec(seconds))*2 }
	silence := &Silence{Threshold: -40, MinLength: 2 * time.Second}
	tone, quiet := audiotest.Tone, audiotest.Quiet
	tests := []struct {
		name    string
		file    []byte
		bounds  Bounds
		want    []Span
		wantErr string
	}{
		{
			name:   "fits: one part",
			file:   audiotest.WAV(rate, 1, tone(10, 440)),
			bounds: Bounds{MaxBytes: bytesFor(10), Silence: silence},
			want:   []Span{{0, sec(10)}},
		},
		{
			name:   "no silence: cut at the byte bound",
			file:   audiotest.WAV(rate, 1, tone(70, 440)),
			bounds: Bounds{MaxBytes: bytesFor(30), Silence: silence},
			want:   []Span{{0, sec(30)}, {sec(30), sec(60)}, {sec(60), sec(70)}},
		},
		{
			name:   "the bound counts a larger header (extensible fmt)",
			file:   riff(chunk("fmt ", extensibleBody(formatPCM, 1, rate, 16)), chunk("data", audiotest.WAV(rate, 1, tone(70, 440))[44:])),
			bounds: Bounds{MaxBytes: 68 + 1 + int64(sec(30))*2},
			want:   []Span{{0, sec(30)}, {sec(30), sec(60)}, {sec(60), sec(70)}},
		},
		{
			name:   "cut in the middle of a silence in the last quarter",
			file:   audiotest.WAV(rate, 1, tone(25, 440), quiet(3), tone(20, 300)),
			bounds: Bounds{MaxBytes: bytesFor(30), Silence: silence},
			want:   []Span{{0, sec(26.5)}, {sec(26.5), sec(48)}},
		},
		{
			name:   "the latest long-enough silence wins",
			file:   audiotest.WAV(rate, 1, tone(23, 440), quiet(2), tone(1, 440), quiet(3), tone(1, 440), quiet(1), tone(20, 440)),
			bounds: Bounds{MaxBytes: bytesFor(30), Silence: silence},
			want:   []Span{{0, sec(27.5)}, {sec(27.5), sec(51)}},
		},
		{
			name:   "a silence across the bound is cut within it",
			file:   audiotest.WAV(rate, 1, tone(28, 440), quiet(4), tone(10, 440)),
			bounds: Bounds{MaxBytes: bytesFor(30), Silence: silence},
			want:   []Span{{0, sec(29)}, {sec(29), sec(42)}},
		},
		{
			name:   "silence shorter than silence_len is not used",
			file:   audiotest.WAV(rate, 1, tone(26, 440), quiet(1.5), tone(20, 440)),
			bounds: Bounds{MaxBytes: bytesFor(30), Silence: silence},
			want:   []Span{{0, sec(30)}, {sec(30), sec(47.5)}},
		},
		{
			name:   "silence before the last quarter is not used",
			file:   audiotest.WAV(rate, 1, tone(10, 440), quiet(3), tone(30, 440)),
			bounds: Bounds{MaxBytes: bytesFor(30), Silence: silence},
			want:   []Span{{0, sec(30)}, {sec(30), sec(43)}},
		},
		{
			name:   "silence chunking off",
			file:   audiotest.WAV(rate, 1, tone(25, 440), quiet(3), tone(20, 300)),
			bounds: Bounds{MaxBytes: bytesFor(30)},
			want:   []Span{{0, sec(30)}, {sec(30), sec(48)}},
		},
		{
			name:   "duration bound tighter than the byte bound",
			file:   audiotest.WAV(rate, 1, tone(25, 440)),
			bounds: Bounds{MaxBytes: bytesFor(60), MaxDuration: 10 * time.Second},
			want:   []Span{{0, sec(10)}, {sec(10), sec(20)}, {sec(20), sec(25)}},
		},
		{
			name:    "a bound smaller than the header",
			file:    audiotest.WAV(rate, 1, tone(1, 440)),
			bounds:  Bounds{MaxBytes: 40},
			wantErr: "cannot hold a frame",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := ParseWAV(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			spans, err := w.Plan(tt.bounds)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(spans) != len(tt.want) {
				t.Fatalf("spans %v, want %v", spans, tt.want)
			}
			for i, s := range spans {
				if s != tt.want[i] {
					t.Errorf("span %d = %v, want %v", i, s, tt.want[i])
				}
				if n := len(w.Encode(s.Start, s.End)); int64(n) > tt.bounds.MaxBytes {
					t.Errorf("span %d encodes to %d bytes, over %d", i, n, tt.bounds.MaxBytes)
				}
			}
		})
	}
}
