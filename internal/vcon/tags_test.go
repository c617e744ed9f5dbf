package vcon

import (
	"reflect"
	"testing"
)

func TestTags(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"conserver form", `{"attachments":[{"purpose":"tags","body":"[\"a:1\", \"b:2\"]","encoding":"json"}]}`, []string{"a:1", "b:2"}},
		{"legacy type and list body", `{"attachments":[{"type":"tags","body":["a:1",7,"c:3"],"encoding":"none"}]}`, []string{"a:1", "c:3"}},
		{"other attachments ignored", `{"attachments":[{"purpose":"transcript","body":"[\"no:no\"]"},{"purpose":"tags","body":"[\"x:y\"]"}]}`, []string{"x:y"}},
		{"purpose wins over type", `{"attachments":[{"purpose":"other","type":"tags","body":["no:no"]}]}`, nil},
		{"broken body", `{"attachments":[{"purpose":"tags","body":"[oops"}]}`, nil},
		{"no attachments", `{}`, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Tags(mustParse(t, tt.in))
			if len(got) == 0 && len(tt.want) == 0 {
				return
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Tags = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestAddTag(t *testing.T) {
	tests := []struct {
		name string
		in   string
		add  [][2]string
		want string
	}{
		{
			name: "creates the attachment",
			in:   `{"uuid":"u"}`,
			add:  [][2]string{{"a", "1"}},
			want: `{"uuid":"u","attachments":[{"purpose":"tags","body":"[\"a:1\"]","encoding":"json"}]}`,
		},
		{
			name: "updates in place without duplicates",
			in:   `{"attachments":[{"purpose":"x"},{"purpose":"tags","body":"[\"a:1\"]","encoding":"json"}]}`,
			add:  [][2]string{{"a", "1"}, {"b", "2"}, {"b", "2"}},
			want: `{"attachments":[{"purpose":"x"},{"purpose":"tags","body":"[\"a:1\",\"b:2\"]","encoding":"json"}]}`,
		},
		{
			name: "rewrites a legacy attachment in conserver form",
			in:   `{"attachments":[{"type":"tags","body":["a:1"],"encoding":"none"}]}`,
			add:  [][2]string{{"c", "3"}},
			want: `{"attachments":[{"purpose":"tags","body":"[\"a:1\",\"c:3\"]","encoding":"json"}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := mustParse(t, tt.in)
			for _, a := range tt.add {
				AddTag(v, a[0], a[1])
			}
			if want := mustParse(t, tt.want); !reflect.DeepEqual(v.Doc(), want.Doc()) {
				got, _ := v.Marshal()
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
			for _, a := range tt.add {
				if val, ok := Tag(v, a[0]); !ok || val != a[1] {
					t.Fatalf("Tag(%q) = %q, %v", a[0], val, ok)
				}
			}
		})
	}
}

func TestFindAnalysis(t *testing.T) {
	v := mustParse(t, `{"analysis":[
		{"type":"summary","dialog":0,"body":"s0"},
		{"type":"transcript","dialog":1,"body":"t1"},
		{"type":"transcript","dialog":[0,2],"body":"t02"},
		{"type":"transcript","dialog":"3","body":"str"}]}`)
	tests := []struct {
		dialog int
		typ    string
		want   string
	}{
		{0, "summary", "s0"},
		{1, "transcript", "t1"},
		{0, "transcript", "t02"},
		{2, "transcript", "t02"},
		{3, "transcript", ""},
		{1, "summary", ""},
	}
	for _, tt := range tests {
		a := FindAnalysis(v, tt.dialog, tt.typ)
		got := ""
		if a != nil {
			got = a["body"].(string)
		}
		if got != tt.want {
			t.Errorf("FindAnalysis(%d, %q) body = %q, want %q", tt.dialog, tt.typ, got, tt.want)
		}
	}
}
