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
		"links.decrypt",
		"links.deepgram_link",
		"links.diet",
		"links.encrypt",
		"links.expire_vcon",
		"links.groq_whisper",
		"links.http_step",
		"links.jq_link",
		"links.lawful_basis",
		"links.openai_transcribe",
		"links.post_analysis_to_slack",
		"links.redact",
		"links.sampler",
		"links.sign",
		"links.tag",
		"links.tag_router",
		"links.transcribe",
		"links.verify",
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

// StrictOption is the option of the link modules in strictLinks: false
// (their default, so a conserver config runs as conserver ran it) does what
// conserver's module does with a failure it cannot act on, logs it and
// goes on; true makes the failure the link's error (retried when it may
// pass, else dead-lettered). A Link a user writes gets true when it does
// not say (workload.Render), an imported one says false (kubectl vcon
// import); docs/migrating-from-conserver.md has why.
const StrictOption = "strict"

// strictLinks take StrictOption (a test in internal/links checks that each
// reads it), sorted.
var strictLinks = []string{"links.jq_link", "links.webhook"}

// TakesStrict reports whether the link module reads StrictOption.
func TakesStrict(module string) bool { return slices.Contains(strictLinks, module) }

// StrictLinks returns the link modules that read StrictOption. The slice is
// the caller's.
func StrictLinks() []string { return slices.Clone(strictLinks) }
