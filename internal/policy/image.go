// Package policy holds the operator's admission rules for what a Chain may
// ask of it: which worker images it may run and which Redis servers it may
// reach. The rules are pure functions of the operator's flags and the
// Chain's spec, so a table pins down exactly what passes.
package policy

import "strings"

// ImageAllowed reports whether image may override the operator's worker
// image. prefixes are registry or repository prefixes
// (registry.example.com, registry.example.com/team,
// ghcr.io/acme/worker); none means no override is allowed.
//
// Matching is on path boundaries of the normalised reference, never on raw
// strings: registry.example.com allows registry.example.com/x but not
// registry.example.com.evil.io/x, registry.example.com:5000/x or
// registry.example.comx/y; a repository prefix such as ghcr.io/acme/worker
// allows ghcr.io/acme/worker:1 and ghcr.io/acme/worker/sub but not
// ghcr.io/acme/worker-evil. A short Docker Hub name (nginx, acme/x) is
// compared as docker.io/library/nginx, docker.io/acme/x, which is where
// the kubelet pulls it from.
func ImageAllowed(prefixes []string, image string) bool {
	ref := NormalizeImage(image)
	for _, p := range prefixes {
		p = strings.TrimSuffix(strings.TrimSpace(p), "/")
		if p == "" {
			continue
		}
		if !strings.Contains(p, "/") {
			// A registry host: only what comes from that host. Lowercase
			// the host: DNS names are case-insensitive.
			if strings.HasPrefix(ref, strings.ToLower(p)+"/") {
				return true
			}
			continue
		}
		host, path, _ := strings.Cut(p, "/")
		p = strings.ToLower(host) + "/" + path
		if !strings.HasPrefix(ref, p) {
			continue
		}
		switch rest := ref[len(p):]; {
		case rest == "", rest[0] == '/', rest[0] == ':', rest[0] == '@':
			return true
		}
	}
	return false
}

// NormalizeImage returns the reference with its registry host spelled out
// (docker.io for a short name, library/ for an official image) and the host
// lowercased, as the container runtime resolves it.
func NormalizeImage(image string) string {
	image = strings.TrimSpace(image)
	first, rest, hasSlash := strings.Cut(image, "/")
	if !hasSlash || !(strings.ContainsAny(first, ".:") || first == "localhost" || strings.ToLower(first) != first) {
		if !hasSlash {
			return "docker.io/library/" + image
		}
		return "docker.io/" + image
	}
	host := strings.ToLower(first)
	if host == "index.docker.io" || host == "registry-1.docker.io" {
		host = "docker.io"
	}
	if host == "docker.io" && !strings.Contains(rest, "/") {
		rest = "library/" + rest
	}
	return host + "/" + rest
}
