// Package audiotest writes recordings for tests: tones and silences as
// 16-bit PCM WAV, so that where speech is and how long it lasts is known
// exactly.
package audiotest

import (
	"encoding/binary"
	"math"
)

// Segment is a stretch of a recording: a sine tone of Hz at Amplitude
// (of full scale), or silence when Amplitude is 0.
type Segment struct {
	Seconds   float64
	Hz        float64
	Amplitude float64
}

// Tone is a stretch of tone at half scale (about -9 dBFS RMS).
func Tone(seconds, hz float64) Segment { return Segment{Seconds: seconds, Hz: hz, Amplitude: 0.5} }

// Quiet is a stretch of digital silence.
func Quiet(seconds float64) Segment { return Segment{Seconds: seconds} }

// Frames is how many frames segs make at rate.
func Frames(rate int, segs ...Segment) int {
	n := 0
	for _, s := range segs {
		n += int(math.Round(s.Seconds * float64(rate)))
	}
	return n
}

// WAV renders segs as a 16-bit PCM WAV with a canonical 44-byte header;
// every channel carries the same signal.
func WAV(rate, channels int, segs ...Segment) []byte {
	frames := Frames(rate, segs...)
	dataLen := frames * channels * 2
	out := make([]byte, 44, 44+dataLen)
	copy(out[0:], "RIFF")
	binary.LittleEndian.PutUint32(out[4:], uint32(36+dataLen))
	copy(out[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(out[16:], 16)
	binary.LittleEndian.PutUint16(out[20:], 1) // PCM
	binary.LittleEndian.PutUint16(out[22:], uint16(channels))
	binary.LittleEndian.PutUint32(out[24:], uint32(rate))
	binary.LittleEndian.PutUint32(out[28:], uint32(rate*channels*2))
	binary.LittleEndian.PutUint16(out[32:], uint16(channels*2))
	binary.LittleEndian.PutUint16(out[34:], 16)
	copy(out[36:], "data")
	binary.LittleEndian.PutUint32(out[40:], uint32(dataLen))
	for _, s := range segs {
		n := int(math.Round(s.Seconds * float64(rate)))
		for i := 0; i < n; i++ {
			v := int16(s.Amplitude * 32767 * math.Sin(2*math.Pi*s.Hz*float64(i)/float64(rate)))
			for c := 0; c < channels; c++ {
				out = binary.LittleEndian.AppendUint16(out, uint16(v))
			}
		}
	}
	return out
}
