package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"

	"github.com/vcon-operator/vcon-operator/internal/config"
	"github.com/vcon-operator/vcon-operator/internal/links"
	"github.com/vcon-operator/vcon-operator/internal/ratelimit"
	"github.com/vcon-operator/vcon-operator/internal/storage"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// Build makes the runnable chains of a validated config: every enabled
// chain, or only the one named. Every link and storage is constructed (and
// so its options checked) before anything runs: a broken config never
// starts half-configured. Every storage of the config is built, also one
// no chain here writes to: each chain reads a missing body back from all
// of them (Chain.ReadFrom), as conserver does. Close the returned
// storages when done.
func Build(ctx context.Context, cfg *config.Config, only string, linkDeps links.Deps, storageDeps storage.Deps) ([]Chain, func(), error) {
	names := make([]string, 0, len(cfg.Chains))
	for name := range cfg.Chains {
		names = append(names, name)
	}
	sort.Strings(names)
	if only != "" {
		if _, ok := cfg.Chains[only]; !ok {
			return nil, nil, fmt.Errorf("chain %q is not in the config (chains: %v)", only, names)
		}
		names = []string{only}
	}

	builtStorages := map[string]storage.Storage{}
	closeAll := func() {
		for _, s := range builtStorages {
			if c, ok := s.(storage.Closer); ok {
				_ = c.Close()
			}
		}
	}
	var errs []error
	var readFrom []Sink
	for _, sn := range cfg.StorageNames() {
		m := cfg.Storages[sn]
		s, err := storage.New(ctx, sn, m.Module, m.Options, storageDeps)
		if err != nil {
			errs = append(errs, fmt.Errorf("storages: %w", err))
			continue
		}
		builtStorages[sn] = s
		if _, ok := s.(storage.Getter); ok {
			readFrom = append(readFrom, Sink{Name: sn, Storage: s})
		}
	}
	var chains []Chain
	for _, name := range names {
		cc := cfg.Chains[name]
		if !cc.Enabled {
			continue // conserver ignores enabled; a disabled chain consumes nothing here
		}
		ch := Chain{Name: name, Ingress: cc.IngressLists, Egress: cc.EgressLists, Timeout: cc.Timeout, MaxDeliveries: cc.MaxDeliveries, ReadFrom: readFrom, StorageDeadLetters: cc.DeadLettersStorage()}
		if r := cc.Retry; r != nil {
			ch.Retry = RetryPolicy{Attempts: r.Attempts, InitialBackoff: r.InitialBackoff, MaxBackoff: r.MaxBackoff, Jitter: r.Jitter}
		}
		chainDeps := linkDeps
		chainDeps.Chain = name
		// build returns the storage named sn, built once for every chain
		// and link that names it.
		build := func(sn string) (storage.Storage, error) {
			if s, ok := builtStorages[sn]; ok {
				return s, nil
			}
			m := cfg.Storages[sn]
			s, err := storage.New(ctx, sn, m.Module, m.Options, storageDeps)
			if err != nil {
				return nil, err
			}
			builtStorages[sn] = s
			return s, nil
		}
		for _, ln := range cc.Links {
			m := cfg.Links[ln]
			l, err := links.New(ln, m.Module, m.Options, chainDeps)
			if err != nil {
				errs = append(errs, fmt.Errorf("chains.%s: %w", name, err))
				continue
			}
			step := Step{Name: ln, Link: l}
			if st, ok := l.(links.OriginalStorer); ok {
				for _, sn := range st.OriginalStorages() {
					if err := originalStorageAllowed(cfg, cc.Storages, ln, sn); err != nil {
						errs = append(errs, fmt.Errorf("chains.%s: %w", name, err))
						continue
					}
					s, err := build(sn)
					if err != nil {
						errs = append(errs, fmt.Errorf("chains.%s: link %q: original storage: %w", name, ln, err))
						continue
					}
					step.Originals = append(step.Originals, Sink{Name: sn, Storage: s})
				}
			}
			ch.Links = append(ch.Links, step)
			if lim := m.Limits; lim != nil {
				budget := lim.Budget
				if budget == "" {
					budget = ln
				}
				if ch.Limits == nil {
					ch.Limits = map[string]LinkLimits{}
				}
				ch.Limits[ln] = LinkLimits{Budget: budget, Limits: ratelimit.Limits{
					RequestsPerMinute: lim.RequestsPerMinute, TokensPerMinute: lim.TokensPerMinute, MaxConcurrent: lim.MaxConcurrent,
				}}
			}
		}
		if err := checkForms(ch.Links); err != nil {
			errs = append(errs, fmt.Errorf("chains.%s: %w", name, err))
		}
		for _, sn := range cc.Storages {
			s, err := build(sn)
			if err != nil {
				errs = append(errs, fmt.Errorf("chains.%s: %w", name, err))
				continue
			}
			ch.Storages = append(ch.Storages, Sink{Name: sn, Storage: s})
		}
		chains = append(chains, ch)
	}
	if len(errs) > 0 {
		closeAll()
		return nil, nil, errors.Join(errs...)
	}
	return chains, closeAll, nil
}

// originalStorageAllowed checks a storage a link writes unredacted
// originals to: it must be defined under storages:, and must not also be
// one of the chain's storages, which receive the redacted vCon: the
// original would reach a sink the chain's users may read.
func originalStorageAllowed(cfg *config.Config, chainStorages []string, link, sn string) error {
	if _, ok := cfg.Storages[sn]; !ok {
		return fmt.Errorf("link %q: original_storages: storage %q is not defined under storages:; define it (a restricted bucket or table) or remove it", link, sn)
	}
	if slices.Contains(chainStorages, sn) {
		return fmt.Errorf("link %q: original_storages: storage %q is also one of the chain's storages, which receive the redacted vCon; the unredacted original must go to a storage of its own", link, sn)
	}
	return nil
}

// checkForms refuses a chain in which a link cannot run on the form the
// links before it leave every vCon in: a content link after links.sign
// would only ever dead-letter. What arrives at ingress may be in any
// form, so the first links are checked per vCon, by the processor.
func checkForms(steps []Step) error {
	var (
		known bool
		form  vcon.Form
		by    string
	)
	for _, s := range steps {
		if known && !links.Accepts(s.Link, form) {
			return fmt.Errorf("link %s cannot run on the %s vCons link %s leaves: move it before %s, or open the vCon between them (links.verify, links.decrypt)", s.Name, form, by, by)
		}
		if fl, ok := s.Link.(links.FormLink); ok {
			if f, sets := fl.Output(); sets {
				known, form, by = true, f, s.Name
			}
		}
	}
	return nil
}
