package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/vcon-operator/vcon-operator/internal/config"
	"github.com/vcon-operator/vcon-operator/internal/links"
	"github.com/vcon-operator/vcon-operator/internal/storage"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// Build makes the runnable chains of a validated config: every enabled
// chain, or only the one named. Every link and storage is constructed (and
// so its options checked) before anything runs: a broken config never
// starts half-configured. Close the returned storages when done.
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
	var chains []Chain
	var errs []error
	for _, name := range names {
		cc := cfg.Chains[name]
		if !cc.Enabled {
			continue // conserver ignores enabled; a disabled chain consumes nothing here
		}
		ch := Chain{Name: name, Ingress: cc.IngressLists, Egress: cc.EgressLists, Timeout: cc.Timeout, MaxDeliveries: cc.MaxDeliveries}
		if r := cc.Retry; r != nil {
			ch.Retry = RetryPolicy{Attempts: r.Attempts, InitialBackoff: r.InitialBackoff, MaxBackoff: r.MaxBackoff, Jitter: r.Jitter}
		}
		for _, ln := range cc.Links {
			m := cfg.Links[ln]
			l, err := links.New(ln, m.Module, m.Options, linkDeps)
			if err != nil {
				errs = append(errs, fmt.Errorf("chains.%s: %w", name, err))
				continue
			}
			ch.Links = append(ch.Links, Step{Name: ln, Link: l})
		}
		if err := checkForms(ch.Links); err != nil {
			errs = append(errs, fmt.Errorf("chains.%s: %w", name, err))
		}
		for _, sn := range cc.Storages {
			s, ok := builtStorages[sn]
			if !ok {
				m := cfg.Storages[sn]
				var err error
				s, err = storage.New(ctx, sn, m.Module, m.Options, storageDeps)
				if err != nil {
					errs = append(errs, fmt.Errorf("chains.%s: %w", name, err))
					continue
				}
				builtStorages[sn] = s
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
