package redact

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrNotWAV is returned by MuteWAV for audio it cannot mute: anything but
// a RIFF/WAVE file of integer or float PCM. Compressed audio (MP3, Opus,
// G.711 in WAV) would have to be decoded and encoded again to be muted;
// a caller drops such a recording instead.
var ErrNotWAV = errors.New("redact: not a PCM WAV file")

// IsWAV reports whether data starts like a RIFF/WAVE file.
func IsWAV(data []byte) bool {
	return len(data) >= 12 && string(data[0:4]) == "RIFF" && string(data[8:12]) == "WAVE"
}

// MuteWAV returns a copy of a PCM WAV file in which every range (seconds
// from the start of the recording), widened by pad on each side, is
// silence. Recognisers' word timings are approximate, and a digit's first
// or last phoneme left audible can be enough to tell it, hence the pad.
// The input is not changed. Ranges outside the audio are clipped.
func MuteWAV(data []byte, ranges []TimeRange, pad float64) ([]byte, error) {
	if !IsWAV(data) {
		return nil, ErrNotWAV
	}
	var (
		format                    uint16
		channels, bits            uint16
		rate                      uint32
		haveFmt                   bool
		dataStart, dataEnd, frame int
	)
	// fmt may follow data; every chunk is read.
	for at := 12; at+8 <= len(data); {
		id := string(data[at : at+4])
		size := int(binary.LittleEndian.Uint32(data[at+4 : at+8]))
		body := at + 8
		end := body + size
		if size < 0 || end > len(data) {
			if id != "data" {
				return nil, fmt.Errorf("%w: chunk %q runs past the end of the file", ErrNotWAV, id)
			}
			// A recorder that stopped without fixing the data size
			// leaves it too large (often 0xFFFFFFFF): the data is what
			// there is.
			end = len(data)
		}
		switch id {
		case "fmt ":
			if size < 16 {
				return nil, fmt.Errorf("%w: fmt chunk of %d bytes", ErrNotWAV, size)
			}
			format = binary.LittleEndian.Uint16(data[body:])
			channels = binary.LittleEndian.Uint16(data[body+2:])
			rate = binary.LittleEndian.Uint32(data[body+4:])
			bits = binary.LittleEndian.Uint16(data[body+14:])
			if format == 0xFFFE && size >= 40 {
				// WAVE_FORMAT_EXTENSIBLE: the sub-format GUID starts with
				// the format code.
				format = binary.LittleEndian.Uint16(data[body+24:])
			}
			haveFmt = true
		case "data":
			dataStart, dataEnd = body, end
		}
		at = end + size&1 // chunks are padded to an even size
	}
	switch {
	case !haveFmt || dataEnd == 0:
		return nil, fmt.Errorf("%w: no fmt or data chunk", ErrNotWAV)
	case format != 1 && format != 3:
		return nil, fmt.Errorf("%w: format code %d is compressed audio", ErrNotWAV, format)
	case channels == 0 || rate == 0 || bits == 0 || bits%8 != 0 || bits > 64:
		return nil, fmt.Errorf("%w: %d channels, %d Hz, %d bits", ErrNotWAV, channels, rate, bits)
	}
	frame = int(channels) * int(bits/8)
	// 8-bit PCM is unsigned: its silence is 128, not 0.
	silence := byte(0)
	if format == 1 && bits == 8 {
		silence = 0x80
	}
	out := bytes.Clone(data)
	frames := (dataEnd - dataStart) / frame
	for _, r := range ranges {
		from := int(math.Floor((r.Start - pad) * float64(rate)))
		to := int(math.Ceil((r.End + pad) * float64(rate)))
		from, to = max(from, 0), min(to, frames)
		if from >= to {
			continue
		}
		seg := out[dataStart+from*frame : dataStart+to*frame]
		for i := range seg {
			seg[i] = silence
		}
	}
	return out, nil
}
