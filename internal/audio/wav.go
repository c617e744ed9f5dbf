// Package audio cuts long recordings into parts a transcription vendor
// accepts: it reads RIFF/WAV natively (any PCM, IEEE float or G.711 WAV),
// finds quiet places to cut near a bound, writes each part as a WAV file of
// its own, and turns other formats into WAV through ffmpeg when ffmpeg is
// installed.
//
// It works on bytes in memory because the links already hold the whole
// recording (bounded by max_download_bytes); a part shares no memory with
// the recording it came from.
package audio

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// WAVE format tags (the fmt chunk's first field).
const (
	formatPCM        = 0x0001
	formatIEEEFloat  = 0x0003
	formatALaw       = 0x0006
	formatMuLaw      = 0x0007
	formatExtensible = 0xFFFE
)

// WAV is a parsed RIFF/WAVE file: its format and its sample frames.
type WAV struct {
	Channels   int
	SampleRate int
	// BitsPerSample is the container size of one sample (8, 16, 24, 32, 64).
	BitsPerSample int
	// BlockAlign is the size of one frame (a sample of every channel).
	BlockAlign int
	// tag is the effective format (an extensible file's sub-format).
	tag uint16
	// fmtChunk is the fmt chunk as the file had it (id, size, body, pad),
	// copied into every part so that a part has exactly the input's format.
	fmtChunk []byte
	// data holds whole frames only.
	data []byte
}

// IsWAV reports whether b starts like a RIFF/WAVE file.
func IsWAV(b []byte) bool {
	return len(b) >= 12 && string(b[0:4]) == "RIFF" && string(b[8:12]) == "WAVE"
}

// ParseWAV reads a RIFF/WAVE file. Chunks other than fmt and data (LIST,
// fact, cue, ...) are skipped. A data chunk whose size is unknown or runs
// past the end of the file, as streaming recorders write it, is read to the
// end of the file; a trailing partial frame is dropped.
func ParseWAV(b []byte) (*WAV, error) {
	if !IsWAV(b) {
		if len(b) >= 4 && (string(b[0:4]) == "RIFX" || string(b[0:4]) == "RF64") {
			return nil, fmt.Errorf("WAV: %s files are not supported, only little-endian RIFF", b[0:4])
		}
		return nil, errors.New("WAV: not a RIFF/WAVE file")
	}
	w := &WAV{}
	foundData := false
	for off := 12; off+8 <= len(b); {
		id := string(b[off : off+4])
		size := int64(binary.LittleEndian.Uint32(b[off+4 : off+8]))
		body := off + 8
		end := int64(body) + size
		switch id {
		case "fmt ":
			if end > int64(len(b)) {
				return nil, errors.New("WAV: fmt chunk runs past the end of the file")
			}
			if err := w.readFormat(b[body:end]); err != nil {
				return nil, err
			}
			// Kept with its pad byte, so that the chunk after it in a part
			// starts on an even offset as RIFF wants.
			w.fmtChunk = bytes.Clone(b[off:end])
			if size%2 == 1 {
				w.fmtChunk = append(w.fmtChunk, 0)
			}
		case "data":
			if w.fmtChunk == nil {
				return nil, errors.New("WAV: data chunk before the fmt chunk")
			}
			if end > int64(len(b)) || size == 0 || size == math.MaxUint32 {
				end = int64(len(b))
			}
			n := (end - int64(body)) / int64(w.BlockAlign) * int64(w.BlockAlign)
			w.data = b[body : int64(body)+n]
			foundData = true
		}
		if foundData {
			break
		}
		off = int(end + size%2)
		if end > int64(len(b)) {
			break
		}
	}
	if w.fmtChunk == nil {
		return nil, errors.New("WAV: no fmt chunk")
	}
	if !foundData {
		return nil, errors.New("WAV: no data chunk")
	}
	return w, nil
}

func (w *WAV) readFormat(f []byte) error {
	if len(f) < 16 {
		return fmt.Errorf("WAV: fmt chunk of %d bytes is too short", len(f))
	}
	w.tag = binary.LittleEndian.Uint16(f[0:2])
	w.Channels = int(binary.LittleEndian.Uint16(f[2:4]))
	w.SampleRate = int(binary.LittleEndian.Uint32(f[4:8]))
	w.BlockAlign = int(binary.LittleEndian.Uint16(f[12:14]))
	w.BitsPerSample = int(binary.LittleEndian.Uint16(f[14:16]))
	if w.tag == formatExtensible {
		// WAVEFORMATEXTENSIBLE: cbSize, valid bits, channel mask, then the
		// sub-format GUID whose first two bytes are the real tag.
		if len(f) < 40 {
			return errors.New("WAV: extensible fmt chunk is too short")
		}
		w.tag = binary.LittleEndian.Uint16(f[24:26])
	}
	switch {
	case w.Channels < 1:
		return errors.New("WAV: no channels")
	case w.SampleRate < 1:
		return errors.New("WAV: sample rate is zero")
	case w.BitsPerSample < 1 || w.BlockAlign < w.Channels*((w.BitsPerSample+7)/8):
		return fmt.Errorf("WAV: block align %d does not hold %d channels of %d bits", w.BlockAlign, w.Channels, w.BitsPerSample)
	}
	return nil
}

// Frames is the number of sample frames.
func (w *WAV) Frames() int { return len(w.data) / w.BlockAlign }

// Seconds is the recording's length.
func (w *WAV) Seconds() float64 { return float64(w.Frames()) / float64(w.SampleRate) }

// FrameSeconds is the time at which frame i starts.
func (w *WAV) FrameSeconds(i int) float64 { return float64(i) / float64(w.SampleRate) }

// HeaderSize is the size of the header every part has: RIFF, the fmt chunk
// and the data chunk's header.
func (w *WAV) HeaderSize() int { return 12 + len(w.fmtChunk) + 8 }

// Encode writes frames [from, to) as a WAV file of their own.
func (w *WAV) Encode(from, to int) []byte {
	data := w.data[from*w.BlockAlign : to*w.BlockAlign]
	out := make([]byte, 0, w.HeaderSize()+len(data)+1)
	pad := len(data) % 2
	out = append(out, "RIFF"...)
	out = binary.LittleEndian.AppendUint32(out, uint32(4+len(w.fmtChunk)+8+len(data)+pad))
	out = append(out, "WAVE"...)
	out = append(out, w.fmtChunk...)
	out = append(out, "data"...)
	out = binary.LittleEndian.AppendUint32(out, uint32(len(data)))
	out = append(out, data...)
	if pad == 1 {
		out = append(out, 0)
	}
	return out
}

// canMeasure says whether Level understands the samples.
func (w *WAV) canMeasure() bool {
	switch w.tag {
	case formatPCM:
		return w.BitsPerSample == 8 || w.BitsPerSample == 16 || w.BitsPerSample == 24 || w.BitsPerSample == 32
	case formatIEEEFloat:
		return w.BitsPerSample == 32 || w.BitsPerSample == 64
	case formatALaw, formatMuLaw:
		return w.BitsPerSample == 8
	}
	return false
}

// Level is the RMS level of frames [from, to) over every channel, in dBFS
// (0 is a full-scale square wave; digital silence is -Inf), as pydub
// measures it for conserver's silence_thresh.
func (w *WAV) Level(from, to int) float64 {
	if to <= from {
		return math.Inf(-1)
	}
	size := (w.BitsPerSample + 7) / 8
	var sum float64
	for f := from; f < to; f++ {
		frame := w.data[f*w.BlockAlign:]
		for c := 0; c < w.Channels; c++ {
			s := w.sample(frame[c*size : c*size+size])
			sum += s * s
		}
	}
	rms := math.Sqrt(sum / float64((to-from)*w.Channels))
	return 20 * math.Log10(rms)
}

// sample decodes one sample to [-1, 1].
func (w *WAV) sample(b []byte) float64 {
	switch w.tag {
	case formatIEEEFloat:
		if len(b) == 8 {
			return math.Float64frombits(binary.LittleEndian.Uint64(b))
		}
		return float64(math.Float32frombits(binary.LittleEndian.Uint32(b)))
	case formatMuLaw:
		return float64(muLaw(b[0])) / 32768
	case formatALaw:
		return float64(aLaw(b[0])) / 32768
	}
	switch len(b) {
	case 1: // 8-bit PCM is unsigned
		return (float64(b[0]) - 128) / 128
	case 2:
		return float64(int16(binary.LittleEndian.Uint16(b))) / (1 << 15)
	case 3:
		v := int32(b[0]) | int32(b[1])<<8 | int32(int8(b[2]))<<16
		return float64(v) / (1 << 23)
	default:
		return float64(int32(binary.LittleEndian.Uint32(b))) / (1 << 31)
	}
}

// muLaw and aLaw decode G.711 (ITU-T G.711) to 16-bit linear.
func muLaw(u byte) int16 {
	u = ^u
	t := (int(u&0x0F)<<3 + 0x84) << ((u & 0x70) >> 4)
	if u&0x80 != 0 {
		return int16(0x84 - t)
	}
	return int16(t - 0x84)
}

func aLaw(a byte) int16 {
	a ^= 0x55
	t := int(a&0x0F) << 4
	seg := (a & 0x70) >> 4
	switch seg {
	case 0:
		t += 8
	case 1:
		t += 0x108
	default:
		t += 0x108
		t <<= seg - 1
	}
	if a&0x80 != 0 {
		return int16(t)
	}
	return int16(-t)
}
