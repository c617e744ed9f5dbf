package plugin

import (
	"strconv"
	"strings"
)

// maxNameLength bounds object names: a Chain's name is also a label value.
const maxNameLength = 63

// objectName maps a conserver name to a DNS-1123 name unique in taken.
func objectName(name string, taken map[string]string) string {
	if n, ok := taken[name]; ok {
		return n
	}
	base := DNSName(name)
	used := map[string]bool{}
	for _, v := range taken {
		used[v] = true
	}
	n := base
	for i := 2; used[n]; i++ {
		suffix := "-" + strconv.Itoa(i)
		n = strings.TrimRight(truncate(base, maxNameLength-len(suffix)), "-.") + suffix
	}
	taken[name] = n
	return n
}

// DNSName makes a conserver name a Kubernetes object name: lower case, `_`
// and every other character outside [a-z0-9-] as `-`, starting and ending
// alphanumeric, at most 63 characters (a Chain's name is also a label value).
func DNSName(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(name) {
		if (r >= 'a' && r <= 'z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	s := strings.Trim(truncate(strings.Trim(b.String(), "-"), maxNameLength), "-")
	if s == "" {
		s = "unnamed"
	}
	return s
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
