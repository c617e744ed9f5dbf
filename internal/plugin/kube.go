package plugin

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
)

func newScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	if err := corev1.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := vconv1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}

// kube is a client for the cluster the kubeconfig flags select, with the
// namespace they select.
type kube struct {
	client    client.Client
	namespace string
	// config is what the client was built from; the API transport reaches
	// the API's Service through this API server with these credentials.
	config *rest.Config
}

func (r *root) kube() (*kube, error) {
	cfg, err := r.flags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w (pass --kubeconfig or set KUBECONFIG)", err)
	}
	ns, _, err := r.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return nil, fmt.Errorf("load kubeconfig: %w", err)
	}
	c, err := client.New(cfg, client.Options{Scheme: newScheme()})
	if err != nil {
		return nil, fmt.Errorf("connect to the cluster: %w", err)
	}
	return &kube{client: c, namespace: ns, config: cfg}, nil
}

// chain reads one Chain, with errors that say what to do.
func (k *kube) chain(ctx context.Context, name string) (*vconv1.Chain, error) {
	var ch vconv1.Chain
	err := k.client.Get(ctx, types.NamespacedName{Namespace: k.namespace, Name: name}, &ch)
	if err != nil {
		return nil, chainError(err, name, k.namespace)
	}
	return &ch, nil
}

// chains reads the Chains of the namespace (every namespace when all).
func (k *kube) chains(ctx context.Context, all bool) ([]vconv1.Chain, error) {
	var list vconv1.ChainList
	var opts []client.ListOption
	if !all {
		opts = append(opts, client.InNamespace(k.namespace))
	}
	if err := k.client.List(ctx, &list, opts...); err != nil {
		return nil, chainError(err, "", k.namespace)
	}
	return list.Items, nil
}

func chainError(err error, name, ns string) error {
	switch {
	case apierrors.IsNotFound(err) && name != "":
		return fmt.Errorf("chain %q not found in namespace %s (kubectl get chains -n %s lists them)", name, ns, ns)
	case apierrors.IsNotFound(err):
		return fmt.Errorf("the Chain resource is not installed in this cluster (install the vcon-operator CRDs): %w", err)
	case apierrors.IsForbidden(err):
		return fmt.Errorf("not allowed to read Chains in namespace %s: %w", ns, err)
	case name != "":
		return fmt.Errorf("read chain %s/%s: %w", ns, name, err)
	default:
		return fmt.Errorf("list chains in namespace %s: %w", ns, err)
	}
}
