package promop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/wait"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
)

// Options say where the manifests are and how often Prometheus works.
type Options struct {
	// BinDir is this repository's bin/ after
	// hack/tools.sh prometheus prometheus-operator: the binaries (for the
	// image tags), prometheus-operator-crds/ and prometheus-operator-rbac/.
	BinDir string
	// Namespace for the operator and Prometheus; "monitoring" if empty.
	Namespace string
	// ScrapeInterval and EvaluationInterval of the Prometheus resource
	// (whole milliseconds); 30 s if zero. Tests want 1–2 s.
	ScrapeInterval, EvaluationInterval time.Duration
	// Timeout bounds Install's waits; 3 minutes if zero.
	Timeout time.Duration
	// Logf, if set, gets a line at each step with the time since Install
	// began (t.Logf fits).
	Logf func(format string, args ...any)
}

// Installed is what Install brought up.
type Installed struct {
	// URL is Prometheus's Service from the host: http://<ClusterIP>:9090.
	URL       string
	Namespace string
	Images    Images
}

var scheme = runtime.NewScheme()

func init() {
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		panic(err)
	}
}

// Install applies the CRDs, the operator and a Prometheus resource to the
// cluster at cfg (server-side apply, field manager vcon-promop; running it
// again updates in place) and waits until the operator and the Prometheus
// pod are Ready and Prometheus answers /-/ready from this process. The
// images must already be in the node's containerd (ImportImages).
func Install(ctx context.Context, cfg *rest.Config, o Options) (*Installed, error) {
	if o.Namespace == "" {
		o.Namespace = "monitoring"
	}
	if o.ScrapeInterval == 0 {
		o.ScrapeInterval = 30 * time.Second
	}
	if o.EvaluationInterval == 0 {
		o.EvaluationInterval = 30 * time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = 3 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	began := time.Now()
	step := func(what string) {
		if o.Logf != nil {
			o.Logf("promop: %s after %.1f s", what, time.Since(began).Seconds())
		}
	}

	img, err := ImagesIn(o.BinDir)
	if err != nil {
		return nil, err
	}
	crds, err := readManifests(filepath.Join(o.BinDir, "prometheus-operator-crds"))
	if err != nil {
		return nil, err
	}
	role, err := operatorClusterRole(filepath.Join(o.BinDir, "prometheus-operator-rbac", "prometheus-operator-cluster-role.yaml"))
	if err != nil {
		return nil, err
	}
	objs, err := objects(o, img)
	if err != nil {
		return nil, err
	}

	kube, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	disco, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return nil, err
	}
	a := &applier{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))}

	if err := applyCRDs(ctx, a, dyn, crds); err != nil {
		return nil, err
	}
	step("CRDs established")
	a.mapper.Reset() // the new kinds
	for _, obj := range append([]*unstructured.Unstructured{role}, objs...) {
		if err := a.apply(ctx, obj); err != nil {
			return nil, err
		}
	}
	step("objects applied")

	if err := waitDeploymentReady(ctx, kube, o.Namespace, OperatorName); err != nil {
		return nil, err
	}
	step("operator ready")
	// The operator names the StatefulSet prometheus-<name>.
	if err := waitPodReady(ctx, kube, o.Namespace, "prometheus-"+PrometheusName+"-0"); err != nil {
		return nil, err
	}
	step("Prometheus pod ready")
	svc, err := kube.CoreV1().Services(o.Namespace).Get(ctx, PrometheusName, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	url := fmt.Sprintf("http://%s:%d", svc.Spec.ClusterIP, PrometheusPort)
	if err := waitHTTPOK(ctx, url+"/-/ready"); err != nil {
		return nil, err
	}
	step(url + "/-/ready")
	return &Installed{URL: url, Namespace: o.Namespace, Images: img}, nil
}

type applier struct {
	dyn    dynamic.Interface
	mapper *restmapper.DeferredDiscoveryRESTMapper
}

func (a *applier) apply(ctx context.Context, obj *unstructured.Unstructured) error {
	gvk := obj.GroupVersionKind()
	m, err := a.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
	if err != nil {
		return fmt.Errorf("apply %s %s: %w", gvk.Kind, obj.GetName(), err)
	}
	var r dynamic.ResourceInterface = a.dyn.Resource(m.Resource)
	if ns := obj.GetNamespace(); ns != "" {
		r = a.dyn.Resource(m.Resource).Namespace(ns)
	}
	if _, err := r.Apply(ctx, obj.GetName(), obj, metav1.ApplyOptions{FieldManager: fieldManager, Force: true}); err != nil {
		return fmt.Errorf("apply %s %s: %w", gvk.Kind, obj.GetName(), err)
	}
	return nil
}

// readManifests decodes every YAML document of every *.yaml in dir.
func readManifests(dir string) ([]*unstructured.Unstructured, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no manifests in %s: run hack/tools.sh prometheus-operator", dir)
	}
	var out []*unstructured.Unstructured
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
		for {
			u := &unstructured.Unstructured{}
			if err := dec.Decode(&u.Object); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				return nil, fmt.Errorf("decode %s: %w", f, err)
			}
			if len(u.Object) > 0 {
				out = append(out, u)
			}
		}
	}
	return out, nil
}

// operatorClusterRole is upstream's ClusterRole for the operator, as the
// module ships it (example/rbac), checked to be one.
func operatorClusterRole(file string) (*unstructured.Unstructured, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("%w: run hack/tools.sh prometheus-operator", err)
	}
	var role rbacv1.ClusterRole
	if err := utilyaml.Unmarshal(data, &role); err != nil {
		return nil, fmt.Errorf("decode %s: %w", file, err)
	}
	if role.Kind != "ClusterRole" || role.Name != OperatorName {
		return nil, fmt.Errorf("%s: %s %q, want ClusterRole %q", file, role.Kind, role.Name, OperatorName)
	}
	return toUnstructured(&role)
}

var crdResource = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

func waitEstablished(ctx context.Context, dyn dynamic.Interface, name string) error {
	return poll(ctx, "CRD "+name+" Established", func(ctx context.Context) (bool, error) {
		u, err := dyn.Resource(crdResource).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		var crd apiextensionsv1.CustomResourceDefinition
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, &crd); err != nil {
			return false, err
		}
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
}

func waitDeploymentReady(ctx context.Context, kube kubernetes.Interface, ns, name string) error {
	return poll(ctx, "Deployment "+ns+"/"+name+" Ready", func(ctx context.Context) (bool, error) {
		d, err := kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return deploymentReady(d), nil
	})
}

func deploymentReady(d *appsv1.Deployment) bool {
	return d.Status.ObservedGeneration >= d.Generation && d.Spec.Replicas != nil &&
		d.Status.UpdatedReplicas == *d.Spec.Replicas && d.Status.ReadyReplicas == *d.Spec.Replicas
}

// waitPodReady waits for a pod the operator creates, so NotFound is
// retried.
func waitPodReady(ctx context.Context, kube kubernetes.Interface, ns, name string) error {
	return poll(ctx, "pod "+ns+"/"+name+" Ready", func(ctx context.Context) (bool, error) {
		p, err := kube.CoreV1().Pods(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		for _, c := range p.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				return true, nil
			}
		}
		return false, fmt.Errorf("not ready: %s", podState(p))
	})
}

// podState says why a pod is not ready: its phase and each container's
// state.
func podState(p *corev1.Pod) string {
	var b strings.Builder
	fmt.Fprintf(&b, "phase %s", p.Status.Phase)
	for _, c := range append(p.Status.InitContainerStatuses, p.Status.ContainerStatuses...) {
		switch s := c.State; {
		case s.Waiting != nil:
			fmt.Fprintf(&b, "; %s waiting: %s %s", c.Name, s.Waiting.Reason, s.Waiting.Message)
		case s.Terminated != nil:
			fmt.Fprintf(&b, "; %s terminated: %s (exit %d) %s", c.Name, s.Terminated.Reason, s.Terminated.ExitCode, s.Terminated.Message)
		default:
			fmt.Fprintf(&b, "; %s running, ready %v, restarts %d", c.Name, c.Ready, c.RestartCount)
		}
	}
	return b.String()
}

// waitHTTPOK waits for url to answer 200: kube-proxy programs a new
// Service a little after its endpoints are ready.
func waitHTTPOK(ctx context.Context, url string) error {
	client := &http.Client{Timeout: 2 * time.Second}
	return poll(ctx, "GET "+url, func(ctx context.Context) (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, nil
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, nil
	})
}

// poll checks cond every 200 ms until it holds or ctx ends; the error
// names what was awaited and the last error seen.
func poll(ctx context.Context, what string, cond func(context.Context) (bool, error)) error {
	var last error
	err := wait.PollUntilContextCancel(ctx, 200*time.Millisecond, true, func(ctx context.Context) (bool, error) {
		ok, err := cond(ctx)
		last = err
		return ok, nil
	})
	if err != nil {
		return fmt.Errorf("wait for %s: %w (last error: %v)", what, err, last)
	}
	return nil
}

// InstallCRDs applies only the monitoring.coreos.com CRDs (Install applies
// them too) and waits until they are established. Install the objects that
// use them (a chart's ServiceMonitors) between InstallCRDs and Install, and
// the first configuration the operator renders for Prometheus already has
// them: the config-reloader otherwise picks up a later change only at its
// watch interval (3 minutes) when the kubelet's update of the mounted
// Secret races its start.
func InstallCRDs(ctx context.Context, cfg *rest.Config, binDir string) error {
	crds, err := readManifests(filepath.Join(binDir, "prometheus-operator-crds"))
	if err != nil {
		return err
	}
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	disco, err := discovery.NewDiscoveryClientForConfig(cfg)
	if err != nil {
		return err
	}
	a := &applier{dyn: dyn, mapper: restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(disco))}
	return applyCRDs(ctx, a, dyn, crds)
}

func applyCRDs(ctx context.Context, a *applier, dyn dynamic.Interface, crds []*unstructured.Unstructured) error {
	for _, crd := range crds {
		if err := a.apply(ctx, crd); err != nil {
			return err
		}
	}
	for _, crd := range crds {
		if err := waitEstablished(ctx, dyn, crd.GetName()); err != nil {
			return err
		}
	}
	return nil
}
