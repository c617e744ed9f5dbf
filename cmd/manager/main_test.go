package main

import (
	"reflect"
	"testing"
)

func TestSplitList(t *testing.T) {
	for in, want := range map[string][]string{
		"":                                nil,
		" , ,":                            nil,
		"registry.example.com":            {"registry.example.com"},
		" a.io/x , b.io ,":                {"a.io/x", "b.io"},
		"*.redis.svc,redis.example.com:1": {"*.redis.svc", "redis.example.com:1"},
	} {
		if got := splitList(in); !reflect.DeepEqual(got, want) {
			t.Errorf("splitList(%q) = %q, want %q", in, got, want)
		}
	}
}
