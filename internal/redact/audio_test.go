package redact

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"
)

// wav builds a WAV file: a fmt chunk of format, bits and rate (mono),
// then a data chunk of samples bytes all set to fill.
func wav(format, bits uint16, rate uint32, samples int, fill byte) []byte {
	var b bytes.Buffer
	data := bytes.Repeat([]byte{fill}, samples*int(bits/8))
	b.WriteString("RIFF")
	_ = binary.Write(&b, binary.LittleEndian, uint32(36+len(data)))
	b.WriteString("WAVEfmt ")
	for _, x := range []any{uint32(16), format, uint16(1), rate, rate * uint32(bits/8), bits / 8, bits} {
		_ = binary.Write(&b, binary.LittleEndian, x)
	}
	b.WriteString("data")
	_ = binary.Write(&b, binary.LittleEndian, uint32(len(data)))
	b.Write(data)
	return b.Bytes()
}

func TestMuteWAV(t *testing.T) {
	const rate = 100 // samples per second: one sample is 10 ms
	cases := []struct {
		name    string
		in      []byte
		ranges  []TimeRange
		pad     float64
		silence byte
		muted   [2]int // sample indexes [from, to) expected silent
		err     error
	}{
		{name: "16-bit", in: wav(1, 16, rate, 100, 0x7f), ranges: []TimeRange{{Start: 0.2, End: 0.3}}, muted: [2]int{20, 30}},
		{name: "padded", in: wav(1, 16, rate, 100, 0x7f), ranges: []TimeRange{{Start: 0.2, End: 0.3}}, pad: 0.05, muted: [2]int{15, 35}},
		{name: "8-bit is unsigned", in: wav(1, 8, rate, 100, 0xff), ranges: []TimeRange{{Start: 0.5, End: 0.6}}, silence: 0x80, muted: [2]int{50, 60}},
		{name: "float", in: wav(3, 32, rate, 100, 0x3f), ranges: []TimeRange{{Start: 0, End: 0.1}}, muted: [2]int{0, 10}},
		{name: "clipped", in: wav(1, 16, rate, 100, 0x7f), ranges: []TimeRange{{Start: -1, End: 0.1}, {Start: 1.5, End: 9}}, muted: [2]int{0, 10}},
		{name: "mp3", in: []byte("ID3\x04\x00\x00\x00\x00\x00\x00"), err: ErrNotWAV},
		{name: "compressed WAV (mu-law)", in: wav(7, 8, rate, 100, 0xff), err: ErrNotWAV},
		{name: "truncated fmt", in: wav(1, 16, rate, 10, 0)[:30], err: ErrNotWAV},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			orig := bytes.Clone(tc.in)
			out, err := MuteWAV(tc.in, tc.ranges, tc.pad)
			if !errors.Is(err, tc.err) {
				t.Fatalf("err %v, want %v", err, tc.err)
			}
			if !bytes.Equal(tc.in, orig) {
				t.Error("MuteWAV changed its input")
			}
			if tc.err != nil {
				return
			}
			width := int(binary.LittleEndian.Uint16(tc.in[34:])) / 8
			samples := (len(out) - 44) / width
			for i := 0; i < samples; i++ {
				s := out[44+i*width : 44+(i+1)*width]
				silent := bytes.Equal(s, bytes.Repeat([]byte{tc.silence}, width))
				if want := i >= tc.muted[0] && i < tc.muted[1]; silent != want {
					t.Errorf("sample %d silent %v, want %v", i, silent, want)
				}
			}
			if len(out) != len(tc.in) || !bytes.Equal(out[:44], tc.in[:44]) {
				t.Error("the header or the length changed")
			}
		})
	}
}
