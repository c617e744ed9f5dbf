package crdtest

import (
	"fmt"
	"strings"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vconv1alpha1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

// TestWorkerPodHasNoWayToLoosenHardening: spec.workers is a subset of a
// pod template without the fields that would weaken the worker pod
// (privileged, host namespaces and paths, root, capabilities). kubectl
// apply (strict field validation) names them as unknown; a client that
// does not ask for strictness has them pruned, so they never reach the
// operator.
func TestWorkerPodHasNoWayToLoosenHardening(t *testing.T) {
	ns := newNamespace(t)
	const manifest = `apiVersion: vcon.dev/v1alpha1
kind: Chain
spec:
  ingressLists: [in]
  workers:
    hostNetwork: true
    hostPID: true
    securityContext: {runAsUser: 0, privileged: true}
    volumes: [{name: root, mountPath: /host, hostPath: {path: /}}]
    automountServiceAccountToken: true`
	unknown := []string{
		`unknown field "spec.workers.hostNetwork"`,
		`unknown field "spec.workers.hostPID"`,
		`unknown field "spec.workers.securityContext"`,
		`unknown field "spec.workers.volumes[0].hostPath"`,
		`unknown field "spec.workers.automountServiceAccountToken"`,
	}
	ctx := testContext(t)

	obj := object(t, manifest)
	obj.SetNamespace(ns)
	obj.SetName("strict")
	err := kube.Client.Create(ctx, obj, client.FieldValidation("Strict"))
	if err == nil {
		t.Fatal("accepted under strict field validation")
	}
	for _, w := range unknown {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("the error does not say %q:\n%v", w, err)
		}
	}

	obj = object(t, manifest)
	obj.SetNamespace(ns)
	obj.SetName("lax")
	if err := kube.Client.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	var stored vconv1alpha1.Chain
	if err := kube.Client.Get(ctx, clientKey(obj), &stored); err != nil {
		t.Fatal(err)
	}
	got := &unstructured.Unstructured{}
	got.SetGroupVersionKind(obj.GroupVersionKind())
	if err := kube.Client.Get(ctx, clientKey(obj), got); err != nil {
		t.Fatal(err)
	}
	workers, _ := got.Object["spec"].(map[string]any)["workers"].(map[string]any)
	for _, f := range []string{"hostNetwork", "hostPID", "securityContext", "automountServiceAccountToken"} {
		if _, kept := workers[f]; kept {
			t.Errorf("spec.workers.%s was stored: %v", f, workers[f])
		}
	}
	if vols := stored.Spec.Workers.Volumes; len(vols) != 1 || vols[0].ClaimName != "" {
		t.Errorf("volumes stored as %+v, want one emptyDir volume", vols)
	}
}

// TestServerRefusesOperatorEnv: workers.env is refused exactly for the
// names the operator sets itself (workload.OperatorEnv), so the CEL rule
// cannot drift from the Go one.
func TestServerRefusesOperatorEnv(t *testing.T) {
	ns := newNamespace(t)
	names := []string{
		"REDIS_URL", "VCON_QUEUED_RETENTION",
		workload.StepEnvName("link", "openai", "TOKEN"), workload.StepEnvName("storage", "s3.archive", "KEY"),
		"VCON_STEP_WEBHOOK_HEADER_X_API_KEY",
		// Not the operator's: the worker's own settings and look-alikes.
		"VCON_STORAGE_FALLBACK_ENABLED", "VCON_LINK", "REDIS_URLS", "AWS_REGION", "vcon_link6_openai_token",
	}
	for i, name := range names {
		t.Run(name, func(t *testing.T) {
			ctx := testContext(t)
			obj := object(t, fmt.Sprintf("apiVersion: vcon.dev/v1alpha1\nkind: Chain\nspec: {ingressLists: [in], workers: {env: [{name: %q, value: x}]}}", name))
			obj.SetNamespace(ns)
			obj.SetName(fmt.Sprintf("env-%d", i))
			err := kube.Client.Create(ctx, obj)
			refused := err != nil
			if refused != workload.OperatorEnv(name) {
				t.Fatalf("the API server refused it: %t (%v); workload.OperatorEnv: %t", refused, err, workload.OperatorEnv(name))
			}
			if refused && (!apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "env "+name+" is set by the operator")) {
				t.Errorf("want the operator-env message, got %v", err)
			}
		})
	}
}
