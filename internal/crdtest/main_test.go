// Package crdtest checks the vcon.dev CRDs as a user meets them: the CRDs
// (schema, defaults, CEL rules) and the manifests in config/ installed on a
// real kube-apiserver (envtest), with the server, not our Go code,
// accepting, defaulting and rejecting. The HTTP API's tests are in
// internal/api.
package crdtest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

var kube *testenv.Kube

func TestMain(m *testing.M) { os.Exit(testenv.RunMain(m, &kube)) }

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

var namespaceSeq atomic.Int64

// newNamespace creates an empty namespace for one test and deletes it after.
func newNamespace(t *testing.T) string {
	t.Helper()
	ctx := testContext(t)
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("crdtest-%d-%d", os.Getpid()%10000, namespaceSeq.Add(1))}}
	if err := kube.Client.Create(ctx, ns); err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	t.Cleanup(func() { _ = kube.Client.Delete(context.Background(), ns) })
	return ns.Name
}

// repoPath is a path under the repository root.
func repoPath(t *testing.T, elem ...string) string {
	t.Helper()
	root, err := testenv.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(append([]string{root}, elem...)...)
}

// decodeDocuments reads a multi-document YAML stream into objects, skipping
// documents that hold only comments.
func decodeDocuments(data []byte) ([]*unstructured.Unstructured, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []*unstructured.Unstructured
	for {
		doc, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		var obj map[string]any
		if err := yaml.Unmarshal(doc, &obj); err != nil {
			return nil, err
		}
		if len(obj) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: obj})
	}
}

// decodeFile reads the objects of one YAML file.
func decodeFile(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeDocuments(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if len(objs) == 0 {
		t.Fatalf("%s: no objects", path)
	}
	return objs
}

// object decodes one manifest written inline in a test.
func object(t *testing.T, manifest string) *unstructured.Unstructured {
	t.Helper()
	objs, err := decodeDocuments([]byte(manifest))
	if err != nil || len(objs) != 1 {
		t.Fatalf("test manifest: want one object, got %d (%v):\n%s", len(objs), err, manifest)
	}
	return objs[0]
}
