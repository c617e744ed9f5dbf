package controllers

import (
	"errors"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/vcon-operator/vcon-operator/internal/workload"
)

// CacheOptions is the manager's cache for these reconcilers. With
// namespaces, the cache (and so every watch and every read through it)
// covers those namespaces only: the operator then needs no cluster-wide
// permission, only a Role in each of them (the chart's
// operator.watchNamespaces). None means every namespace. Either way only
// worker pods are cached, never every pod of the cluster, and no cached
// object keeps its managedFields: nothing reads them, server-side apply
// does not need them, and they are the bulk of an applied Deployment or
// ConfigMap, times 10,000 Chains.
func CacheOptions(namespaces []string) (cache.Options, error) {
	opts := cache.Options{
		ByObject: map[client.Object]cache.ByObject{
			&corev1.Pod{}: {Label: labels.SelectorFromSet(labels.Set{workload.LabelName: workload.WorkerName})},
		},
		DefaultTransform: cache.TransformStripManagedFields(),
	}
	var errs []error
	for _, ns := range namespaces {
		if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("namespace %q: %s", ns, strings.Join(msgs, "; ")))
			continue
		}
		if opts.DefaultNamespaces == nil {
			opts.DefaultNamespaces = map[string]cache.Config{}
		}
		opts.DefaultNamespaces[ns] = cache.Config{}
	}
	return opts, errors.Join(errs...)
}

// The manager's defaults for an operator of thousands of Chains
// (cmd/manager's flags, the chart's operator.kubeAPIQPS, kubeAPIBurst and
// maxConcurrentReconciles). docs/benchmarks.md measures them.
const (
	// DefaultMaxConcurrentReconciles: a Chain's reconcile spends most of
	// its time waiting on the API server (a Secret read, its applies and a
	// status write), so one at a time, controller-runtime's default, left
	// a wave of 1,000 new Chains queued behind each other for about a
	// minute while the operator's CPU idled.
	DefaultMaxConcurrentReconciles = 10
	// DefaultKubeAPIQPS and DefaultKubeAPIBurst bound the operator's
	// requests to the API server, per resource type as client-go counts
	// them. controller-runtime sets no client-side limit unless the
	// kubeconfig has one, leaving a reconcile loop gone wrong to the API
	// server's priority and fairness alone; the 20 and 30 that earlier
	// versions defaulted to would pace a wave of 1,000 new Chains (about
	// four Secret requests each: a read and an apply per reconcile) to
	// more than three minutes.
	DefaultKubeAPIQPS   = 200
	DefaultKubeAPIBurst = 400
)
