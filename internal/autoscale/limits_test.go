package autoscale

import (
	"strings"
	"testing"

	"github.com/vcon-operator/vcon-operator/internal/observer"
)

// TestDecideLinkLimits: while a link's limits bind, the replicas stop at
// what the limit can use; a raised limit scales up at the next decision.
func TestDecideLinkLimits(t *testing.T) {
	policy := func(links ...LinkLimit) Policy {
		return with(basePolicy(), func(p *Policy) { p.Concurrency, p.MaxReplicas, p.Links = 32, 20, links })
	}
	rate := func(achieved, factor float64, waiting int64) observer.LinkUsage {
		return observer.LinkUsage{Link: "analyze", Factor: factor, RequestsPerMinute: achieved, RatesKnown: true, Waiting: waiting}
	}
	tests := []struct {
		name     string
		policy   Policy
		current  int32
		inFlight int64
		links    []observer.LinkUsage
		want     int32
		reason   string
		binding  string // link that binds, "" for none
		limit    string
		msgHas   string
	}{
		{name: "the rate binds: one worker is all it can use",
			policy: policy(LinkLimit{Link: "analyze", RequestsPerMinute: 600}), current: 1, inFlight: 32,
			links: []observer.LinkUsage{rate(600, 1, 20)}, want: 1, reason: ReasonLinkLimit, binding: "analyze", limit: "requests",
			msgHas: "link analyze's limit of 600 requests/min"},
		{name: "ten workers mostly waiting: still one",
			policy: policy(LinkLimit{Link: "analyze", RequestsPerMinute: 600}), current: 1, inFlight: 320,
			links: []observer.LinkUsage{rate(590, 1, 300)}, want: 1, reason: ReasonLinkLimit, binding: "analyze", limit: "requests"},
		{name: "limit raised fourfold: four times the working slots",
			policy: policy(LinkLimit{Link: "analyze", RequestsPerMinute: 2400}), current: 1, inFlight: 32,
			links: []observer.LinkUsage{rate(600, 1, 20)}, want: 2, reason: ReasonLinkLimit, binding: "analyze"},
		{name: "limit raised far: the queues decide again",
			policy: policy(LinkLimit{Link: "analyze", RequestsPerMinute: 600000}), current: 1, inFlight: 32,
			links: []observer.LinkUsage{rate(600, 1, 20)}, want: 20, reason: ReasonAtMaxReplicas},
		{name: "429s cut the rate: the effective rate is named",
			policy: policy(LinkLimit{Link: "analyze", RequestsPerMinute: 600}), current: 1, inFlight: 32,
			links: []observer.LinkUsage{rate(300, 0.5, 20)}, want: 1, reason: ReasonLinkLimit, binding: "analyze", msgHas: "300 requests/min"},
		{name: "concurrency binds",
			policy: policy(LinkLimit{Link: "analyze", MaxConcurrent: 20}), current: 2, inFlight: 64,
			links: []observer.LinkUsage{{Link: "analyze", InUse: 20, Waiting: 10, Factor: 1}}, want: 2, reason: ReasonLinkLimit, binding: "analyze", limit: "concurrency",
			msgHas: "20 concurrent calls"},
		{name: "nothing waits: the limit does not bind",
			policy: policy(LinkLimit{Link: "analyze", RequestsPerMinute: 600}), current: 1, inFlight: 32,
			links: []observer.LinkUsage{rate(100, 1, 0)}, want: 20, reason: ReasonAtMaxReplicas},
		{name: "two links: the tighter binds",
			policy: policy(LinkLimit{Link: "analyze", RequestsPerMinute: 6000}, LinkLimit{Link: "transcribe", MaxConcurrent: 8}), current: 1, inFlight: 96,
			links: []observer.LinkUsage{rate(1200, 1, 4), {Link: "transcribe", InUse: 8, Waiting: 60, Factor: 1}},
			want:  1, reason: ReasonLinkLimit, binding: "transcribe", limit: "concurrency"},
		{name: "waiting before any rate is measured holds the working slots",
			policy: policy(LinkLimit{Link: "analyze", RequestsPerMinute: 600}), current: 3, inFlight: 96,
			links: []observer.LinkUsage{{Link: "analyze", Waiting: 10, Factor: 1}}, want: 3, reason: ReasonLinkLimit, binding: "analyze"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			obs := observed(t0, 3000, tc.inFlight, 0, false)
			obs.Links = tc.links
			d, _ := Decide(tc.policy, obs, t0, tc.current, State{})
			if d.Replicas != tc.want || d.Reason != tc.reason {
				t.Fatalf("replicas %d (%s: %s), want %d (%s)", d.Replicas, d.Reason, d.Message, tc.want, tc.reason)
			}
			switch {
			case tc.binding == "" && d.LimitedBy != nil:
				t.Fatalf("limited by %+v, want no link", *d.LimitedBy)
			case tc.binding != "" && (d.LimitedBy == nil || d.LimitedBy.Link != tc.binding):
				t.Fatalf("limited by %+v, want %s", d.LimitedBy, tc.binding)
			case tc.limit != "" && d.LimitedBy.Limit != tc.limit:
				t.Fatalf("limit %s binds, want %s", d.LimitedBy.Limit, tc.limit)
			}
			if !strings.Contains(d.Message, tc.msgHas) {
				t.Fatalf("message %q does not say %q", d.Message, tc.msgHas)
			}
		})
	}
}
