package audio

import (
	"context"
	"errors"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/audio/audiotest"
)

// RequireFFmpeg fails the test when ffmpeg is not installed: the tests
// that need it must not pass by skipping.
func requireFFmpeg(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("ffmpeg")
	if err != nil {
		t.Fatal("ffmpeg is not on PATH; install it: hack/deps.sh (apt-get install -y ffmpeg)")
	}
	return bin
}

// encodeWith turns a WAV into another format with ffmpeg.
func encodeWith(t *testing.T, wav []byte, ext string, args ...string) []byte {
	t.Helper()
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.wav"), filepath.Join(dir, "out"+ext)
	if err := os.WriteFile(in, wav, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(requireFFmpeg(t), append(append([]string{"-nostdin", "-loglevel", "error", "-i", in}, args...), out)...)
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ffmpeg: %v: %s", err, msg)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestToWAV(t *testing.T) {
	src := audiotest.WAV(44100, 2, audiotest.Tone(3, 440), audiotest.Quiet(2))
	tests := []struct {
		name string
		ext  string
		args []string
	}{
		{"mp3", ".mp3", []string{"-c:a", "libmp3lame", "-b:a", "64k"}},
		{"ogg opus", ".ogg", []string{"-c:a", "libopus"}},
		{"m4a (index at the end)", ".m4a", []string{"-c:a", "aac"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := encodeWith(t, src, tt.ext, tt.args...)
			out, err := ToWAV(context.Background(), "ffmpeg", in, tt.ext)
			if err != nil {
				t.Fatal(err)
			}
			w, err := ParseWAV(out)
			if err != nil {
				t.Fatalf("ToWAV's output does not parse: %v", err)
			}
			if w.SampleRate != ConvertedRate || w.Channels != 1 || w.BitsPerSample != 16 {
				t.Errorf("format %d Hz, %d channels, %d bits; want 16000 Hz mono 16-bit", w.SampleRate, w.Channels, w.BitsPerSample)
			}
			// Codecs add priming samples; the length must still be the
			// recording's, within a tenth of a second.
			if math.Abs(w.Seconds()-5) > 0.1 {
				t.Errorf("converted length %.3fs, want 5s", w.Seconds())
			}
			if l := w.Level(0, w.SampleRate*2); l < -12 {
				t.Errorf("tone converted to %.1f dBFS", l)
			}
		})
	}
}

func TestToWAVFailures(t *testing.T) {
	requireFFmpeg(t)
	tests := []struct {
		name    string
		ffmpeg  string
		path    string // PATH for the test; "" leaves it
		data    []byte
		wantNo  bool
		wantErr string
	}{
		{name: "missing binary by path", ffmpeg: "/nonexistent/bin/ffmpeg", data: []byte("x"), wantNo: true, wantErr: `"/nonexistent/bin/ffmpeg" was not found`},
		{name: "not on an empty PATH", ffmpeg: "ffmpeg", path: t.TempDir(), data: []byte("x"), wantNo: true, wantErr: `"ffmpeg" was not found`},
		{name: "not audio", ffmpeg: "ffmpeg", data: []byte("this is not audio at all"), wantErr: "ffmpeg could not decode the recording"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.path != "" {
				t.Setenv("PATH", tt.path)
			}
			_, err := ToWAV(context.Background(), tt.ffmpeg, tt.data, ".mp3")
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
			if errors.Is(err, ErrNoFFmpeg) != tt.wantNo {
				t.Errorf("errors.Is(ErrNoFFmpeg) = %v, want %v", !tt.wantNo, tt.wantNo)
			}
			if strings.Contains(err.Error(), os.TempDir()+"/vcon-audio-") {
				t.Errorf("error names the temporary directory: %v", err)
			}
		})
	}
}
