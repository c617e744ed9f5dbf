package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// readBody reads a JSON request body within the size limit. It answers
// 415 for a content type that is not JSON (none is accepted, as FastAPI
// does), 413 over the limit and 400 when the body cannot be read.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !(mt == "application/json" || strings.HasSuffix(mt, "+json")) {
			writeDetail(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json")
			return nil, false
		}
	}
	limit := s.opts.MaxBodyBytes
	if r.ContentLength > limit {
		writeDetail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("Request body is larger than the limit of %d bytes", limit))
		return nil, false
	}
	size := 4096
	if r.ContentLength > 0 {
		size = int(r.ContentLength) + 1
	}
	buf := make([]byte, 0, size)
	body := http.MaxBytesReader(w, r.Body, limit)
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := body.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, true
		}
		if err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				writeDetail(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("Request body is larger than the limit of %d bytes", limit))
			} else {
				writeDetail(w, http.StatusBadRequest, "Could not read the request body")
			}
			return nil, false
		}
	}
}

// incoming is a vCon accepted from a request, ready to store.
type incoming struct {
	uuid      string
	body      []byte // what is stored and answered
	createdAt time.Time
	index     []string // party index keys: tel:{v}, mailto:{v}, name:{v}
}

// parseVcon reads a request's vCon, answering 413/415/422 itself when it
// is not acceptable: vcon.CheckSubmission refuses what conserver's API
// refuses. The stored document is the one sent, with the values pydantic
// would have coerced stored coerced (the uuid canonical and lower-cased,
// as conserver stores it; see CheckSubmission) and the arrays conserver's
// readers index into present. When nothing needed changing the bytes sent
// are stored as they are.
func (s *Server) parseVcon(w http.ResponseWriter, r *http.Request) (*incoming, bool) {
	data, ok := s.readBody(w, r)
	if !ok {
		return nil, false
	}
	if len(data) == 0 {
		writeInvalid(w, bodyError("missing", "Field required: the request body must be a vCon"))
		return nil, false
	}
	v, err := vcon.Parse(data)
	if err != nil {
		typ, msg := "json_invalid", "JSON decode error: "+strings.TrimPrefix(err.Error(), "vcon: invalid JSON: ")
		if errors.Is(err, vcon.ErrNotObject) {
			typ, msg = "model_attributes_type", "Input should be a valid dictionary or object to extract fields from"
		}
		writeInvalid(w, bodyError(typ, msg))
		return nil, false
	}
	if v.Secured() {
		return secured(w, v, data)
	}
	errs, changed := vcon.CheckSubmission(v)
	if len(errs) == 0 {
		// A vCon the workers must not process (draft-ietf-vcon-vcon-core,
		// critical) is refused here rather than queued for the DLQ.
		errs = vcon.CriticalErrors(v, s.opts.SupportedExtensions)
	}
	if len(errs) > 0 {
		writeInvalid(w, vcon.Details(errs)...)
		return nil, false
	}
	in := &incoming{uuid: v.UUID()}
	in.createdAt, _ = vcon.CreatedAt(v)
	if !utf8.Valid(data) {
		changed = true // the decoder replaced invalid UTF-8; store what it read
	}
	if vcon.AddDefaultArrays(v) {
		changed = true
	}
	in.index = partyIndexKeys(v)
	in.body = data
	if changed {
		if in.body, err = v.Marshal(); err != nil {
			writeInvalid(w, bodyError("value_error", "The vCon could not be encoded: "+err.Error()))
			return nil, false
		}
	}
	return in, true
}

// secured takes a signed or encrypted vCon (the core draft's JWS and JWE
// forms), which conserver's API refuses: a vCon that comes from another
// security domain is signed, and a chain verifies it (links.verify). It
// is stored as sent, byte for byte, under the uuid its header carries.
// Only its envelope is checked; what it holds is not readable without a
// key, so it is in no party index and is listed at the time it arrived.
func secured(w http.ResponseWriter, v *vcon.VCon, data []byte) (*incoming, bool) {
	if err := vcon.CheckSecured(v); err != nil {
		writeInvalid(w, bodyError("value_error", err.Error()))
		return nil, false
	}
	return &incoming{uuid: v.UUID(), body: data, createdAt: time.Now()}, true
}

// MaxIndexedParties is how many parties of a vCon the party search index
// covers: the first ones, in document order. conserver indexes every party;
// a vCon with 150,000 parties then writes 450,000 index keys in one
// transaction, which blocks Redis for seconds and outlasts the client's
// read timeout. The vCon is stored whole either way; parties past the cap
// are not found by GET /api/vcons/search.
const MaxIndexedParties = 1000

// partyIndexKeys are the search index sets a vCon belongs to, as
// conserver's API writes them: tel:{tel}, mailto:{mailto}, name:{name} for
// each of its first MaxIndexedParties parties with a non-empty value (at
// most 3 × MaxIndexedParties keys).
func partyIndexKeys(v *vcon.VCon) []string {
	var keys []string
	seen := map[string]bool{}
	parties := v.List(vcon.Parties)
	if len(parties) > MaxIndexedParties {
		parties = parties[:MaxIndexedParties]
	}
	for _, p := range parties {
		for _, field := range []string{"tel", "mailto", "name"} {
			var val string
			switch x := p[field].(type) {
			case string:
				val = x
			case json.Number:
				val = x.String()
			}
			if val == "" {
				continue
			}
			k := field + ":" + val
			if !seen[k] {
				seen[k] = true
				keys = append(keys, k)
			}
		}
	}
	return keys
}
