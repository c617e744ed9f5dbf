package storage

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/vcon-operator/vcon-operator/internal/httpx"
	"github.com/vcon-operator/vcon-operator/internal/options"
	"github.com/vcon-operator/vcon-operator/internal/vcon"
)

// storage.elasticsearch indexes the parts of each vCon as conserver does,
// one document per part, so that dashboards built on its indices keep
// working:
//
//	{index_prefix}vcon_parties[_{role}]        id {uuid}_{i}
//	{index_prefix}vcon_attachments_{purpose}   id {uuid}_{i}
//	{index_prefix}vcon_analysis_{type}         id {uuid}_{i}
//	{index_prefix}vcon_dialog                  id {uuid}_{i}
//	{index_prefix}vcon_signed, vcon_encrypted  id {uuid}
//
// A signed or encrypted vCon has no parts to show (they are inside its
// payload or ciphertext): it is one document in the index of its form,
// the vCon's text whole in "document" (see securedPart).
// Each document is the part plus vcon_id, started_at (the first dialog's
// start) and tenant_id (from a "tenant" attachment). A vCon without dialog
// has no documents, as in conserver. Differences: the parts go in one bulk
// request and any refused part fails the save (conserver logs and drops
// it); after the bulk, the vCon's documents that the new version no longer
// has (a party removed, a role changed) are deleted, so the indices hold
// exactly the last version saved; index names are lower-cased with
// characters Elasticsearch refuses replaced by "_" (conserver's write of
// such a part failed); TLS certificates are verified unless verify_certs is
// false (conserver skipped verification whenever ca_certs was unset).
func init() { Register("storage.elasticsearch", newElasticsearch) }

const esTimeout = 30 * time.Second

type esStorage struct {
	base    string // without a trailing slash
	host    string // for errors
	client  *http.Client
	auth    func(*http.Request)
	prefix  string
	timeout time.Duration
	secrets []string
}

func newElasticsearch(_ context.Context, _ string, raw map[string]any, deps Deps) (Storage, error) {
	o := options.New(raw)
	rawURL := o.URL("url", "")
	cloudID := o.Name("cloud_id", "")
	apiKey := o.Secret("api_key")
	username := o.Name("username", "")
	password := o.Secret("password")
	caCerts := o.Name("ca_certs", "")
	verify := o.Bool("verify_certs", true)
	prefix := o.Name("index_prefix", "")
	timeout := o.Duration("timeout", esTimeout)
	_ = o.Name("index", "") // conserver's default_options has it; its save never reads it

	switch {
	case rawURL != "" && cloudID != "":
		o.Errorf(`options "url" and "cloud_id" exclude each other: set one`)
	case cloudID != "":
		u, err := esCloudURL(cloudID)
		if err != nil {
			o.Failf("cloud_id", "%v", err)
		}
		rawURL = u
	case rawURL == "" && o.Problems() == 0:
		o.Errorf(`set option "url" (the cluster's http(s):// address) or "cloud_id"`)
	}
	if apiKey != "" && (username != "" || password != "") {
		o.Errorf(`options "api_key" and "username"/"password" exclude each other: set one way to log in`)
	}
	if (username == "") != (password == "") && apiKey == "" {
		o.Errorf(`options "username" and "password" go together`)
	}
	if u, err := url.Parse(rawURL); rawURL != "" && err == nil && u.User != nil {
		o.Failf("url", "must not hold credentials; use username and password, or api_key")
	}
	if prefix != "" && !esIndexName.MatchString(prefix) {
		o.Fail("index_prefix", "lower-case letters, digits, -, _ and . (as Elasticsearch index names allow), not starting with - or _")
	}
	var roots *x509.CertPool
	if caCerts != "" {
		pem, err := os.ReadFile(caCerts)
		if err != nil {
			o.Failf("ca_certs", "read %s: %v", caCerts, errors.Unwrap(err))
		} else if roots = x509.NewCertPool(); !roots.AppendCertsFromPEM(pem) {
			o.Failf("ca_certs", "%s holds no PEM certificate", caCerts)
		}
	}
	if caCerts != "" && !verify {
		o.Errorf(`options "ca_certs" and "verify_certs: false" exclude each other`)
	}
	if err := o.Err(); err != nil {
		return nil, err
	}

	client := deps.HTTP
	if roots != nil || !verify {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = &tls.Config{RootCAs: roots, InsecureSkipVerify: !verify} //nolint:gosec // asked for by verify_certs: false
		client = &http.Client{Transport: tr}
	}
	u, _ := url.Parse(rawURL)
	s := &esStorage{
		base:    strings.TrimRight(rawURL, "/"),
		host:    u.Host,
		client:  client,
		prefix:  prefix,
		timeout: timeout,
		secrets: []string{apiKey, password},
		auth:    func(*http.Request) {},
	}
	switch {
	case apiKey != "":
		s.auth = func(r *http.Request) { r.Header.Set("Authorization", "ApiKey "+apiKey) }
	case username != "":
		s.auth = func(r *http.Request) { r.SetBasicAuth(username, password) }
	}
	return s, nil
}

// esCloudURL decodes an Elastic Cloud id ("name:base64(host$es$kibana)")
// into the cluster's URL, as the Python client does.
func esCloudURL(id string) (string, error) {
	_, enc, ok := strings.Cut(id, ":")
	if !ok {
		enc = id
	}
	dec, err := base64.StdEncoding.DecodeString(enc)
	if err != nil {
		if dec, err = base64.RawStdEncoding.DecodeString(enc); err != nil {
			return "", errors.New(`want an Elastic Cloud id ("name:base64..."), as the deployment page shows it`)
		}
	}
	parts := strings.Split(string(dec), "$")
	if len(parts) < 2 || parts[0] == "" || parts[1] == "" {
		return "", errors.New("the Elastic Cloud id does not name a host and a cluster")
	}
	host, port := parts[0], ""
	if h, p, err := net.SplitHostPort(parts[0]); err == nil {
		host, port = h, p
	}
	u := "https://" + parts[1] + "." + host
	if port != "" && port != "443" {
		u += ":" + port
	}
	return u, nil
}

// esPart is one document of the bulk request.
type esPart struct {
	index, id string
	doc       map[string]any
}

// esParts is conserver's split of a vCon into documents.
func (s *esStorage) esParts(v *vcon.VCon) []esPart {
	doc := egressShape(v)
	uuid := v.UUID()
	dialog := doc.List(vcon.Dialog)
	if len(dialog) == 0 {
		return nil
	}
	common := map[string]any{"vcon_id": uuid, "started_at": dialog[0]["start"]}
	for _, a := range doc.List(vcon.Attachments) {
		if a["purpose"] == "tenant" || a["type"] == "tenant" {
			if body, ok := esBody(a).(map[string]any); ok && body["id"] != nil {
				common["tenant_id"] = body["id"]
			}
			break
		}
	}
	var parts []esPart
	add := func(index string, i int, part map[string]any, parseBody bool) {
		d := make(map[string]any, len(part)+len(common))
		for k, x := range part {
			d[k] = x
		}
		if parseBody {
			d["body"] = esBody(part)
		}
		for k, x := range common {
			d[k] = x
		}
		parts = append(parts, esPart{index: esIndex(s.prefix + index), id: fmt.Sprintf("%s_%d", uuid, i), doc: d})
	}
	for i, p := range doc.List(vcon.Parties) {
		index := "vcon_parties"
		if role, ok := p["role"].(string); ok && role != "" {
			index += "_" + role
		}
		add(index, i, p, false)
	}
	for i, a := range doc.List(vcon.Attachments) {
		kind := esFirstString(a, "type", "purpose")
		add("vcon_attachments_"+kind, i, a, true)
	}
	for i, a := range doc.List(vcon.Analysis) {
		add("vcon_analysis_"+esFirstString(a, "type"), i, a, true)
	}
	for i, d := range dialog {
		add("vcon_dialog", i, d, false)
	}
	return parts
}

// securedPart is the one document of a signed or encrypted vCon. Its
// parties, dialog and analysis are inside the payload or the ciphertext,
// so there is no part to index; the document is kept whole, as the text it
// was parsed from, so that what was signed is what Elasticsearch holds
// (its _source gives a string back as it was sent, where an object would
// come back in whatever layout a reindex or an ingest pipeline leaves).
// Saving the vCon unsigned later deletes it, as for any part the new
// version no longer has, and the reverse.
func (s *esStorage) securedPart(v *vcon.VCon) (esPart, error) {
	body, err := v.Marshal()
	if err != nil {
		return esPart{}, Permanent(fmt.Errorf("elasticsearch: encode vcon %s: %w", v.UUID(), err))
	}
	form := "signed"
	if v.Form() == vcon.Encrypted {
		form = "encrypted"
	}
	return esPart{
		index: esIndex(s.prefix + "vcon_" + form),
		id:    v.UUID(),
		doc:   map[string]any{"vcon_id": v.UUID(), "form": form, "document": string(body)},
	}, nil
}

func esFirstString(m map[string]any, keys ...string) string {
	for _, k := range keys {
		if s, ok := m[k].(string); ok && s != "" {
			return s
		}
	}
	return "unknown"
}

// esBody is a part's body, parsed when it is JSON text (conserver indexes
// the structure, not the string); text that does not parse stays text.
func esBody(part map[string]any) any {
	body := part["body"]
	s, ok := body.(string)
	if !ok || part["encoding"] != "json" {
		return body
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var x any
	if err := dec.Decode(&x); err != nil || dec.More() {
		return body
	}
	return x
}

// esIndex makes a name Elasticsearch accepts: lower case, without
// \/*?"<>| ,#: and not starting with -, _ or +.
func esIndex(name string) string {
	name = strings.ToLower(name)
	name = strings.Map(func(r rune) rune {
		if strings.ContainsRune(`\/*?"<>| ,#:`, r) || r < ' ' {
			return '_'
		}
		return r
	}, name)
	return strings.TrimLeft(name, "-_+")
}

var esIndexName = regexp.MustCompile(`^[a-z0-9][a-z0-9_\-.]*$`)

// Save indexes every part in one bulk request, then deletes the vCon's
// documents the bulk did not write. A retry writes the same ids again.
func (s *esStorage) Save(ctx context.Context, v *vcon.VCon) error {
	uuid := v.UUID()
	if uuid == "" {
		return Permanent(errors.New("elasticsearch: vcon has no uuid"))
	}
	var parts []esPart
	if v.Secured() {
		part, err := s.securedPart(v)
		if err != nil {
			return err
		}
		parts = []esPart{part}
	} else {
		parts = s.esParts(v)
	}
	if len(parts) > 0 {
		if err := s.bulk(ctx, uuid, parts); err != nil {
			return err
		}
	}
	return s.deleteParts(ctx, uuid, parts, false)
}

func (s *esStorage) bulk(ctx context.Context, uuid string, parts []esPart) error {
	var body bytes.Buffer
	for _, p := range parts {
		action, _ := json.Marshal(map[string]any{"index": map[string]any{"_index": p.index, "_id": p.id}})
		doc, err := vcon.FromDoc(p.doc).Marshal()
		if err != nil {
			return Permanent(fmt.Errorf("elasticsearch: encode vcon %s: %w", uuid, err))
		}
		body.Write(action)
		body.WriteByte('\n')
		body.Write(doc)
		body.WriteByte('\n')
	}
	answer, err := s.call(ctx, http.MethodPost, "/_bulk", "bulk index vcon "+uuid, "application/x-ndjson", body.Bytes())
	if err != nil {
		return err
	}
	var result struct {
		Errors bool `json:"errors"`
		Items  []map[string]struct {
			Index  string `json:"_index"`
			ID     string `json:"_id"`
			Status int    `json:"status"`
			Error  *struct {
				Type   string `json:"type"`
				Reason string `json:"reason"`
			} `json:"error"`
		} `json:"items"`
	}
	if err := json.Unmarshal(answer, &result); err != nil {
		return fmt.Errorf("elasticsearch %s: bulk index vcon %s: %s", s.host, uuid, httpx.JSONError(err))
	}
	if !result.Errors {
		return nil
	}
	var errs []error
	refused := 0
	for _, item := range result.Items {
		for _, r := range item {
			if r.Error == nil && r.Status < 300 {
				continue
			}
			reason := ""
			if r.Error != nil {
				reason = r.Error.Type + ": " + options.Truncate(s.scrub(r.Error.Reason), 200)
			}
			errs = append(errs, fmt.Errorf("%s/%s: %d %s", r.Index, r.ID, r.Status, reason))
			if permanentStatus(r.Status) {
				refused++
			}
		}
	}
	err = fmt.Errorf("elasticsearch %s: bulk index vcon %s: %d of %d parts refused: %w", s.host, uuid, len(errs), len(parts), errors.Join(errs...))
	if refused == len(errs) && len(errs) > 0 {
		return Permanent(err)
	}
	return err
}

// deleteParts deletes the vCon's documents other than keep, from every
// index of the prefix. vcon_id is matched as a phrase: conserver's match
// query matches any of the uuid's words, and so other vCons sharing its
// first group (uuid v7 and v8 timestamps). refresh makes the deletion
// visible at once (API DELETE), at the cost of a refresh of the indices;
// a save's cleanup does without.
func (s *esStorage) deleteParts(ctx context.Context, uuid string, keep []esPart, refresh bool) error {
	var mustNot []any
	byIndex := map[string][]string{}
	var order []string
	for _, p := range keep {
		if _, ok := byIndex[p.index]; !ok {
			order = append(order, p.index)
		}
		byIndex[p.index] = append(byIndex[p.index], p.id)
	}
	for _, index := range order {
		mustNot = append(mustNot, map[string]any{"bool": map[string]any{"filter": []any{
			map[string]any{"term": map[string]any{"_index": index}},
			map[string]any{"ids": map[string]any{"values": byIndex[index]}},
		}}})
	}
	query := map[string]any{"bool": map[string]any{
		"filter": []any{map[string]any{"match_phrase": map[string]any{"vcon_id": uuid}}},
	}}
	if len(mustNot) > 0 {
		query["bool"].(map[string]any)["must_not"] = mustNot
	}
	body, _ := json.Marshal(map[string]any{"query": query})
	path := "/" + url.PathEscape(esIndex(s.prefix+"vcon")+"*") + "/_delete_by_query?allow_no_indices=true&ignore_unavailable=true&conflicts=proceed"
	if refresh {
		path += "&refresh=true"
	}
	_, err := s.call(ctx, http.MethodPost, path, "delete old parts of vcon "+uuid, "application/json", body)
	return err
}

// Delete removes every document of the vCon.
func (s *esStorage) Delete(ctx context.Context, uuid string) error {
	return s.deleteParts(ctx, uuid, nil, true)
}

func (s *esStorage) call(ctx context.Context, method, path, operation, contentType string, body []byte) ([]byte, error) {
	c := httpx.Call{
		Vendor:    "elasticsearch " + s.host,
		Operation: operation,
		Timeout:   s.timeout,
		Secrets:   s.secrets,
		NewRequest: func(ctx context.Context) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, method, s.base+path, bytes.NewReader(body))
			if err != nil {
				return nil, err
			}
			req.Header.Set("Content-Type", contentType)
			req.Header.Set("Accept", "application/json")
			s.auth(req)
			return req, nil
		},
	}
	answer, err := c.Do(ctx, s.client)
	if err != nil {
		switch code := httpStatusOf(err); {
		case code == http.StatusUnauthorized || code == http.StatusForbidden:
			return nil, fmt.Errorf("%w (check username and password, or api_key)", err)
		case permanentStatus(code):
			// 413: the bulk is over http.max_content_length; 400: refused.
			return nil, Permanent(err)
		}
		return nil, err
	}
	return answer, nil
}

func (s *esStorage) scrub(msg string) string {
	for _, secret := range s.secrets {
		if secret != "" {
			msg = strings.ReplaceAll(msg, secret, "[redacted]")
		}
	}
	return msg
}
