package links

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strings"

	"github.com/itchyny/gojq"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func init() { Register("links.jq_link", newJQ) }

// jqLink forwards or halts a vCon by a jq predicate.
type jqLink struct {
	name           string
	filter         string
	code           *gojq.Code
	forwardMatches bool
	// strict dead-letters a vCon whose program raised at run time (a
	// type error on a field this vCon lacks, error()). Off, the vCon is
	// filtered out and the error logged and counted, as conserver does;
	// see docs/migrating-from-conserver.md for which configs get which.
	strict    bool
	logger    *slog.Logger
	tolerated *prometheus.CounterVec
}

func newJQ(name string, raw map[string]any, deps Deps) (Link, error) {
	o := options.New(raw)
	l := &jqLink{
		name: name, filter: o.String("filter", "."), forwardMatches: o.Bool("forward_matches", true),
		strict: o.Bool("strict", false), logger: deps.Logger,
	}
	if strings.TrimSpace(l.filter) == "" {
		o.Failf("filter", "empty jq program")
	} else if code, err := compileJQ(l.filter); err != nil {
		o.Failf("filter", "invalid jq program: %v", err)
	} else {
		l.code = code
	}
	if err := o.Err(); err != nil {
		return nil, err
	}
	tolerated, err := toleratedErrors(deps.Metrics)
	if err != nil {
		return nil, err
	}
	l.tolerated = tolerated
	return l, nil
}

// compileJQ compiles at load time: conserver compiles on every vCon and
// silently filters everything when the program is broken, which hides the
// typo. No environment loader: $ENV and env stay empty, so a filter cannot
// read the operator's secrets.
func compileJQ(filter string) (*gojq.Code, error) {
	q, err := gojq.Parse(filter)
	if err != nil {
		return nil, err
	}
	return gojq.Compile(q)
}

func (l *jqLink) Run(ctx context.Context, v *vcon.VCon) (Result, error) {
	matched, err := l.match(ctx, v)
	var raised *jqRuntimeError
	if err != nil && !l.strict && errors.As(err, &raised) {
		// conserver catches the exception, logs it and returns None: the
		// vCon is filtered out whatever forward_matches says. The error
		// text names no value of the vCon (jqErrorText).
		l.tolerated.WithLabelValues(l.name, "jq_error").Inc()
		l.logger.Warn("jq_link: filter failed on this vCon; filtered out as conserver does (strict: true dead-letters it instead)",
			"link", l.name, "uuid", v.UUID(), "error", raised.msg)
		return Halted, nil
	}
	if err != nil {
		return Result{}, err
	}
	if matched == l.forwardMatches {
		return Continue, nil
	}
	return Halted, nil
}

func (l *jqLink) match(ctx context.Context, v *vcon.VCon) (bool, error) {
	// The program reads the document as a conserver link reads it, so a
	// filter written for conserver matches the same vCons. gojq never
	// changes its input and reads json.Number itself, so it gets the view
	// as it is: a deep copy (twice, for the view and for gojq's value
	// types) cost several times the size of a large vCon.
	iter := l.code.RunWithContext(ctx, vcon.ConserverView(v).Doc())
	out, ok := iter.Next()
	if !ok {
		return false, nil
	}
	if err, isErr := out.(error); isErr {
		var halt *gojq.HaltError
		if errors.As(err, &halt) && halt.Value() == nil {
			return false, nil // a bare `halt` ends the program with no output
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			return false, fmt.Errorf("jq_link: filter did not finish: %w", ctxErr)
		}
		return false, &jqRuntimeError{msg: jqErrorText(err)}
	}
	return pythonTruthy(out), nil
}

// jqRuntimeError is the program raising on a vCon: the one failure
// strict decides about. A program cut short by the chain's deadline is
// not one (the deadline belongs to the chain, and fails it either way).
type jqRuntimeError struct{ msg string }

func (e *jqRuntimeError) Error() string { return "jq_link: filter failed: " + e.msg }

// jqErrorText describes a runtime error without the values gojq quotes in
// its messages: they come from the vCon, and the text becomes the
// dead-letter reason.
func jqErrorText(err error) string {
	var ve gojq.ValueError
	if errors.As(err, &ve) {
		return "the program raised error()"
	}
	msg := err.Error()
	if i := strings.Index(msg, " ("); i >= 0 {
		msg = msg[:i]
	}
	return msg
}

// pythonTruthy is how conserver's bool() reads the program's first output.
func pythonTruthy(x any) bool {
	switch t := x.(type) {
	case nil:
		return false
	case bool:
		return t
	case int:
		return t != 0
	case float64:
		return t != 0
	case json.Number: // a number of the document, output as it is
		f, err := t.Float64()
		return err != nil || f != 0
	case *big.Int:
		return t.Sign() != 0
	case string:
		return t != ""
	case []any:
		return len(t) > 0
	case map[string]any:
		return len(t) > 0
	}
	return true
}
