// Package modules is the catalog of module names the worker (cmd/conserver)
// is built with: names only, no code. The operator and the kubectl plugin
// check a Link's or Storage's module against it without linking the
// modules themselves (and with them the AWS SDK, pgx and gojq). A test
// pins it to what internal/links and internal/storage register, so a
// module added there and not here fails the build's tests, not a user.
package modules

import "slices"

// links and storages are sorted, as links.Known() and storage.Known() are.
var (
	links = []string{
		"links.analyze",
		"links.analyze_and_label",
		"links.analyze_vcon",
		"links.check_and_tag",
		"links.deepgram_link",
		"links.diet",
		"links.expire_vcon",
		"links.groq_whisper",
		"links.http_step",
		"links.jq_link",
		"links.openai_transcribe",
		"links.post_analysis_to_slack",
		"links.redact",
		"links.sampler",
		"links.tag",
		"links.tag_router",
		"links.transcribe",
		"links.webhook",
	}
	storages = []string{
		"storage.elasticsearch",
		"storage.file",
		"storage.mongo",
		"storage.postgres",
		"storage.redis_storage",
		"storage.s3",
		"storage.sftp",
		"storage.vcon_mcp",
		"storage.webhook",
	}
)

// Links returns the link modules the worker has, sorted. The slice is the
// caller's.
func Links() []string { return slices.Clone(links) }

// Storages returns the storage modules the worker has, sorted. The slice is
// the caller's.
func Storages() []string { return slices.Clone(storages) }

// IsLink reports whether the worker has the link module.
func IsLink(module string) bool { return slices.Contains(links, module) }

// IsStorage reports whether the worker has the storage module.
func IsStorage(module string) bool { return slices.Contains(storages, module) }
