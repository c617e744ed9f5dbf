package plugin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/vcon-operator/vcon-operator/internal/apiwire"
)

// apiOptions say how to reach the conserver API: the commands that need
// the worker's modules (a storage's write) or the API's own checks go
// through it, since the plugin links no module code.
type apiOptions struct {
	url    string
	token  string
	header string
}

// apiFlags adds --api-url, --token and --token-header; when says when
// they apply ("" for always, e.g. "with --storage, ").
func apiFlags(cmd *cobra.Command, r *root, o *apiOptions, when string) {
	f := cmd.Flags()
	f.StringVar(&o.url, "api-url", r.rt.Getenv("API_URL"), when+"conserver API base URL, e.g. http://localhost:8000/api (env API_URL)")
	f.StringVar(&o.token, "token", "", when+"conserver API token (default: env CONSERVER_API_TOKEN)")
	f.StringVar(&o.header, "token-header", apiwire.DefaultHeaderName, when+"header the API token is sent in (conserver's CONSERVER_HEADER_NAME)")
}

// client is the API these options name, the token from the environment
// when no flag gave one.
func (o apiOptions) client(r *root) *apiClient {
	token := o.token
	if token == "" {
		token = r.rt.Getenv("CONSERVER_API_TOKEN")
	}
	return &apiClient{hc: r.rt.HTTP, base: strings.TrimRight(o.url, "/"), token: token, header: o.header}
}

// apiClient calls the conserver API.
type apiClient struct {
	hc     *http.Client
	base   string
	token  string
	header string
}

// apiError is an answer that stops the command: every further call would
// get it too (a refused token, a wrong base URL).
type apiError struct{ msg string }

func (e *apiError) Error() string { return e.msg }

// do sends method path?query with body and returns the answer's status
// and body. A refused token or an unknown route is an *apiError saying
// what to fix.
func (c *apiClient) do(ctx context.Context, method, path string, query url.Values, body io.Reader, contentType string) (int, []byte, error) {
	u := c.base + path
	if len(query) > 0 {
		u += "?" + query.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return 0, nil, &apiError{fmt.Sprintf("api url %q: %v", c.base, err)}
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set(c.header, c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return 0, nil, &apiError{fmt.Sprintf("cannot reach the API at %s: %v", c.base, unwrapURLError(err))}
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch resp.StatusCode {
	case http.StatusUnauthorized, http.StatusForbidden:
		hint := "pass --token or set CONSERVER_API_TOKEN"
		if c.token != "" {
			hint = "the token was refused; check it"
		}
		return resp.StatusCode, data, &apiError{fmt.Sprintf("the API answered %s: %s", resp.Status, hint)}
	case http.StatusNotFound:
		if d := apiDetail(data); d != "Not Found" {
			return resp.StatusCode, data, &apiError{fmt.Sprintf("the API answered %s: %s", resp.Status, d)}
		}
		return resp.StatusCode, data, &apiError{fmt.Sprintf("the API answered %s for %s %s%s: is --api-url the API's base, ending in /api?", resp.Status, method, c.base, path)}
	}
	return resp.StatusCode, data, nil
}

// replayStorageDLQ asks the API to write again up to count uuids of
// storage's DLQ (conserver's POST /dlq/storage/reprocess) and returns how
// many were written.
func (c *apiClient) replayStorageDLQ(ctx context.Context, storage string, count int) (int, error) {
	code, body, err := c.do(ctx, http.MethodPost, "/dlq/storage/reprocess", url.Values{"storage_name": {storage}, "count": {fmt.Sprint(count)}}, nil, "")
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, &apiError{fmt.Sprintf("the API answered %d %s: %s", code, http.StatusText(code), apiDetail(body))}
	}
	var n int
	if err := json.Unmarshal(body, &n); err != nil {
		return 0, &apiError{fmt.Sprintf("the API answered %q, not the number of vCons written: is --api-url a conserver API?", strings.TrimSpace(string(body)))}
	}
	return n, nil
}

// storageDLQLength is how many uuids DLQ:storage:{name} holds, as the API
// reads it (GET /dlq/storage).
func (c *apiClient) storageDLQLength(ctx context.Context, storage string) (int, error) {
	code, body, err := c.do(ctx, http.MethodGet, "/dlq/storage", url.Values{"storage_name": {storage}}, nil, "")
	if err != nil {
		return 0, err
	}
	var uuids []string
	if code != http.StatusOK || json.Unmarshal(body, &uuids) != nil {
		return 0, &apiError{fmt.Sprintf("the API answered %d %s: %s", code, http.StatusText(code), apiDetail(body))}
	}
	return len(uuids), nil
}
