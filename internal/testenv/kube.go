package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	vconv1alpha1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
)

// Kube is a real kube-apiserver and etcd (envtest) with our CRDs installed.
type Kube struct {
	Env    *envtest.Environment
	Config *rest.Config
	Client client.Client
	Scheme *runtime.Scheme
}

// KubeOption changes how the API server is started.
type KubeOption func(*envtest.Environment)

// WithCRDPaths installs more CRDs (files or directories), e.g. the
// Prometheus Operator's for the chart tests.
func WithCRDPaths(paths ...string) KubeOption {
	return func(e *envtest.Environment) { e.CRDDirectoryPaths = append(e.CRDDirectoryPaths, paths...) }
}

// WithoutProjectCRDs starts the API server without the Chain, Link and
// Storage CRDs, for a test that installs them itself (as Helm does). Give it
// before WithCRDPaths.
func WithoutProjectCRDs() KubeOption {
	return func(e *envtest.Environment) { e.CRDDirectoryPaths = nil; e.ErrorIfCRDPathMissing = false }
}

// Scheme returns a scheme with the Kubernetes built-ins and our API.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	must(clientgoscheme.AddToScheme(s))
	must(apiextensionsv1.AddToScheme(s))
	must(vconv1alpha1.AddToScheme(s))
	return s
}

func must(err error) {
	if err != nil {
		panic(err)
	}
}

// RepoRoot is the directory holding go.mod, found from the working
// directory (go test runs each package in its own directory).
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("no go.mod above the working directory")
		}
		dir = parent
	}
}

// envtestAssets finds kube-apiserver and etcd: KUBEBUILDER_ASSETS (set by the
// Makefile to bin/), else the repository's bin/.
func envtestAssets() (string, error) {
	dirs := []string{}
	if d := os.Getenv("KUBEBUILDER_ASSETS"); d != "" {
		dirs = append(dirs, d)
	}
	if root, err := RepoRoot(); err == nil {
		dirs = append(dirs, filepath.Join(root, "bin"))
	}
	for _, d := range dirs {
		_, errAPI := os.Stat(filepath.Join(d, "kube-apiserver"))
		_, errEtcd := os.Stat(filepath.Join(d, "etcd"))
		if errAPI == nil && errEtcd == nil {
			return d, nil
		}
	}
	return "", fmt.Errorf("kube-apiserver and etcd not found in %v: run `hack/tools.sh envtest` (make test does; the first build takes several minutes)", dirs)
}

// StartKubeEnv starts the API server without a testing.T, for TestMain.
// The caller must call Stop on the result.
func StartKubeEnv(opts ...KubeOption) (*Kube, error) {
	assets, err := envtestAssets()
	if err != nil {
		return nil, err
	}
	root, err := RepoRoot()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDDirectoryPaths:     []string{filepath.Join(root, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	for _, o := range opts {
		o(env)
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, fmt.Errorf("start envtest (kube-apiserver + etcd from %s): %w", assets, err)
	}
	scheme := Scheme()
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &Kube{Env: env, Config: cfg, Client: c, Scheme: scheme}, nil
}

// Stop stops the API server and etcd.
func (k *Kube) Stop() error { return k.Env.Stop() }

// StartKube starts the API server for one test and stops it at cleanup.
// Packages with many tests should share one through TestMain and RunMain.
func StartKube(t testing.TB, opts ...KubeOption) *Kube {
	t.Helper()
	k, err := StartKubeEnv(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = k.Stop() })
	return k
}

// RunMain runs a package's tests against one shared API server:
//
//	var kube *testenv.Kube
//	func TestMain(m *testing.M) { os.Exit(testenv.RunMain(m, &kube)) }
func RunMain(m *testing.M, kube **Kube, opts ...KubeOption) int {
	k, err := StartKubeEnv(opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "FAIL:", err)
		return 1
	}
	*kube = k
	code := m.Run()
	if err := k.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop envtest:", err)
	}
	return code
}
