package policy

import "testing"

func TestImageAllowed(t *testing.T) {
	tests := []struct {
		name     string
		prefixes []string
		image    string
		want     bool
	}{
		{"no prefixes: no override", nil, "ghcr.io/vcon-operator/vcon-operator:1", false},
		{"empty prefix is ignored", []string{""}, "anything:1", false},
		{"registry host", []string{"registry.example.com"}, "registry.example.com/team/worker:1", true},
		{"registry host with trailing slash", []string{"registry.example.com/"}, "registry.example.com/w:1", true},
		{"registry host is case-insensitive", []string{"Registry.Example.com"}, "registry.example.com/w:1", true},
		{"a longer host is another registry", []string{"registry.example.com"}, "registry.example.com.evil.io/team/worker:1", false},
		{"a host with a port is another registry", []string{"registry.example.com"}, "registry.example.com:5000/w:1", false},
		{"host glued to more letters", []string{"registry.example.com"}, "registry.example.comx/w:1", false},
		{"host without repository", []string{"registry.example.com"}, "registry.example.com", false},
		{"repository prefix: tag", []string{"ghcr.io/acme/worker"}, "ghcr.io/acme/worker:1.2", true},
		{"repository prefix: digest", []string{"ghcr.io/acme/worker"}, "ghcr.io/acme/worker@sha256:abcd", true},
		{"repository prefix: sub-repository", []string{"ghcr.io/acme"}, "ghcr.io/acme/worker:1", true},
		{"repository prefix: not a sibling", []string{"ghcr.io/acme/worker"}, "ghcr.io/acme/worker-evil:1", false},
		{"repository prefix: not another org", []string{"ghcr.io/acme"}, "ghcr.io/acmecorp/worker:1", false},
		{"path traversal is not a boundary", []string{"ghcr.io/acme"}, "ghcr.io/acme../evil:1", false},
		{"docker hub short name", []string{"docker.io/library/redis"}, "redis:7", true},
		{"docker hub short name is not a registry host", []string{"redis"}, "redis:7", false},
		{"docker hub user image", []string{"docker.io/acme"}, "acme/worker:1", true},
		{"a short name is docker hub, not the named host", []string{"acme"}, "acme/worker:1", false},
		{"localhost is a registry", []string{"localhost:5000"}, "localhost:5000/w:1", true},
		{"one of several", []string{"quay.io/x", "registry.example.com"}, "registry.example.com/w", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ImageAllowed(tt.prefixes, tt.image); got != tt.want {
				t.Errorf("ImageAllowed(%q, %q) = %v, want %v (normalised %s)", tt.prefixes, tt.image, got, tt.want, NormalizeImage(tt.image))
			}
		})
	}
}
