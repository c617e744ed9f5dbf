package devsys

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// WebhookSink is a receiver for links.webhook: the samples' webhook URLs
// point at it instead of the example hosts, and the end-to-end test counts
// on it how often each vCon was delivered.
type WebhookSink struct {
	URL      string
	Received atomic.Int64
	// Refused counts the posts answered with an error status (SetStatus):
	// a vendor's outage as the worker met it.
	Refused atomic.Int64
	srv     *http.Server

	mu         sync.Mutex
	deliveries map[string]int // by vCon uuid, accepted posts only
	delay      time.Duration
	status     int // 0: accept
}

// SetDelay makes every later delivery wait d before it is answered, as a
// slow receiver does.
func (k *WebhookSink) SetDelay(d time.Duration) {
	k.mu.Lock()
	k.delay = d
	k.mu.Unlock()
}

// SetStatus makes every later post be answered with code, as a vendor in
// an outage answers 503: such a post is counted in Refused, not as a
// delivery. 0 (or any 2xx) accepts posts again.
func (k *WebhookSink) SetStatus(code int) {
	k.mu.Lock()
	k.status = code
	k.mu.Unlock()
}

// Deliveries is how many times each vCon uuid was accepted so far.
func (k *WebhookSink) Deliveries() map[string]int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return maps.Clone(k.deliveries)
}

// StartWebhookSink listens on the node's address, where worker pods reach
// it (and nothing outside this machine can).
func (s *System) StartWebhookSink() (*WebhookSink, error) {
	l, err := s.ListenInNode(net.JoinHostPort(s.Node.IP, "0"))
	if err != nil {
		return nil, err
	}
	return serveWebhookSink(l), nil
}

func serveWebhookSink(l net.Listener) *WebhookSink {
	sink := &WebhookSink{URL: "http://" + l.Addr().String() + "/webhook", deliveries: map[string]int{}}
	sink.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v struct {
			UUID string `json:"uuid"`
		}
		err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(&v)
		_, _ = io.Copy(io.Discard, r.Body)
		if err != nil || v.UUID == "" {
			http.Error(w, "want a vCon with a uuid", http.StatusBadRequest)
			return
		}
		sink.Received.Add(1)
		sink.mu.Lock()
		status, delay := sink.status, sink.delay
		accepted := status == 0 || status/100 == 2
		if accepted {
			sink.deliveries[v.UUID]++
		}
		sink.mu.Unlock()
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
		}
		if !accepted {
			sink.Refused.Add(1)
			http.Error(w, "outage", status)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})}
	go func() { _ = sink.srv.Serve(l) }()
	return sink
}

// Close stops the sink.
func (k *WebhookSink) Close() { _ = k.srv.Close() }

// SampleObjects reads the manifests of a samples directory (the resources
// of its kustomization.yaml in order, else every *.yaml) and adapts them to
// this machine: Secrets get dev values and links.webhook posts to sink.
func (s *System) SampleObjects(dir string, sink *WebhookSink) ([]*unstructured.Unstructured, error) {
	files, err := sampleFiles(dir)
	if err != nil {
		return nil, err
	}
	var objs []*unstructured.Unstructured
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(b), 4096)
		for {
			var m map[string]any
			if err := dec.Decode(&m); err != nil {
				if errors.Is(err, io.EOF) {
					break
				}
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			if len(m) == 0 {
				continue
			}
			u := &unstructured.Unstructured{Object: m}
			if u.GetNamespace() == "" {
				u.SetNamespace("default")
			}
			if err := s.adaptSample(u, sink); err != nil {
				return nil, fmt.Errorf("%s: %s %s: %w", f, u.GetKind(), u.GetName(), err)
			}
			objs = append(objs, u)
		}
	}
	return objs, nil
}

// SamplesUsePostgres says whether a samples directory has a storage.postgres Storage.
func SamplesUsePostgres(dir string) bool {
	files, err := sampleFiles(dir)
	if err != nil {
		return false
	}
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if bytes.Contains(b, []byte("storage.postgres")) {
			return true
		}
	}
	return false
}

func sampleFiles(dir string) ([]string, error) {
	if b, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml")); err == nil {
		var k struct {
			Resources []string `json:"resources"`
		}
		if err := yaml.Unmarshal(b, &k); err != nil {
			return nil, fmt.Errorf("%s/kustomization.yaml: %w", dir, err)
		}
		var files []string
		for _, r := range k.Resources {
			files = append(files, filepath.Join(dir, r))
		}
		return files, nil
	}
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no manifests in %s", dir)
	}
	return files, nil
}

func (s *System) adaptSample(u *unstructured.Unstructured, sink *WebhookSink) error {
	switch u.GetKind() {
	case "Secret":
		data, _, _ := unstructured.NestedStringMap(u.Object, "stringData")
		raw, _, _ := unstructured.NestedMap(u.Object, "data")
		if data == nil {
			data = map[string]string{}
		}
		for k := range raw {
			data[k] = ""
		}
		for k := range data {
			data[k] = s.devSecretValue(u.GetName(), k)
		}
		delete(u.Object, "data")
		return unstructured.SetNestedStringMap(u.Object, data, "stringData")
	case "Storage":
		// storage.postgres keeps the samples' host: the Service
		// postgres.databases fronts the dev PostgreSQL
		// (createManagedServices), and its password comes from the Secret.
		// storage.file writes inside the worker pod (the Chain's volume).
		module, _, _ := unstructured.NestedString(u.Object, "spec", "module")
		if module == "storage.postgres" && s.Postgres == nil {
			return errors.New("needs PostgreSQL, which is not running")
		}
	case "Link":
		module, _, _ := unstructured.NestedString(u.Object, "spec", "module")
		if module == "links.webhook" && sink != nil {
			return unstructured.SetNestedSlice(u.Object, []any{sink.URL}, "spec", "options", "webhook-urls")
		}
	case "Chain":
		// The dev Redis, whatever the sample says.
		unstructured.RemoveNestedField(u.Object, "spec", "redis")
	}
	return nil
}

// devSecretValue is what a sample Secret key holds in dev.
func (s *System) devSecretValue(secret, key string) string {
	k := strings.ToLower(key)
	switch {
	case s.Postgres != nil && strings.Contains(k, "password"):
		return s.Postgres.Password
	case s.Postgres != nil && (k == "user" || k == "username"):
		return s.Postgres.User
	case s.Postgres != nil && k == "host":
		return s.Postgres.Host
	case s.Postgres != nil && k == "port":
		return strconv.Itoa(s.Postgres.Port)
	case s.Postgres != nil && (k == "database" || k == "dbname"):
		return s.Postgres.Database
	case strings.Contains(k, "url") && strings.Contains(secret, "redis"):
		return s.RedisURL
	}
	return "dev-" + secret + "-" + key
}

// Apply creates the objects (namespaces as needed), or updates them when
// they exist.
func (s *System) Apply(ctx context.Context, objs []*unstructured.Unstructured) error {
	for _, o := range objs {
		ns := &unstructured.Unstructured{}
		ns.SetAPIVersion("v1")
		ns.SetKind("Namespace")
		ns.SetName(o.GetNamespace())
		if err := s.Client.Create(ctx, ns); err != nil && !apierrors.IsAlreadyExists(err) {
			return err
		}
		err := s.Client.Create(ctx, o.DeepCopy())
		if apierrors.IsAlreadyExists(err) {
			cur := &unstructured.Unstructured{}
			cur.SetGroupVersionKind(o.GroupVersionKind())
			if err := s.Client.Get(ctx, clientKey(o), cur); err != nil {
				return err
			}
			o.SetResourceVersion(cur.GetResourceVersion())
			err = s.Client.Update(ctx, o.DeepCopy())
		}
		if err != nil {
			return fmt.Errorf("apply %s %s/%s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
	}
	return nil
}
