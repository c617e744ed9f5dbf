// Command manager is the vcon-operator: it reconciles Chains into
// autoscaled worker Deployments, measures their queues in Redis, and
// publishes status conditions and queue metrics.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	// The image has no /usr/share/zoneinfo: workers.schedules' time zones
	// come from the binary.
	_ "time/tzdata"

	"go.uber.org/zap/zapcore"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	vconv1 "github.com/vcon-operator/vcon-operator/api/v1alpha1"
	"github.com/vcon-operator/vcon-operator/controllers"
	"github.com/vcon-operator/vcon-operator/internal/apiwire"
	"github.com/vcon-operator/vcon-operator/internal/crdcheck"
	"github.com/vcon-operator/vcon-operator/internal/observer"
	"github.com/vcon-operator/vcon-operator/internal/redisconn"
	"github.com/vcon-operator/vcon-operator/internal/version"
	"github.com/vcon-operator/vcon-operator/internal/workload"
)

func main() {
	var (
		redisURL, workerImage, metricsAddr, probeAddr string
		allowedImages, allowedRedis                   string
		pollInterval, queuedRetention                 time.Duration
		leaderElect                                   bool
		leaderElectionNamespace                       string
		crdCheckWait                                  time.Duration
		podDefaults                                   string
		watchNamespaces                               string
		kubeAPIQPS                                    float64
		kubeAPIBurst, maxConcurrentReconciles         int
	)
	flag.StringVar(&redisURL, "redis-url", os.Getenv("REDIS_URL"), "Redis for Chains that name none (env REDIS_URL)")
	flag.StringVar(&workerImage, "worker-image", envOr("WORKER_IMAGE", "ghcr.io/vcon-operator/vcon-operator:"+version.Version), "image the worker Deployments run (env WORKER_IMAGE)")
	flag.StringVar(&allowedImages, "allowed-worker-image-prefixes", "", "comma-separated registry or repository prefixes a Chain's workers.image may name, matched on path boundaries (registry.example.com, ghcr.io/acme/worker); empty: Chains always run --worker-image")
	flag.StringVar(&allowedRedis, "allowed-redis-hosts", "", "comma-separated host or host:port patterns (*.example.com allowed) a Chain's own Redis URL may name; empty: any. The --redis-url default is always allowed")
	flag.DurationVar(&pollInterval, "queue-poll-interval", 2*time.Second, "how often every Chain's queues are measured")
	flag.DurationVar(&queuedRetention, "queued-retention", apiwire.EnvSeconds("VCON_QUEUED_RETENTION", apiwire.DefaultQueuedRetention), "least TTL of a queued vCon body, set on worker pods and exported as vcon_queue_body_ttl_seconds for QueueBacklogNearExpiry (env VCON_QUEUED_RETENTION, seconds)")
	flag.StringVar(&podDefaults, "worker-pod-defaults", os.Getenv("WORKER_POD_DEFAULTS"), `placement of the worker pods of Chains that set none, as JSON: {"nodeSelector":{...},"tolerations":[...],"affinity":{...},"topologySpreadConstraints":[...],"priorityClassName":"...","imagePullSecrets":[{"name":"..."}]}; each field applies where a Chain's spec.workers leaves it empty (env WORKER_POD_DEFAULTS)`)
	flag.StringVar(&metricsAddr, "metrics-bind-address", ":8080", "address of /metrics (0 disables)")
	flag.StringVar(&probeAddr, "health-probe-bind-address", ":8081", "address of /healthz and /readyz")
	flag.BoolVar(&leaderElect, "leader-elect", true, "elect a leader so that only one replica reconciles and measures")
	flag.DurationVar(&crdCheckWait, "crd-check-wait", time.Minute, "how long to wait for the API server to publish CRDs as new as this operator before refusing to start")
	flag.StringVar(&leaderElectionNamespace, "leader-election-namespace", "", "namespace of the leader-election Lease (default: the pod's)")
	flag.StringVar(&watchNamespaces, "watch-namespaces", "", "comma-separated namespaces whose Chains, Links and Storages the operator reconciles; it then needs a Role in each (and in its own, for leader election) and no ClusterRole. Empty: every namespace")
	flag.Float64Var(&kubeAPIQPS, "kube-api-qps", controllers.DefaultKubeAPIQPS, "sustained requests per second to the Kubernetes API server, per resource type (controller-runtime keeps one client, and so one limit, per kind); the API server's priority and fairness applies on top")
	flag.IntVar(&kubeAPIBurst, "kube-api-burst", controllers.DefaultKubeAPIBurst, "requests to the Kubernetes API server allowed above --kube-api-qps in a burst, per resource type")
	flag.IntVar(&maxConcurrentReconciles, "max-concurrent-reconciles", controllers.DefaultMaxConcurrentReconciles, "Chains (and Links, Storages) reconciled at the same time, per controller; one object is never reconciled twice at once")
	opts := zap.Options{Development: false, TimeEncoder: zapcore.ISO8601TimeEncoder}
	opts.BindFlags(flag.CommandLine)
	flag.Parse()
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")

	// The default URL is written for this pod's namespace ("redis" is the
	// Service next to the operator) but handed to workers in every Chain's
	// namespace: qualify a bare Service name so it means the same there.
	if ns := podNamespace(); ns != "" {
		if q := redisconn.Qualify(redisURL, ns); q != redisURL {
			log.Info("qualified the default Redis host for workers in other namespaces", "namespace", ns)
			redisURL = q
		}
	}

	workerPodDefaults, err := workload.ParsePodDefaults(podDefaults)
	if err != nil {
		fmt.Fprintf(os.Stderr, "--worker-pod-defaults: %v\n", err)
		os.Exit(2)
	}
	if pollInterval < 100*time.Millisecond {
		fmt.Fprintln(os.Stderr, "--queue-poll-interval must be at least 100ms")
		os.Exit(2)
	}
	cacheOptions, err := controllers.CacheOptions(splitList(watchNamespaces))
	if err != nil {
		fmt.Fprintf(os.Stderr, "--watch-namespaces: %v\n", err)
		os.Exit(2)
	}
	if kubeAPIQPS <= 0 || kubeAPIBurst < 1 || maxConcurrentReconciles < 1 {
		fmt.Fprintln(os.Stderr, "--kube-api-qps, --kube-api-burst and --max-concurrent-reconciles must be positive")
		os.Exit(2)
	}
	restConfig := ctrl.GetConfigOrDie()
	restConfig.QPS, restConfig.Burst = float32(kubeAPIQPS), kubeAPIBurst

	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(vconv1.AddToScheme(scheme))

	// Older CRDs would silently prune the fields this operator reads:
	// refuse to start on them, naming the fix (internal/crdcheck).
	crdCtx, cancelCRDCheck := context.WithTimeout(context.Background(), crdCheckWait+10*time.Second)
	err = crdcheck.Check(crdCtx, discovery.NewDiscoveryClientForConfigOrDie(restConfig).OpenAPIV3(), crdCheckWait)
	cancelCRDCheck()
	if err != nil {
		log.Error(err, "refusing to start")
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}

	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme:                        scheme,
		Metrics:                       metricsserver.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress:        probeAddr,
		LeaderElection:                leaderElect,
		LeaderElectionID:              "vcon-operator.vcon.dev",
		LeaderElectionNamespace:       leaderElectionNamespace,
		LeaderElectionReleaseOnCancel: true,
		Cache:                         cacheOptions,
		Controller:                    config.Controller{MaxConcurrentReconciles: maxConcurrentReconciles},
	})
	if err != nil {
		log.Error(err, "cannot create the manager")
		os.Exit(1)
	}

	obs := observer.New(pollInterval, ctrl.Log.WithName("observer"))
	// A backlog's bodies stay alive whoever wrote them (docs/migrating-from-conserver.md).
	obs.KeepBodies = queuedRetention
	if err := mgr.Add(obs); err != nil {
		log.Error(err, "cannot add the queue observer")
		os.Exit(1)
	}
	crmetrics.Registry.MustRegister(&observer.Collector{Reader: mgr.GetCache(), Observer: obs, BodyTTL: queuedRetention})

	chains := &controllers.ChainReconciler{
		Client:          mgr.GetClient(),
		APIReader:       mgr.GetAPIReader(),
		Recorder:        mgr.GetEventRecorderFor("vcon-operator"), //nolint:staticcheck // the events/v1 recorder needs a newer API server than some users run
		Observer:        obs,
		DefaultRedisURL: redisURL,
		WorkerImage:     workerImage,
		QueuedRetention: queuedRetention,
		PollInterval:    pollInterval,
		PodDefaults:     workerPodDefaults,

		AllowedWorkerImagePrefixes: splitList(allowedImages),
		AllowedRedisHosts:          splitList(allowedRedis),
	}
	if err := chains.SetupWithManager(mgr); err != nil {
		log.Error(err, "cannot set up the Chain controller")
		os.Exit(1)
	}
	if err := (&controllers.StepReconciler{Client: mgr.GetClient()}).SetupWithManager(mgr); err != nil {
		log.Error(err, "cannot set up the Link and Storage controllers")
		os.Exit(1)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		os.Exit(1)
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		os.Exit(1)
	}

	log.Info("starting vcon-operator", "version", version.Version, "commit", version.GitCommit, "pollInterval", pollInterval.String(),
		"watchNamespaces", watchNamespaces, "kubeAPIQPS", kubeAPIQPS, "kubeAPIBurst", kubeAPIBurst, "maxConcurrentReconciles", maxConcurrentReconciles)
	if err := mgr.Start(ctrl.SetupSignalHandler()); err != nil {
		log.Error(err, "manager stopped with an error")
		os.Exit(1)
	}
}

// splitList reads a comma-separated flag; blanks and empty items are dropped.
func splitList(s string) []string {
	var out []string
	for _, item := range strings.Split(s, ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

// podNamespace is the operator's namespace: POD_NAMESPACE (the chart sets
// it from the downward API), else the service-account mount's.
func podNamespace() string {
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	b, err := os.ReadFile("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
