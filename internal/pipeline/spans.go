package pipeline

import (
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// spanKit holds what every vCon's spans share, made once per processor:
// the span names ("vcon.process <chain>", "link <name>", "storage <name>")
// and their constant attributes. Built per vCon, each span's name and
// attribute option were allocations a traced worker paid per link and
// storage of every vCon.
type spanKit struct {
	process      string
	processChain attribute.KeyValue
	consumer     trace.SpanStartOption
	links        map[string]stepSpan
	storages     map[string]stepSpan
}

// stepSpan is one link's or storage's span name and start options.
type stepSpan struct {
	name string
	opts []trace.SpanStartOption
}

func newSpanKit(chain Chain) spanKit {
	k := spanKit{
		process:      "vcon.process " + chain.Name,
		processChain: attribute.String("vcon.chain", chain.Name),
		consumer:     trace.WithSpanKind(trace.SpanKindConsumer),
		links:        make(map[string]stepSpan, len(chain.Links)),
		storages:     make(map[string]stepSpan, len(chain.Storages)),
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
