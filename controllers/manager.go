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
// worker pods are cached, never every pod of the cluster.
func CacheOptions(namespaces []string) (cache.Options, error) {
	opts := cache.Options{ByObject: map[client.Object]cache.ByObject{
		&corev1.Pod{}: {Label: labels.SelectorFromSet(labels.Set{workload.LabelName: workload.WorkerName})},
	}}
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
