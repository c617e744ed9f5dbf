package plugin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vcon-operator/vcon-operator/internal/apiwire"
)

// What the chart puts on the API Service, so that the plugin finds the
// Service and the Secret holding its token (api-service.yaml).
const (
	// DefaultAPINamespace is where the chart is installed by default.
	DefaultAPINamespace = "vcon-system"
	// AnnotationTokenSecret names the Secret holding the API token,
	// AnnotationTokenKey its key and AnnotationTokenHeader the header.
	AnnotationTokenSecret = "vcon.dev/api-token-secret"
	AnnotationTokenKey    = "vcon.dev/api-token-key"
	AnnotationTokenHeader = "vcon.dev/api-token-header"
)

// apiServiceSelector matches the chart's API Service.
var apiServiceSelector = client.MatchingLabels{
	"app.kubernetes.io/part-of":   "vcon-operator",
	"app.kubernetes.io/component": "api",
}

// apiClient talks to the vCon API: at a base URL the user gave (--api-url),
// or through the Kubernetes API server's service proxy, with the user's
// kubeconfig credentials, so nothing but the API server need be reachable.
type apiClient struct {
	hc     *http.Client
	base   string // ends in /api
	token  string
	header string
	// service is "ns/name" when the client goes through the service
	// proxy, for messages; empty for --api-url.
	service string
}

// where says how the API is reached, for messages (never the token).
func (a *apiClient) where() string {
	if a.service != "" {
		return "the API (Service " + a.service + ", through the Kubernetes API server)"
	}
	return "the API at " + a.base
}

// send makes one request and returns the status and up to 64 MiB of the
// body. A transport failure is the only error.
func (a *apiClient) send(ctx context.Context, method, path string, q url.Values, body []byte) (int, []byte, error) {
	u := a.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return 0, nil, fmt.Errorf("api url %q: %v", a.base, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if a.token != "" {
		req.Header.Set(a.header, a.token)
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("cannot reach %s: %v", a.where(), unwrapURLError(err))
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return 0, nil, fmt.Errorf("read the answer of %s: %v", a.where(), err)
	}
	return resp.StatusCode, data, nil
}

// call sends a request and decodes a 200 answer into out; any other
// answer becomes an error that says what to do.
func (a *apiClient) call(ctx context.Context, method, path string, q url.Values, body []byte, out any) error {
	code, data, err := a.send(ctx, method, path, q, body)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return a.refusal(method, path, code, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("%s %s: the answer of %s is not what this plugin expects (is the API older than the plugin?): %v", method, path, a.where(), err)
	}
	return nil
}

// refusal turns a non-2xx answer into an error. Through the service
// proxy a 401/403/404/503 may come from the Kubernetes API server (a
// metav1.Status) rather than from our API ({"detail": ...}); the two are
// told apart, because their fixes differ.
func (a *apiClient) refusal(method, path string, code int, body []byte) error {
	var st metav1.Status
	if a.service != "" && json.Unmarshal(body, &st) == nil && st.Kind == "Status" {
		switch code {
		case http.StatusForbidden:
			return fmt.Errorf("the Kubernetes API server refused to proxy to Service %s: %s; you need get and create on services/proxy for it in its namespace (the chart's pluginRBAC Role grants them), or pass --via redis", a.service, st.Message)
		case http.StatusUnauthorized:
			return fmt.Errorf("the Kubernetes API server did not accept your credentials: %s", st.Message)
		case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusNotFound:
			return fmt.Errorf("the Kubernetes API server cannot reach the API behind Service %s (%s): is the API running? (kubectl get pods -n %s)", a.service, st.Message, strings.Split(a.service, "/")[0])
		}
		return fmt.Errorf("%s %s through the Kubernetes API server: %d %s", method, path, code, st.Message)
	}
	switch code {
	case http.StatusForbidden, http.StatusUnauthorized:
		if a.token == "" {
			return fmt.Errorf("%s refused the request (%d): pass --token or set CONSERVER_API_TOKEN", a.where(), code)
		}
		return fmt.Errorf("%s refused the API token (%d): check --token or CONSERVER_API_TOKEN, or the Secret it was read from", a.where(), code)
	case http.StatusNotFound:
		return fmt.Errorf("%s has no %s %s: is the API older than this plugin, or --api-url not the API's base ending in /api?", a.where(), method, path)
	}
	return fmt.Errorf("%s answered %d to %s %s: %s", a.where(), code, method, path, apiDetail(body))
}

// isKubeStatus says whether body is a metav1.Status, which only the
// Kubernetes API server answers.
func isKubeStatus(body []byte) bool {
	var st metav1.Status
	return json.Unmarshal(body, &st) == nil && st.Kind == "Status"
}

// apiTarget is how to reach the API: an explicit base URL, or a Service.
type apiTarget struct {
	url         string // --api-url
	service     string // --api-service NS/NAME
	namespace   string // --api-namespace, where to look for the Service
	token       string // --token, else env CONSERVER_API_TOKEN
	tokenHeader string // --token-header; empty: the Service's, else the default
}

// errNoAPIService: no API Service was found (auto falls back to Redis).
type errNoAPIService struct{ msg string }

func (e *errNoAPIService) Error() string { return e.msg }

// findAPIService is the Service --api-service names, else the one Service
// in the API namespace with the chart's labels.
func findAPIService(ctx context.Context, k *kube, t apiTarget) (*corev1.Service, error) {
	if t.service != "" {
		ns, name, ok := strings.Cut(t.service, "/")
		if !ok || ns == "" || name == "" {
			return nil, fmt.Errorf("--api-service %q: give it as NAMESPACE/NAME", t.service)
		}
		var svc corev1.Service
		err := k.client.Get(ctx, types.NamespacedName{Namespace: ns, Name: name}, &svc)
		switch {
		case apierrors.IsNotFound(err):
			return nil, fmt.Errorf("--api-service: Service %s not found", t.service)
		case apierrors.IsForbidden(err):
			return nil, fmt.Errorf("--api-service: not allowed to read Service %s (you need get on services there)", t.service)
		case err != nil:
			return nil, fmt.Errorf("--api-service: read Service %s: %w", t.service, err)
		}
		return &svc, nil
	}
	ns := t.namespace
	if ns == "" {
		ns = DefaultAPINamespace
	}
	var list corev1.ServiceList
	err := k.client.List(ctx, &list, client.InNamespace(ns), apiServiceSelector)
	switch {
	case apierrors.IsForbidden(err):
		return nil, &errNoAPIService{fmt.Sprintf("not allowed to list Services in namespace %s to find the API: pass --api-service NAMESPACE/NAME", ns)}
	case err != nil:
		return nil, fmt.Errorf("look for the API Service in namespace %s: %w", ns, err)
	case len(list.Items) == 0:
		return nil, &errNoAPIService{fmt.Sprintf("no vcon-operator API Service in namespace %s (is the chart installed there with api.enabled? pass --api-namespace or --api-service NAMESPACE/NAME)", ns)}
	case len(list.Items) > 1:
		names := make([]string, len(list.Items))
		for i, s := range list.Items {
			names[i] = s.Name
		}
		return nil, fmt.Errorf("several vcon-operator API Services in namespace %s (%s): pass --api-service %s/NAME", ns, strings.Join(names, ", "), ns)
	}
	return &list.Items[0], nil
}

// proxyBase is the service-proxy URL of the API's root on svc: the port
// named http (the chart's), else the first.
func proxyBase(cfg *rest.Config, svc *corev1.Service) (string, error) {
	if len(svc.Spec.Ports) == 0 {
		return "", fmt.Errorf("Service %s/%s has no ports", svc.Namespace, svc.Name)
	}
	port := svc.Spec.Ports[0]
	for _, p := range svc.Spec.Ports {
		if p.Name == "http" {
			port = p
		}
	}
	ref := port.Name
	if ref == "" {
		ref = strconv.Itoa(int(port.Port))
	}
	host, err := url.Parse(cfg.Host)
	if err != nil || host.Host == "" {
		return "", fmt.Errorf("kubeconfig server %q is not a URL", cfg.Host)
	}
	host.Path = strings.TrimRight(host.Path, "/") + "/api/v1/namespaces/" + url.PathEscape(svc.Namespace) +
		"/services/" + url.PathEscape(svc.Name) + ":" + url.PathEscape(ref) + "/proxy/api"
	return host.String(), nil
}

// openAPI builds the client for t: --api-url as given (with the plain
// HTTP client), else the API Service through the Kubernetes API server.
func (r *root) openAPI(ctx context.Context, k *kube, t apiTarget) (*apiClient, error) {
	token := t.token
	if token == "" {
		token = r.rt.Getenv("CONSERVER_API_TOKEN")
	}
	if t.url != "" {
		header := t.tokenHeader
		if header == "" {
			header = apiwire.DefaultHeaderName
		}
		return &apiClient{hc: r.rt.HTTP, base: strings.TrimRight(t.url, "/"), token: token, header: header}, nil
	}
	svc, err := findAPIService(ctx, k, t)
	if err != nil {
		return nil, err
	}
	base, err := proxyBase(k.config, svc)
	if err != nil {
		return nil, err
	}
	cfg := rest.CopyConfig(k.config)
	cfg.Timeout = r.rt.HTTP.Timeout
	if cfg.Timeout == 0 {
		cfg.Timeout = apiTimeout
	}
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return nil, fmt.Errorf("client for the Kubernetes API server: %w", err)
	}
	header := t.tokenHeader
	if header == "" {
		header = svc.Annotations[AnnotationTokenHeader]
	}
	if header == "" {
		header = apiwire.DefaultHeaderName
	}
	a := &apiClient{hc: hc, base: base, token: token, header: header, service: svc.Namespace + "/" + svc.Name}
	if a.token == "" {
		if a.token, err = tokenFromSecret(ctx, k, svc); err != nil {
			return nil, err
		}
	}
	return a, nil
}

// tokenFromSecret reads the API token from the Secret the Service names
// (the chart's <release>-api-token when it names none).
func tokenFromSecret(ctx context.Context, k *kube, svc *corev1.Service) (string, error) {
	name := svc.Annotations[AnnotationTokenSecret]
	if name == "" {
		name = svc.Name + "-token"
	}
	key := svc.Annotations[AnnotationTokenKey]
	if key == "" {
		key = "token"
	}
	var s corev1.Secret
	err := k.client.Get(ctx, types.NamespacedName{Namespace: svc.Namespace, Name: name}, &s)
	switch {
	case apierrors.IsForbidden(err):
		return "", fmt.Errorf("the API token is in Secret %s/%s, which you may not read: pass --token or set CONSERVER_API_TOKEN", svc.Namespace, name)
	case apierrors.IsNotFound(err):
		return "", fmt.Errorf("the API token Secret %s/%s does not exist: pass --token or set CONSERVER_API_TOKEN", svc.Namespace, name)
	case err != nil:
		return "", fmt.Errorf("read the API token Secret %s/%s: %w", svc.Namespace, name, err)
	}
	v := strings.TrimSpace(string(s.Data[key]))
	if v == "" {
		return "", fmt.Errorf("Secret %s/%s has no key %q holding the API token: pass --token or set CONSERVER_API_TOKEN", svc.Namespace, name, key)
	}
	return v, nil
}

// apiTimeout bounds one API call when the runtime's client has none.
const apiTimeout = 30 * time.Second

// replayStorageDLQ asks the API to write again up to count uuids of
// storage's DLQ (conserver's POST /dlq/storage/reprocess) and returns how
// many were written.
func (a *apiClient) replayStorageDLQ(ctx context.Context, storage string, count int) (int, error) {
	var n int
	err := a.call(ctx, http.MethodPost, "/dlq/storage/reprocess", url.Values{"storage_name": {storage}, "count": {fmt.Sprint(count)}}, nil, &n)
	return n, err
}

// storageDLQLength is how many uuids DLQ:storage:{name} holds, as the API
// reads it (GET /dlq/storage).
func (a *apiClient) storageDLQLength(ctx context.Context, storage string) (int, error) {
	var uuids []string
	err := a.call(ctx, http.MethodGet, "/dlq/storage", url.Values{"storage_name": {storage}}, nil, &uuids)
	return len(uuids), err
}
