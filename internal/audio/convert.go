package audio

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ErrNoFFmpeg is returned by ToWAV when the ffmpeg binary cannot be found.
var ErrNoFFmpeg = errors.New("ffmpeg is not installed")

// ConvertedRate is the sample rate ToWAV writes: what Whisper-style models
// work at, and what conserver's splitter exports.
const ConvertedRate = 16000

// ToWAV decodes a recording of any format ffmpeg reads into 16 kHz mono
// 16-bit PCM WAV. ffmpeg names the binary: a name looked up on PATH, or a
// path. The input goes through a temporary file rather than a pipe because
// some containers (mp4, m4a) keep their index at the end and ffmpeg must
// seek to read them; ext (".m4a") helps ffmpeg guess the container.
func ToWAV(ctx context.Context, ffmpeg string, data []byte, ext string) ([]byte, error) {
	bin, err := exec.LookPath(ffmpeg)
	if err != nil {
		return nil, fmt.Errorf("%w: %q was not found", ErrNoFFmpeg, ffmpeg)
	}
	dir, err := os.MkdirTemp("", "vcon-audio-")
	if err != nil {
		return nil, fmt.Errorf("convert recording: %w", err)
	}
	defer os.RemoveAll(dir)
	in := filepath.Join(dir, "in"+sanitizeExt(ext))
	out := filepath.Join(dir, "out.wav")
	if err := os.WriteFile(in, data, 0o600); err != nil {
		return nil, fmt.Errorf("convert recording: %w", err)
	}
	var stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, "-nostdin", "-hide_banner", "-loglevel", "error",
		"-i", in, "-vn", "-ac", "1", "-ar", fmt.Sprint(ConvertedRate), "-c:a", "pcm_s16le", "-f", "wav", out)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// ffmpeg's message names the format problem; the temporary paths
		// in it say nothing useful, so they are dropped.
		msg := strings.TrimSpace(strings.ReplaceAll(stderr.String(), dir+string(filepath.Separator), ""))
		if len(msg) > 300 {
			msg = msg[:300] + "..."
		}
		return nil, fmt.Errorf("ffmpeg could not decode the recording (%v): %s", err, msg)
	}
	wav, err := os.ReadFile(out)
	if err != nil {
		return nil, fmt.Errorf("convert recording: %w", err)
	}
	return wav, nil
}

// sanitizeExt keeps an extension that is safe in a file name.
func sanitizeExt(ext string) string {
	if len(ext) < 2 || len(ext) > 8 || ext[0] != '.' {
		return ""
	}
	for _, r := range ext[1:] {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return ""
		}
	}
	return ext
}
