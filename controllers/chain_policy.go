package controllers

import (
	"fmt"
	"strings"
)

// Reasons of a Ready=False Chain that asks for something the operator's
// policy flags do not allow.
const (
	// ReasonImageNotAllowed: workers.image is outside
	// --allowed-worker-image-prefixes.
	ReasonImageNotAllowed = "ImageNotAllowed"
	// ReasonRedisNotAllowed: the Chain's Redis URL names a host outside
	// --allowed-redis-hosts.
	ReasonRedisNotAllowed = "RedisNotAllowed"
)

func imageNotAllowedMessage(image string, prefixes []string) string {
	if len(prefixes) == 0 {
		return fmt.Sprintf("workers.image %q is refused: this operator allows no worker image override (--allowed-worker-image-prefixes is empty); remove workers.image to run the operator's image, or ask the operator's administrator to allow the image's registry", image)
	}
	return fmt.Sprintf("workers.image %q is refused: this operator allows worker images only under %s (--allowed-worker-image-prefixes); use an image there, or remove workers.image to run the operator's image", image, strings.Join(prefixes, ", "))
}
