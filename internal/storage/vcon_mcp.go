package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// storage.vcon_mcp keeps vCons in a vcon-mcp server through its REST API,
// with conserver's options: base_url ("http://127.0.0.1:3000/api/v1"),
// api_key (sent as Authorization: Bearer) and timeout (30 s).
//
//	POST   {base_url}/vcons         save; vcon-mcp upserts on the uuid
//	GET    {base_url}/vcons/{uuid}  Get: {"vcon": {...}}, 404 when absent
//	DELETE {base_url}/vcons/{uuid}  Delete: 404 is deleted already
//
// Unlike conserver's get, which answers None on any failure (so a vcon-mcp
// that is down reads as "no such vCon"), Get fails when the server does.
func init() { Register("storage.vcon_mcp", newVconMCP) }

const (
	vconMCPDefaultURL     = "http://127.0.0.1:3000/api/v1"
	vconMCPDefaultTimeout = 30 * time.Second
)

type vconMCPStorage struct {
	base    string // without a trailing slash
	apiKey  string
	timeout time.Duration
	client  *http.Client
	host    string // for errors: the URL may carry a token
}

func newVconMCP(_ context.Context, _ string, raw map[string]any, deps Deps) (Storage, error) {
	o := options.New(raw)
	base := o.URL("base_url", vconMCPDefaultURL)
	apiKey := o.Secret("api_key")
	timeout := o.Duration("timeout", vconMCPDefaultTimeout)
	if err := o.Err(); err != nil {
		return nil, err
	}
	if base == "" { // conserver: opts.get("base_url") or the default
		base = vconMCPDefaultURL
	}
	t, err := httpx.ParseTarget(base)
	if err != nil {
		return nil, fmt.Errorf(`option "base_url": %w`, err)
	}
	return &vconMCPStorage{
		base:    strings.TrimRight(base, "/"),
		apiKey:  apiKey,
		timeout: timeout,
		client:  deps.HTTP,
		host:    t.Host,
	}, nil
}

// call sends one request; the pipeline retries a failed save itself.
func (s *vconMCPStorage) call(ctx context.Context, method, path, operation string, body []byte) ([]byte, error) {
	c := httpx.Call{
		Vendor:    "vcon-mcp " + s.host,
		Operation: operation,
		Timeout:   s.timeout,
		Secrets:   []string{s.apiKey},
		NewRequest: func(ctx context.Context) (*http.Request, error) {
			var r io.Reader // a nil *bytes.Reader would not be a nil body
			if body != nil {
				r = bytes.NewReader(body)
			}
			req, err := http.NewRequestWithContext(ctx, method, s.base+path, r)
			if err != nil {
				return nil, err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json")
			if s.apiKey != "" {
				req.Header.Set("Authorization", "Bearer "+s.apiKey)
			}
			return req, nil
		},
	}
	return c.Do(ctx, s.client)
}

// httpStatusOf is the status of a non-2xx answer to an httpx.Call, 0 for
// other failures.
func httpStatusOf(err error) int {
	var se *httpx.StatusError
	if errors.As(err, &se) {
		return se.Status
	}
	return 0
}

func (s *vconMCPStorage) Save(ctx context.Context, v *vcon.VCon) error {
	if v.Secured() {
		// vcon-mcp splits a vCon into its own tables (parties, dialog,
		// analysis...) and refuses one without parties: a signed or
		// encrypted vCon would come back as something else or not at all.
		// Refused for good, so it is dead-lettered, not lost.
		return Permanent(fmt.Errorf("vcon_mcp: vcon %s is %s, which vcon-mcp cannot keep (it stores a vCon's parts, not the document): put links.verify or links.decrypt before this storage, or keep the signed form in a storage that keeps documents whole", v.UUID(), v.Form()))
	}
	body, err := v.Marshal()
	if err != nil {
		return Permanent(fmt.Errorf("vcon_mcp: encode vcon %s: %w", v.UUID(), err))
	}
	if _, err := s.call(ctx, http.MethodPost, "/vcons", "save vcon "+v.UUID(), body); err != nil {
		switch code := httpStatusOf(err); {
		case code == http.StatusUnauthorized || code == http.StatusForbidden:
			return fmt.Errorf("%w (check api_key)", err)
		case permanentStatus(code):
			// 400: vcon-mcp's validation refused the vCon.
			return Permanent(err)
		}
		return err
	}
	return nil
}

func (s *vconMCPStorage) Get(ctx context.Context, uuid string) ([]byte, error) {
	if !uuidPattern.MatchString(uuid) {
		return nil, ErrNotFound // vcon-mcp answers 400 for it
	}
	answer, err := s.call(ctx, http.MethodGet, "/vcons/"+url.PathEscape(uuid), "get vcon "+uuid, nil)
	if httpStatusOf(err) == http.StatusNotFound {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var envelope struct {
		VCon json.RawMessage `json:"vcon"`
	}
	if err := json.Unmarshal(answer, &envelope); err != nil {
		return nil, fmt.Errorf("vcon_mcp: get vcon %s from %s: %s", uuid, s.host, httpx.JSONError(err))
	}
	if len(envelope.VCon) == 0 || string(envelope.VCon) == "null" {
		return nil, fmt.Errorf("vcon_mcp: get vcon %s from %s: the answer has no \"vcon\"", uuid, s.host)
	}
	v, err := vcon.Parse(envelope.VCon)
	if err != nil {
		return nil, fmt.Errorf("vcon_mcp: get vcon %s from %s: the answer's \"vcon\" is not a vCon: %s", uuid, s.host, httpx.JSONError(err))
	}
	return v.Marshal()
}

func (s *vconMCPStorage) Delete(ctx context.Context, uuid string) error {
	if !uuidPattern.MatchString(uuid) {
		return nil
	}
	_, err := s.call(ctx, http.MethodDelete, "/vcons/"+url.PathEscape(uuid), "delete vcon "+uuid, nil)
	if httpStatusOf(err) == http.StatusNotFound {
		return nil
	}
	return err
}
