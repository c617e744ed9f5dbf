package config

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"unicode"

	"github.com/vcon-operator/vcon-operator/internal/queue"
)

// Validator holds the module names the running binary implements. The
// worker passes links.Known() and storage.Known(); taking plain lists keeps
// this package free of the module packages. A nil list skips that check.
type Validator struct {
	Links    []string
	Storages []string
}

// Validate reports every problem of the configuration, each naming its key
// path and what to do. Disabled chains are checked too: enabling one later
// must not be the moment a typo surfaces. A Validator with module lists is
// a worker's: it also refuses what conserver would run and the worker does
// not (Unsupported), so that nothing configured is silently skipped.
func (c *Config) Validate(v Validator) error {
	var errs []error
	fail := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	checkModules := func(section, kind string, mods map[string]Module, known []string) {
		for _, name := range sortedKeys(mods) {
			m := mods[name]
			p := childPath(childPath(section, name), "module")
			switch {
			case m.Module == "":
				fail(p, "is missing; set the %s module, one of: %s", kind, knownList(known))
			case known != nil && !slices.Contains(known, m.Module):
				fail(p, "unknown %s module %q; known: %s", kind, m.Module, knownList(known))
			}
		}
	}
	checkModules("links", "link", c.Links, v.Links)
	checkModules("storages", "storage", c.Storages, v.Storages)

	if len(c.Chains) == 0 {
		fail("chains", "no chain is defined; add one under chains: with its links and ingress_lists")
	}
	consumer := map[string]string{} // ingress list -> first enabled chain reading it
	for _, name := range sortedKeys(c.Chains) {
		ch := c.Chains[name]
		p := childPath("chains", name)
		if !ch.HasLinksKey && len(ch.Links) == 0 {
			fail(p, "has no links key, so conserver would dead-letter every vCon; list the links, or write links: [] for a chain that only stores")
		}
		for i, l := range ch.Links {
			if _, ok := c.Links[l]; !ok {
				fail(indexPath(p+".links", i), "link %q is not defined under links:; define it or remove it from the chain", l)
			}
		}
		for i, s := range ch.Storages {
			if _, ok := c.Storages[s]; !ok {
				fail(indexPath(p+".storages", i), "storage %q is not defined under storages:; define it or remove it from the chain", s)
			}
		}
		if len(ch.IngressLists) == 0 {
			fail(p+".ingress_lists", "is empty; name at least one Redis list the chain reads from")
		}
		errs = append(errs, checkListNames(p+".ingress_lists", ch.IngressLists)...)
		errs = append(errs, checkListNames(p+".egress_lists", ch.EgressLists)...)
		for i, e := range ch.EgressLists {
			if slices.Contains(ch.IngressLists, e) {
				fail(indexPath(p+".egress_lists", i), "%q is also an ingress list of this chain, so every vCon would loop through it forever; use another list", e)
			}
		}
		if ch.Timeout < 0 {
			fail(p+".timeout", "is negative; use 0 for no timeout or a positive number of seconds")
		}
		if ch.MaxDeliveries < 0 || ch.MaxDeliveries > 100 {
			fail(p+".max_deliveries", "is %d; use 1 to 100 (or leave it out for 3)", ch.MaxDeliveries)
		}
		if r := ch.Retry; r != nil {
			if r.Attempts < 1 || r.Attempts > 100 {
				fail(p+".retry.attempts", "is %d; use 1 (no retry) to 100", r.Attempts)
			}
			if r.InitialBackoff < 0 || r.MaxBackoff < 0 {
				fail(p+".retry", "a backoff is negative; use seconds or a duration such as 30s")
			}
			if r.MaxBackoff > 0 && r.InitialBackoff > r.MaxBackoff {
				fail(p+".retry.initial_backoff", "is longer than max_backoff")
			}
			if r.Jitter < 0 || r.Jitter > 1 {
				fail(p+".retry.jitter", "is %g; use a fraction from 0 to 1", r.Jitter)
			}
		}
		if !ch.Enabled {
			continue
		}
		for _, in := range slices.Compact(slices.Sorted(slices.Values(ch.IngressLists))) {
			if first, taken := consumer[in]; taken {
				fail(p+".ingress_lists", "ingress list %q is also read by enabled chain %q, so each vCon would reach only one of chains %q and %q; give them different lists or disable one", in, first, first, name)
				continue
			}
			consumer[in] = name
		}
	}
	errs = append(errs, c.validateFollowers()...)
	if v.Links != nil || v.Storages != nil {
		errs = append(errs, c.Unsupported(append(slices.Clone(v.Links), v.Storages...))...)
	}
	for _, list := range sortedKeys(c.IngressAuth) {
		for i, key := range c.IngressAuth[list] {
			if strings.TrimSpace(key) == "" {
				fail(indexPath(childPath("ingress_auth", list), i), "is empty, which would accept requests without a key; remove it")
			}
		}
	}
	return errors.Join(errs...)
}

// MaxFetchVconLimit bounds a follower's fetch_vcon_limit: the API answers
// GET /vcon/egress with at most that many uuids (internal/api).
const MaxFetchVconLimit = 10_000

func (c *Config) validateFollowers() []error {
	var errs []error
	fail := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	for _, name := range sortedKeys(c.Followers) {
		f, p := c.Followers[name], childPath("followers", name)
		if u, err := url.Parse(f.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			fail(p+".url", "must be the http(s) base URL of the conserver API to follow, such as https://upstream.example.com/api")
		} else if u.User != nil {
			fail(p+".url", "carries credentials; put the API token in auth_token")
		}
		switch {
		case f.EgressList == "":
			fail(p+".egress_list", "is missing; name the upstream egress list to pull")
		case strings.IndexFunc(f.EgressList, unicode.IsSpace) >= 0:
			fail(p+".egress_list", "list name %q contains whitespace; remove it", f.EgressList)
		}
		if len(f.IngressLists) == 0 {
			fail(p+".follower_ingress_list", "is missing; name the local ingress list the followed vCons go to")
		}
		errs = append(errs, checkListNames(p+".follower_ingress_list", f.IngressLists)...)
		if f.PullingInterval <= 0 {
			fail(p+".pulling_interval", "must be a positive number of seconds (or a duration such as \"30s\") between polls")
		}
		if f.FetchVconLimit < 1 || f.FetchVconLimit > MaxFetchVconLimit {
			fail(p+".fetch_vcon_limit", "is %d; use 1 to %d vCons per poll", f.FetchVconLimit, MaxFetchVconLimit)
		}
	}
	return errs
}

// Unsupported reports what conserver would run from this configuration and
// the worker does not, one error per entry, each saying what to use
// instead. known are the module names the worker is built with.
//
//   - imports: conserver imports each module at start and pip-installs it
//     when missing. The worker cannot load Python; an entry naming one of
//     its own modules (links.tag) needs nothing and is accepted, any other
//     is refused rather than ignored, since the chains that needed it would
//     run without it.
//   - tracers: conserver calls each tracer's run() before the first link
//     and after every link of every chain (tracers.jlinc signs audit
//     events). The worker runs none; an audit trail that silently stops is
//     worse than a worker that refuses to start, so every entry is refused.
//     What the worker does instead is export OpenTelemetry spans over OTLP
//     (internal/telemetry).
func (c *Config) Unsupported(known []string) []error {
	var errs []error
	for _, name := range sortedKeys(c.Imports) {
		im, p := c.Imports[name], childPath("imports", name)
		switch {
		case im.Module == "":
			errs = append(errs, fmt.Errorf("%s.module: is missing; built-in modules need no import, so remove the entry", p))
		case !slices.Contains(known, im.Module):
			errs = append(errs, fmt.Errorf("%s: module %q cannot be imported: this worker runs only its built-in modules (%s) and does not load or pip-install Python ones; remove the entry, and run custom code as a step service (a links.http_step link, or a Link of kind http or container: docs/steps.md)", p, im.Module, knownList(known)))
		}
	}
	for _, name := range sortedKeys(c.Tracers) {
		errs = append(errs, fmt.Errorf("%s: tracer module %q is not run: this worker runs no conserver tracers; it exports OpenTelemetry traces (one span per vCon, link and storage) over OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set. Remove the tracers: section, and send audit events from a step service or a links.webhook link if you need them", childPath("tracers", name), c.Tracers[name].Module))
	}
	return errs
}

// checkListNames checks Redis list names: a blank or spaced name is almost
// always a YAML slip, and a repeated one would be read twice per pass.
func checkListNames(path string, names []string) []error {
	var errs []error
	seen := map[string]bool{}
	for i, n := range names {
		p := indexPath(path, i)
		switch {
		case n == "":
			errs = append(errs, fmt.Errorf("%s: is empty; name a Redis list", p))
		case strings.IndexFunc(n, unicode.IsSpace) >= 0:
			errs = append(errs, fmt.Errorf("%s: list name %q contains whitespace; remove it", p, n))
		case seen[n]:
			errs = append(errs, fmt.Errorf("%s: list %q is listed twice; remove one", p, n))
		case queue.ListNameConflict(n) != "":
			errs = append(errs, fmt.Errorf("%s: list %q cannot be a queue: %s; use another name", p, n, queue.ListNameConflict(n)))
		}
		seen[n] = true
	}
	return errs
}

func knownList(known []string) string {
	if len(known) == 0 {
		return "(none registered)"
	}
	return strings.Join(known, ", ")
}
