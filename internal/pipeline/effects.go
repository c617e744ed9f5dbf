package pipeline

import (
	"encoding/json"
	"slices"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/links"
)

// linkEffect is what one completed link asked the vCon's outcome to do.
// Effects apply only with an outcome, so when a run fails after a link
// that routed the vCon (links.tag_router) or set its TTL
// (links.expire_vcon), they are kept with the progress (the state's e:
// field) and applied by the run that resumes after that link; otherwise a
// retry or a replay would route the vCon nowhere.
type linkEffect struct {
	Link   string        `json:"link"`
	Routes []string      `json:"routes,omitempty"`
	TTL    time.Duration `json:"ttl,omitempty"`
}

func effectOf(step string, res links.Result) (linkEffect, bool) {
	if len(res.Routes) == 0 && res.TTL <= 0 {
		return linkEffect{}, false
	}
	return linkEffect{Link: step, Routes: slices.Clone(res.Routes), TTL: res.TTL}, true
}

// resumedEffects are the kept effects of the links a run resumes after
// (the first resume links of the chain): a link that runs again gives its
// own.
func resumedEffects(kept []byte, completed []string) []linkEffect {
	if len(kept) == 0 || len(completed) == 0 {
		return nil
	}
	var all []linkEffect
	if json.Unmarshal(kept, &all) != nil {
		return nil // written by hand; the links' results are in the body
	}
	var out []linkEffect
	for _, e := range all {
		if slices.Contains(completed, e.Link) {
			out = append(out, e)
		}
	}
	return out
}

// encodeEffects is what the state keeps of effects: those of the links in
// completed, nil when there are none.
func encodeEffects(effects []linkEffect, completed []string) []byte {
	var keep []linkEffect
	for _, e := range effects {
		if slices.Contains(completed, e.Link) {
			keep = append(keep, e)
		}
	}
	if len(keep) == 0 {
		return nil
	}
	b, _ := json.Marshal(keep)
	return b
}
