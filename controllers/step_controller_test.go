package controllers_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
)

// Links and Storages report whether the worker can run them, and whether
// their options keep credentials out of the ConfigMap.
func TestStepConditions(t *testing.T) {
	op := startOperator(t)
	tests := []struct {
		name       string
		link       *vconv1.Link
		storage    *vconv1.Storage
		ready      metav1.ConditionStatus
		readyWhy   string
		credsInSec metav1.ConditionStatus
		// ownRefs is EnvReferencesOwn; "" is True.
		ownRefs metav1.ConditionStatus
	}{
		{name: "known link", link: &vconv1.Link{Spec: vconv1.LinkSpec{Module: "links.tag", Options: opts(`{"tags":["a:b"]}`)}},
			ready: metav1.ConditionTrue, readyWhy: "Valid", credsInSec: metav1.ConditionTrue},
		{name: "unknown link module", link: &vconv1.Link{Spec: vconv1.LinkSpec{Module: "links.nope"}},
			ready: metav1.ConditionFalse, readyWhy: "UnknownModule", credsInSec: metav1.ConditionTrue},
		{name: "literal api key", link: &vconv1.Link{Spec: vconv1.LinkSpec{Module: "links.analyze", Options: opts(`{"OPENAI_API_KEY":"sk-live"}`)}},
			ready: metav1.ConditionTrue, readyWhy: "Valid", credsInSec: metav1.ConditionFalse},
		{name: "storage with env reference", storage: &vconv1.Storage{Spec: vconv1.StorageSpec{Module: "storage.postgres", Options: opts(`{"password":"${PG_PASSWORD}"}`),
			Env: []vconv1.SecretEnv{{Name: "PG_PASSWORD", SecretKeyRef: corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: "pg"}, Key: "password"}}}}},
			ready: metav1.ConditionTrue, readyWhy: "Valid", credsInSec: metav1.ConditionTrue},
		{name: "storage referencing a variable it does not provide", storage: &vconv1.Storage{Spec: vconv1.StorageSpec{Module: "storage.postgres", Options: opts(`{"password":"${PG_PASSWORD}"}`)}},
			ready: metav1.ConditionTrue, readyWhy: "Valid", credsInSec: metav1.ConditionTrue, ownRefs: metav1.ConditionFalse},
		{name: "link reading the worker's REDIS_URL", link: &vconv1.Link{Spec: vconv1.LinkSpec{Module: "links.webhook", Options: opts(`{"webhook-urls":["https://h/?r=${REDIS_URL}"]}`)}},
			ready: metav1.ConditionTrue, readyWhy: "Valid", credsInSec: metav1.ConditionTrue, ownRefs: metav1.ConditionFalse},
		{name: "unknown storage module", storage: &vconv1.Storage{Spec: vconv1.StorageSpec{Module: "storage.nope"}},
			ready: metav1.ConditionFalse, readyWhy: "UnknownModule", credsInSec: metav1.ConditionTrue},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			name := fmt.Sprintf("step-%d", i)
			var conds func() []metav1.Condition
			if tt.link != nil {
				tt.link.Name = name
				op.create(t, tt.link)
				conds = func() []metav1.Condition {
					var l vconv1.Link
					_ = op.c.Get(context.Background(), op.key(name), &l)
					return l.Status.Conditions
				}
			} else {
				tt.storage.Name = name
				op.create(t, tt.storage)
				conds = func() []metav1.Condition {
					var s vconv1.Storage
					_ = op.c.Get(context.Background(), op.key(name), &s)
					return s.Status.Conditions
				}
			}
			eventually(t, waitFor, "step conditions", func() error {
				c := conds()
				ready := apimeta.FindStatusCondition(c, "Ready")
				creds := apimeta.FindStatusCondition(c, "CredentialsInSecrets")
				own := apimeta.FindStatusCondition(c, string(vconv1.ConditionEnvReferencesOwn))
				if ready == nil || creds == nil || own == nil {
					return fmt.Errorf("conditions not set yet: %+v", c)
				}
				if ready.Status != tt.ready || ready.Reason != tt.readyWhy || creds.Status != tt.credsInSec {
					return fmt.Errorf("Ready=%s/%s CredentialsInSecrets=%s; want %s/%s %s", ready.Status, ready.Reason, creds.Status, tt.ready, tt.readyWhy, tt.credsInSec)
				}
				wantOwn := tt.ownRefs
				if wantOwn == "" {
					wantOwn = metav1.ConditionTrue
				}
				if own.Status != wantOwn {
					return fmt.Errorf("EnvReferencesOwn=%s (%s), want %s", own.Status, own.Message, wantOwn)
				}
				if wantOwn == metav1.ConditionFalse && (own.Reason != vconv1.ReasonEnvReferenceNotAllowed || !strings.Contains(own.Message, "options.")) {
					return fmt.Errorf("EnvReferencesOwn %s: %s, want the option named", own.Reason, own.Message)
				}
				if ready.ObservedGeneration != 1 {
					return fmt.Errorf("observedGeneration %d, want 1", ready.ObservedGeneration)
				}
				return nil
			})
		})
	}
}

func opts(s string) *apiextensionsv1.JSON { return &apiextensionsv1.JSON{Raw: []byte(s)} }
