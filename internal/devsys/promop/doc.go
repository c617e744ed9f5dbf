// Package promop installs a real Prometheus Operator and one Prometheus on
// the real single-node cluster (hack/cluster, docs/cluster.md), so tests
// and the dev system can check that the chart's ServiceMonitors,
// PodMonitors and PrometheusRules are picked up. It is test and dev
// infrastructure, not product code.
//
// Everything comes from hack/tools.sh prometheus prometheus-operator:
// the binaries become one-binary images (ImportImages, nothing is ever
// pulled) and the CRDs and the operator's ClusterRole are the ones the
// operator's module ships. Install creates, in namespace monitoring: the
// CRDs, the operator (ServiceAccount, upstream ClusterRole and binding,
// hardened Deployment), Prometheus's ServiceAccount, ClusterRole and
// binding, a Prometheus resource selecting every ServiceMonitor,
// PodMonitor and PrometheusRule in every namespace, and a ClusterIP
// Service the host reaches it by.
//
//	cfg, _ := clientcmd.BuildConfigFromFlags("", ".cluster/kubeconfig")
//	if _, err := promop.ImportImages(ctx, "bin", ".cluster/run/containerd.sock"); err != nil {
//		return err
//	}
//	prom, err := promop.Install(ctx, cfg, promop.Options{
//		BinDir:         "bin",
//		ScrapeInterval: time.Second, EvaluationInterval: time.Second,
//		Logf:           log.Printf, // optional: one line per step
//	})
//	if err != nil {
//		return err
//	}
//	// prom.URL is http://<ClusterIP>:9090; query prom.URL+"/api/v1/query?query=up"
package promop
