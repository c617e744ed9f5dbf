package pipeline

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// defaultProvider is OpenTelemetry's global tracer provider before any
// is set (telemetry.Setup sets one only when an exporter is configured):
// its spans record nothing and carry their parent's span context.
var defaultProvider = otel.GetTracerProvider()

// passThrough reports whether the worker's spans would only pass the
// producer's context through (no tracer provider was set): starting them
// then is work for nothing, three spans per vCon. A provider set later
// (the global one delegates to it) is seen at the next vCon.
func (p *Processor) passThrough() bool {
	return otel.GetTracerProvider() == defaultProvider
}

// startSpan starts a span of the vCon, or, passing through, returns ctx
// and the span it holds: the same span context the started span would
// have had, and nothing recorded either way.
func (p *Processor) startSpan(ctx context.Context, name string, opts []trace.SpanStartOption) (context.Context, trace.Span) {
	if p.passThrough() {
		return ctx, trace.SpanFromContext(ctx)
	}
	return p.tracer.Start(ctx, name, opts...)
}

// spanKit holds what every vCon's spans share, made once per processor:
// the span names ("vcon.process <chain>", "link <name>", "storage <name>"),
// their start options and constant attributes, and the attributes an
// outcome sets. Built per vCon, each was an allocation a traced worker
// paid per link and storage of every vCon; the attributes that vary (the
// uuid) are set only on a span that records.
type spanKit struct {
	process string
	// processOpts are the vCon span's start options by ingress list: a
	// consumer span with the chain and the list.
	processOpts map[string][]trace.SpanStartOption
	chain       string
	links       map[string]stepSpan
	storages    map[string]stepSpan
	// outcomes are a link span's vcon.outcome attribute, by outcome.
	outcomes map[string][]attribute.KeyValue
	// filtered are the vCon span's vcon.filtered attribute, by value.
	filtered [2][]attribute.KeyValue
}

// stepSpan is one link's or storage's span name and start options.
type stepSpan struct {
	name string
	opts []trace.SpanStartOption
}

func newSpanKit(chain Chain) spanKit {
	k := spanKit{
		process:     "vcon.process " + chain.Name,
		processOpts: make(map[string][]trace.SpanStartOption, len(chain.Ingress)),
		chain:       chain.Name,
		links:       make(map[string]stepSpan, len(chain.Links)),
		storages:    make(map[string]stepSpan, len(chain.Storages)),
		outcomes:    make(map[string][]attribute.KeyValue, len(linkOutcomes)),
		filtered:    [2][]attribute.KeyValue{{attribute.Bool("vcon.filtered", false)}, {attribute.Bool("vcon.filtered", true)}},
	}
	for _, l := range chain.Ingress {
		k.processOpts[l] = processOptions(chain.Name, l)
	}
	for _, o := range linkOutcomes {
		k.outcomes[o] = []attribute.KeyValue{attribute.String("vcon.outcome", o)}
	}
	for _, l := range chain.Links {
		k.links[l.Name] = newStepSpan("link ", "vcon.link", l.Name)
	}
	for _, s := range chain.Storages {
		k.storages[s.Name] = newStepSpan("storage ", "vcon.storage", s.Name)
	}
	return k
}

func newStepSpan(prefix, key, name string) stepSpan {
	return stepSpan{name: prefix + name, opts: []trace.SpanStartOption{trace.WithAttributes(attribute.String(key, name))}}
}

func processOptions(chain, list string) []trace.SpanStartOption {
	return []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("vcon.chain", chain), attribute.String("vcon.ingress_list", list))}
}

// processStart is the vCon span's start options for a vCon of list.
func (k *spanKit) processStart(list string) []trace.SpanStartOption {
	if opts, ok := k.processOpts[list]; ok {
		return opts
	}
	return processOptions(k.chain, list)
}

// outcome is the attribute a link span ends with.
func (k *spanKit) outcome(o string) []attribute.KeyValue {
	if kv, ok := k.outcomes[o]; ok {
		return kv
	}
	return []attribute.KeyValue{attribute.String("vcon.outcome", o)}
}

// wasFiltered is the vCon span's vcon.filtered attribute.
func (k *spanKit) wasFiltered(halted bool) []attribute.KeyValue {
	if halted {
		return k.filtered[1]
	}
	return k.filtered[0]
}

// link is the span of the link named name; one the chain does not hold
// (never, since the processor runs its own chain) is made on the spot.
func (k *spanKit) link(name string) stepSpan {
	if s, ok := k.links[name]; ok {
		return s
	}
	return newStepSpan("link ", "vcon.link", name)
}

// storage is link's counterpart for storages.
func (k *spanKit) storage(name string) stepSpan {
	if s, ok := k.storages[name]; ok {
		return s
	}
	return newStepSpan("storage ", "vcon.storage", name)
}
