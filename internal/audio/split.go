package audio

import (
	"fmt"
	"time"
)

// Bounds say how large one part may be and where it should preferably end.
type Bounds struct {
	// MaxBytes bounds each part's file, header included (a vendor's upload
	// limit). Required.
	MaxBytes int64
	// MaxDuration, when positive, also bounds each part's length.
	MaxDuration time.Duration
	// Silence, when set, moves each cut back to the middle of the latest
	// quiet stretch in the last quarter before the bound, so that no word
	// is cut in two. Without one in reach the cut is at the bound.
	Silence *Silence
}

// Silence is what counts as a quiet stretch (conserver's silence_thresh
// and silence_len).
type Silence struct {
	// Threshold is the level, in dBFS, below which audio is quiet.
	Threshold float64
	// MinLength is how long audio must stay quiet.
	MinLength time.Duration
}

// Span is one part: frames [Start, End).
type Span struct{ Start, End int }

// silenceWindow is the resolution of the silence search: short enough for
// the gaps between words, long enough to average a low tone's period.
const silenceWindow = 20 * time.Millisecond

// searchFraction is how far back from the bound a cut may move (conserver
// searches ±25% around its target; a part may not grow past the bound).
const searchFraction = 4

// Plan cuts the recording into spans that each fit b, in order, covering
// every frame once. A recording that fits already is one span.
func (w *WAV) Plan(b Bounds) ([]Span, error) {
	maxFrames := (b.MaxBytes - int64(w.HeaderSize()) - 1) / int64(w.BlockAlign) // -1: a part may need a pad byte
	if maxFrames < 1 {
		return nil, fmt.Errorf("a part of at most %d bytes cannot hold a frame of this WAV (header %d bytes, frame %d bytes)", b.MaxBytes, w.HeaderSize(), w.BlockAlign)
	}
	if b.MaxDuration > 0 {
		if byTime := int64(b.MaxDuration.Seconds() * float64(w.SampleRate)); byTime < maxFrames {
			maxFrames = max(byTime, 1)
		}
	}
	total := w.Frames()
	var spans []Span
	for start := 0; start < total; {
		limit := start + int(min(maxFrames, int64(total-start)))
		end := limit
		if limit < total && b.Silence != nil && w.canMeasure() {
			if cut, ok := w.quietCut(limit-int(maxFrames)/searchFraction, limit, *b.Silence); ok && cut > start {
				end = cut
			}
		}
		spans = append(spans, Span{Start: start, End: end})
		start = end
	}
	return spans, nil
}

// quietCut finds the latest stretch in [lo, hi) that stays under the
// threshold for at least MinLength and returns its middle frame.
func (w *WAV) quietCut(lo, hi int, s Silence) (int, bool) {
	win := max(int(silenceWindow.Seconds()*float64(w.SampleRate)), 1)
	need := max(int(s.MinLength.Seconds()*float64(w.SampleRate)), 1)
	lo = max(lo, 0)
	// Walk back from the bound one window at a time. A quiet run is judged
	// when it ends (a loud window, or lo), so that the cut is its middle.
	runEnd, runStart := -1, -1
	for end := hi; end-win >= lo; end -= win {
		start := end - win
		if w.Level(start, end) < s.Threshold {
			if runEnd < 0 {
				runEnd = end
			}
			runStart = start
			continue
		}
		if runEnd >= 0 && runEnd-runStart >= need {
			return (runStart + runEnd) / 2, true
		}
		runEnd, runStart = -1, -1
	}
	if runEnd >= 0 && runEnd-runStart >= need {
		return (runStart + runEnd) / 2, true
	}
	return 0, false
}
