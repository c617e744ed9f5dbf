package config

import "strings"

// Segment is a piece of a config string value as the loader reads it:
// literal text, or one ${NAME} / ${NAME:-default} reference.
type Segment struct {
	// Raw is the text as written ($${ stays $${).
	Raw string
	// Text is what a literal stands for ($${ becomes ${); "" for a
	// reference.
	Text string
	Ref  bool
	// Name, Default and HasDefault describe a reference.
	Name       string
	Default    string
	HasDefault bool
}

// Segments splits s into literal text and ${...} references, the one
// reading of the syntax that the loader, the operator and `kubectl vcon
// import` share. closed is false when a ${ has no closing }: the rest of s
// is then one literal segment.
func Segments(s string) (segs []Segment, closed bool) {
	lit := func(raw, text string) {
		if n := len(segs); n > 0 && !segs[n-1].Ref {
			segs[n-1].Raw += raw
			segs[n-1].Text += text
			return
		}
		segs = append(segs, Segment{Raw: raw, Text: text})
	}
	for i := 0; i < len(s); {
		switch {
		case strings.HasPrefix(s[i:], "$${"):
			lit("$${", "${")
			i += 3
		case strings.HasPrefix(s[i:], "${"):
			end := strings.IndexByte(s[i+2:], '}')
			if end < 0 {
				lit(s[i:], s[i:])
				return segs, false
			}
			ref := s[i+2 : i+2+end]
			name, def, hasDefault := strings.Cut(ref, ":-")
			segs = append(segs, Segment{Raw: s[i : i+2+end+1], Ref: true, Name: name, Default: def, HasDefault: hasDefault})
			i += 2 + end + 1
		default: // literal text up to the next $
			next := len(s)
			if j := strings.IndexByte(s[i+1:], '$'); j >= 0 {
				next = i + 1 + j
			}
			lit(s[i:next], s[i:next])
			i = next
		}
	}
	return segs, true
}
