package links

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/itchyny/gojq"

	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

func init() { Register("links.jq_link", newJQ) }

// jqLink forwards or halts a vCon by a jq predicate.
type jqLink struct {
	filter         string
	code           *gojq.Code
	forwardMatches bool
}

func newJQ(_ string, raw map[string]any, _ Deps) (Link, error) {
	o := options.New(raw)
	l := &jqLink{filter: o.String("filter", "."), forwardMatches: o.Bool("forward_matches", true)}
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
	if err != nil {
		return Result{}, err
	}
	if matched == l.forwardMatches {
		return Continue, nil
	}
	return Halted, nil
}

func (l *jqLink) match(ctx context.Context, v *vcon.VCon) (bool, error) {
	// The program reads the normalised document as conserver stores it.
	// gojq never changes its input and reads json.Number itself, so it
	// gets the normalised view as it is: a deep copy (twice, for the
	// view and for gojq's value types) cost several times the size of a
	// large vCon.
	iter := l.code.RunWithContext(ctx, vcon.Normalized(v).Doc)
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
		return false, fmt.Errorf("jq_link: filter failed: %s", jqErrorText(err))
	}
	return pythonTruthy(out), nil
}

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
