package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/vcon-operator/vcon-operator/internal/queue"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// detail is conserver's (FastAPI's) error body: {"detail": "..."}.
type detail struct {
	Detail any `json:"detail"`
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"detail":"Internal Server Error"}`, http.StatusInternalServerError)
		return
	}
	writeRawJSON(w, code, b)
}

func writeRawJSON(w http.ResponseWriter, code int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

func writeDetail(w http.ResponseWriter, code int, msg string) {
	writeJSON(w, code, detail{Detail: msg})
}

// writeInvalid answers 422 with FastAPI's list of {loc, msg, type}.
func writeInvalid(w http.ResponseWriter, details ...vcon.Detail) {
	writeJSON(w, http.StatusUnprocessableEntity, detail{Detail: details})
}

func queryError(name, typ, msg string) vcon.Detail {
	return vcon.Detail{Loc: []any{"query", name}, Msg: msg, Type: typ}
}

func bodyError(typ, msg string) vcon.Detail {
	return vcon.Detail{Loc: []any{"body"}, Msg: msg, Type: typ}
}

// Limits on what a request may ask for. Each is far above what a client
// working against conserver asks, and low enough that one request cannot
// make the server or Redis do unbounded work.
const (
	maxListNameLen   = 256
	maxSearchTermLen = 1024
	maxPageSize      = 1000
	maxPage          = 1_000_000
	maxEgressLimit   = 10_000
	maxUUIDsPerCall  = 1000
	maxReprocess     = 100_000
	maxIngressLists  = 32
)

// checkListName refuses list names conserver users cannot mean: empty,
// over-long, anything but printable ASCII without spaces (conserver lists
// are names like default, ingress_list, chain-1.out or {tag}:x), and names
// of keys that are not queues.
func checkListName(name, sortedSet string) string {
	switch {
	case name == "":
		return "must not be empty"
	case len(name) > maxListNameLen:
		return fmt.Sprintf("is longer than %d bytes", maxListNameLen)
	}
	for i := 0; i < len(name); i++ {
		if c := name[i]; c <= ' ' || c > '~' {
			return "may contain only printable ASCII characters without spaces (letters, digits and punctuation such as - _ . : { })"
		}
	}
	if name == sortedSet {
		return fmt.Sprintf("%q is the vCon index, not a queue", name)
	}
	// A push onto a key of another type fails with WRONGTYPE inside the
	// transaction, after the other commands have run.
	return queue.ListNameConflict(name)
}

// query reads and checks query parameters, collecting every problem so
// that one 422 names them all.
type query struct {
	values    url.Values
	sortedSet string
	errs      []vcon.Detail
}

func newQuery(r *http.Request, sortedSet string) *query {
	return &query{values: r.URL.Query(), sortedSet: sortedSet}
}

func (q *query) fail(name, typ, msg string) {
	q.errs = append(q.errs, queryError(name, typ, msg))
}

// single returns the one value of name; a repeated parameter is refused,
// since either reading would surprise someone.
func (q *query) single(name string) (string, bool) {
	vs, ok := q.values[name]
	if !ok {
		return "", false
	}
	if len(vs) > 1 {
		q.fail(name, "value_error", "Give this parameter once")
		return "", false
	}
	return vs[0], true
}

// list reads a required list name.
func (q *query) list(name string) string {
	v, ok := q.single(name)
	if !ok {
		if _, present := q.values[name]; !present {
			q.fail(name, "missing", "Field required")
		}
		return ""
	}
	if msg := checkListName(v, q.sortedSet); msg != "" {
		q.fail(name, "value_error", "List name "+msg)
		return ""
	}
	return v
}

// name reads a required name (a storage's, as the configuration file
// calls it): not empty, printable ASCII without spaces.
func (q *query) name(name string) string {
	v, ok := q.single(name)
	if !ok {
		if _, present := q.values[name]; !present {
			q.fail(name, "missing", "Field required")
		}
		return ""
	}
	if v == "" || strings.IndexFunc(v, func(r rune) bool { return r <= ' ' || r > '~' }) >= 0 {
		q.fail(name, "value_error", "Name must be printable ASCII without spaces")
		return ""
	}
	return v
}

// lists reads a repeatable list-name parameter (possibly absent).
func (q *query) lists(name string) []string {
	vs := q.values[name]
	if len(vs) > maxIngressLists {
		q.fail(name, "too_long", fmt.Sprintf("At most %d lists", maxIngressLists))
		return nil
	}
	seen := map[string]bool{}
	out := make([]string, 0, len(vs))
	for _, v := range vs {
		if msg := checkListName(v, q.sortedSet); msg != "" {
			q.fail(name, "value_error", "List name "+msg)
			continue
		}
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// integer reads an optional integer in [min, max].
func (q *query) integer(name string, def, min, max int) int {
	v, ok := q.single(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(v))
	switch {
	case err != nil:
		q.fail(name, "int_parsing", "Input should be a valid integer")
		return def
	case n < min:
		q.fail(name, "greater_than_equal", fmt.Sprintf("Input should be greater than or equal to %d", min))
		return def
	case n > max:
		q.fail(name, "less_than_equal", fmt.Sprintf("Input should be less than or equal to %d", max))
		return def
	}
	return n
}

// boolean reads an optional boolean (true/false/1/0/yes/no, as pydantic).
func (q *query) boolean(name string) bool {
	v, ok := q.single(name)
	if !ok {
		return false
	}
	switch strings.ToLower(v) {
	case "true", "1", "yes", "on":
		return true
	case "false", "0", "no", "off", "":
		return false
	}
	q.fail(name, "bool_parsing", "Input should be a valid boolean")
	return false
}

// uuids reads a repeatable uuid parameter, lower-cased.
func (q *query) uuids(name string) []string {
	vs := q.values[name]
	if len(vs) > maxUUIDsPerCall {
		q.fail(name, "too_long", fmt.Sprintf("At most %d uuids per call", maxUUIDsPerCall))
		return nil
	}
	out := make([]string, 0, len(vs))
	for i, v := range vs {
		if !vcon.ValidUUID(v) {
			q.errs = append(q.errs, vcon.Detail{Loc: []any{"query", name, i}, Type: "uuid_parsing",
				Msg: "Input should be a valid UUID"})
			continue
		}
		out = append(out, strings.ToLower(v))
	}
	return out
}

// ok answers 422 when a parameter was bad and reports whether none was.
func (q *query) ok(w http.ResponseWriter) bool {
	if len(q.errs) == 0 {
		return true
	}
	writeInvalid(w, q.errs...)
	return false
}
