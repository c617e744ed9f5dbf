package config

import (
	"reflect"
	"testing"
)

func TestSegments(t *testing.T) {
	tests := []struct {
		in     string
		want   []Segment
		closed bool
	}{
		{in: "", closed: true},
		{in: "plain $ text", want: []Segment{{Raw: "plain $ text", Text: "plain $ text"}}, closed: true},
		{in: "${A}", want: []Segment{{Raw: "${A}", Ref: true, Name: "A"}}, closed: true},
		{in: "x${A:-d:-e}y", want: []Segment{
			{Raw: "x", Text: "x"},
			{Raw: "${A:-d:-e}", Ref: true, Name: "A", Default: "d:-e", HasDefault: true},
			{Raw: "y", Text: "y"},
		}, closed: true},
		{in: "$${A} and $$ and ${B:-}", want: []Segment{
			{Raw: "$${A} and $$ and ", Text: "${A} and $$ and "},
			{Raw: "${B:-}", Ref: true, Name: "B", HasDefault: true},
		}, closed: true},
		{in: "a${B", want: []Segment{{Raw: "a${B", Text: "a${B"}}, closed: false},
		{in: "${}", want: []Segment{{Raw: "${}", Ref: true}}, closed: true},
	}
	for _, tt := range tests {
		got, closed := Segments(tt.in)
		if closed != tt.closed || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Segments(%q) = %+v, %v\nwant %+v, %v", tt.in, got, closed, tt.want, tt.closed)
		}
	}
}
