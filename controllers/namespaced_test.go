package controllers_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/internal/charttest"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

// TestNamespacedInstall runs the operator as the chart installs it with
// operator.watchNamespaces: as the chart's ServiceAccount (impersonated),
// holding only the Roles and RoleBindings the chart renders, with its
// cache on the watched namespaces and leader election in the release
// namespace. Chains in the watched namespaces get their workers and
// status; a Chain elsewhere is left alone; and the ServiceAccount is
// refused anything outside its namespaces, Chains cluster-wide first.
func TestNamespacedInstall(t *testing.T) {
	ctx := context.Background()
	watched := []string{testNamespace(t), testNamespace(t)}
	outside := testNamespace(t)
	t.Cleanup(func() {
		for _, ns := range append(watched[1:], outside) {
			_ = kube.Client.Delete(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}})
		}
	})
	release := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: charttest.ReleaseNamespace}}
	if err := kube.Client.Create(ctx, release); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}

	user := installChartRBAC(t, watched)
	impersonated := rest.CopyConfig(kube.Config)
	impersonated.Impersonate = rest.ImpersonationConfig{UserName: user}

	t.Run("refused outside its namespaces", func(t *testing.T) {
		sa, err := client.New(impersonated, client.Options{Scheme: kube.Scheme})
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name    string
			do      func() error
			allowed bool
		}{
			{"list Chains in a watched namespace", func() error {
				return sa.List(ctx, &vconv1.ChainList{}, client.InNamespace(watched[0]))
			}, true},
			{"list Chains cluster-wide", func() error { return sa.List(ctx, &vconv1.ChainList{}) }, false},
			{"list Chains in another namespace", func() error {
				return sa.List(ctx, &vconv1.ChainList{}, client.InNamespace(outside))
			}, false},
			{"list Deployments cluster-wide", func() error { return sa.List(ctx, &appsv1.DeploymentList{}) }, false},
			{"create a ConfigMap in another namespace", func() error {
				return sa.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: outside}})
			}, false},
			{"get a Secret in another namespace", func() error {
				err := sa.Get(ctx, types.NamespacedName{Namespace: outside, Name: "x"}, &corev1.Secret{})
				if apierrors.IsNotFound(err) {
					return nil
				}
				return err
			}, false},
			{"list Secrets in a watched namespace", func() error {
				return sa.List(ctx, &corev1.SecretList{}, client.InNamespace(watched[0]))
			}, false},
			{"list Namespaces", func() error { return sa.List(ctx, &corev1.NamespaceList{}) }, false},
			{"list Leases cluster-wide", func() error { return sa.List(ctx, &coordinationv1.LeaseList{}) }, false},
		} {
			err := tc.do()
			switch {
			case tc.allowed && err != nil:
				t.Errorf("%s: %v, want allowed", tc.name, err)
			case !tc.allowed && !apierrors.IsForbidden(err):
				t.Errorf("%s: %v, want Forbidden", tc.name, err)
			}
		}
	})

	op := newOperator(t, watched[0])
	op.start(t, managerSetup{config: impersonated, namespaces: watched, leaderElectionNamespace: charttest.ReleaseNamespace})

	// The Chain outside first: had the operator seen it, it would have had
	// its turn before the watched ones were Ready.
	ignored := op.chain("ignored", []string{"ingress-ignored"})
	ignored.Namespace = outside
	if err := kube.Client.Create(ctx, asApplied(t, ignored)); err != nil {
		t.Fatal(err)
	}
	for i, ns := range watched {
		name := fmt.Sprintf("watched-%d", i)
		ch := op.chain(name, []string{"ingress-" + name})
		ch.Namespace = ns
		if err := kube.Client.Create(ctx, asApplied(t, ch)); err != nil {
			t.Fatal(err)
		}
		key := types.NamespacedName{Namespace: ns, Name: name}
		eventually(t, waitFor, key.String()+" Ready and measured with its Deployment", func() error {
			var got vconv1.Chain
			if err := kube.Client.Get(ctx, key, &got); err != nil {
				return err
			}
			if err := all(hasCondition(vconv1.ConditionReady, metav1.ConditionTrue, ""),
				hasCondition(vconv1.ConditionRedisReachable, metav1.ConditionTrue, ""))(&got); err != nil {
				return err
			}
			return kube.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: workload.DeploymentName(name)}, &appsv1.Deployment{})
		})
	}

	var got vconv1.Chain
	if err := kube.Client.Get(ctx, client.ObjectKeyFromObject(ignored), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Status.Conditions) > 0 {
		t.Errorf("Chain %s/%s outside the watched namespaces has a status: %+v", outside, ignored.Name, got.Status.Conditions)
	}
	for _, obj := range []client.Object{&appsv1.Deployment{}, &corev1.ConfigMap{}, &corev1.Secret{}} {
		for _, name := range []string{workload.DeploymentName(ignored.Name), workload.ConfigMapName(ignored.Name), workload.RedisSecretName(ignored.Name)} {
			err := kube.Client.Get(ctx, types.NamespacedName{Namespace: outside, Name: name}, obj)
			if !apierrors.IsNotFound(err) {
				t.Errorf("%T %s/%s outside the watched namespaces: %v, want not found", obj, outside, name, err)
			}
		}
	}
	if _, tracked := op.obs.Get(client.ObjectKeyFromObject(ignored)); tracked {
		t.Errorf("the observer measures Chain %s/%s outside the watched namespaces", outside, ignored.Name)
	}

	var lease coordinationv1.Lease
	if err := kube.Client.Get(ctx, types.NamespacedName{Namespace: charttest.ReleaseNamespace, Name: "vcon-operator-" + op.ns}, &lease); err != nil {
		t.Fatalf("leader-election Lease in %s: %v", charttest.ReleaseNamespace, err)
	}
	if lease.Spec.HolderIdentity == nil || *lease.Spec.HolderIdentity == "" {
		t.Errorf("leader-election Lease has no holder: %+v", lease.Spec)
	}
}

// installChartRBAC applies the ServiceAccount, Roles and RoleBindings the
// chart renders with operator.watchNamespaces, as `helm install` would, and
// returns the ServiceAccount's user name. It fails if the chart renders
// anything cluster-wide.
func installChartRBAC(t *testing.T, namespaces []string) string {
	t.Helper()
	ctx := context.Background()
	p, err := charttest.FindPaths()
	if err != nil {
		t.Fatal(err)
	}
	list, err := json.Marshal(namespaces)
	if err != nil {
		t.Fatal(err)
	}
	out, err := p.Template(nil, "--set-json", "operator.watchNamespaces="+string(list),
		"--show-only", "templates/serviceaccount.yaml", "--show-only", "templates/rbac.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs, err := charttest.ParseManifests(out)
	if err != nil {
		t.Fatal(err)
	}
	user := ""
	for _, o := range objs {
		switch o.GetKind() {
		case "ServiceAccount":
			user = "system:serviceaccount:" + o.GetNamespace() + ":" + o.GetName()
		case "Role", "RoleBinding":
		default:
			t.Fatalf("the chart renders %s %s with operator.watchNamespaces: want only a ServiceAccount, Roles and RoleBindings", o.GetKind(), o.GetName())
		}
		if err := kube.Client.Apply(ctx, client.ApplyConfigurationFromUnstructured(o), client.FieldOwner("helm"), client.ForceOwnership); err != nil {
			t.Fatalf("apply %s %s/%s: %v", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
		t.Cleanup(func() { _ = kube.Client.Delete(context.Background(), o) })
	}
	if user == "" {
		t.Fatal("the chart renders no ServiceAccount")
	}
	return user
}
