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
//
// The vCon's and the links' spans start without attributes and get them
// once recording, a link's in one SetAttributes: the SDK copies a start
// option's attributes twice (into the start config, then into the span)
// and grows the span's slice again for each later SetAttributes, three
// allocations per link span where one does. No sampler the worker can be configured
// with (OTEL_TRACES_SAMPLER) reads attributes, and the attributes the
// spans end with, in their order, are those they had.
type spanKit struct {
	process string
	// processOpts are the vCon span's start options: a consumer span.
	processOpts []trace.SpanStartOption
	// processAttrs are the vCon span's first attributes by ingress list:
	// the chain and the list.
	processAttrs map[string][]attribute.KeyValue
	chain        string
	links        map[string]stepSpan
	storages     map[string]stepSpan
	// filtered are the vCon span's vcon.filtered attribute, by value.
	filtered [2][]attribute.KeyValue
}

// stepSpan is one link's or storage's span name and start options; a
// link's also its attributes by outcome (vcon.link, then vcon.outcome).
type stepSpan struct {
	name string
	opts []trace.SpanStartOption
	attr attribute.KeyValue // a link's vcon.link
	ends map[string][]attribute.KeyValue
}

func newSpanKit(chain Chain) spanKit {
	k := spanKit{
		process:      "vcon.process " + chain.Name,
		processOpts:  []trace.SpanStartOption{trace.WithSpanKind(trace.SpanKindConsumer)},
		processAttrs: make(map[string][]attribute.KeyValue, len(chain.Ingress)),
		chain:        chain.Name,
		links:        make(map[string]stepSpan, len(chain.Links)),
		storages:     make(map[string]stepSpan, len(chain.Storages)),
		filtered:     [2][]attribute.KeyValue{{attribute.Bool("vcon.filtered", false)}, {attribute.Bool("vcon.filtered", true)}},
	}
	for _, l := range chain.Ingress {
		k.processAttrs[l] = processAttributes(chain.Name, l)
	}
	for _, l := range chain.Links {
		k.links[l.Name] = newLinkSpan(l.Name)
	}
	for _, s := range chain.Storages {
		k.storages[s.Name] = newStorageSpan(s.Name)
	}
	return k
}

func newLinkSpan(name string) stepSpan {
	s := stepSpan{name: "link " + name, attr: attribute.String("vcon.link", name), ends: make(map[string][]attribute.KeyValue, len(linkOutcomes))}
	for _, o := range linkOutcomes {
		s.ends[o] = []attribute.KeyValue{s.attr, attribute.String("vcon.outcome", o)}
	}
	return s
}

func newStorageSpan(name string) stepSpan {
	return stepSpan{name: "storage " + name, opts: []trace.SpanStartOption{trace.WithAttributes(attribute.String("vcon.storage", name))}}
}

func processAttributes(chain, list string) []attribute.KeyValue {
	return []attribute.KeyValue{attribute.String("vcon.chain", chain), attribute.String("vcon.ingress_list", list)}
}

// setProcessAttributes gives a recording vCon span its first attributes:
// the chain and the ingress list from the kit's slice, then the uuid.
// Two calls, not one slice of the three: the SDK's slice then grows
// from two to four, and the vcon.filtered the span ends with fits,
// where from three it would grow again to six (448 bytes per vCon
// rather than 768).
func (k *spanKit) setProcessAttributes(span trace.Span, list, uuid string) {
	first, ok := k.processAttrs[list]
	if !ok {
		first = processAttributes(k.chain, list)
	}
	span.SetAttributes(first...)
	span.SetAttributes(attribute.String("vcon.uuid", uuid))
}

// ended is the attributes a link's span ends with, for the link's
// outcome.
func (s stepSpan) ended(outcome string) []attribute.KeyValue {
	if kv, ok := s.ends[outcome]; ok {
		return kv
	}
	return []attribute.KeyValue{s.attr, attribute.String("vcon.outcome", outcome)}
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
	return newLinkSpan(name)
}

// storage is link's counterpart for storages.
func (k *spanKit) storage(name string) stepSpan {
	if s, ok := k.storages[name]; ok {
		return s
	}
	return newStorageSpan(name)
}
