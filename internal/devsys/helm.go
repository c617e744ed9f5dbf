package devsys

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
)

// The chart's object names for ReleaseName (its full name is the release
// name, which contains the chart's).
const (
	OperatorDeployment = ReleaseName
	APIDeployment      = ReleaseName + "-api"
	APIService         = ReleaseName + "-api"
	apiTokenSecret     = ReleaseName + "-api-token"
)

// chartValues are the --set values of the dev install: the image on the
// node (never pulled), the monitors at the scrape interval, the alert `for`
// overrides, then the caller's own.
func (s *System) chartValues() []string {
	repo, tag := splitImage(s.Image)
	v := []string{
		"image.repository=" + repo,
		"image.tag=" + tag,
		"image.pullPolicy=Never",
		"operator.queuePollInterval=" + s.opts.QueuePollInterval.String(),
	}
	if s.opts.Prometheus {
		iv := s.opts.ScrapeInterval.String()
		for _, m := range []string{"serviceMonitor.operator", "serviceMonitor.api", "podMonitor"} {
			v = append(v, "monitoring."+m+".enabled=true", "monitoring."+m+".interval="+iv, "monitoring."+m+".scrapeTimeout="+iv)
		}
		v = append(v, "monitoring.prometheusRule.enabled=true")
		names := make([]string, 0, len(s.opts.AlertFor))
		for n := range s.opts.AlertFor {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			v = append(v, "monitoring.prometheusRule.alertFor."+n+"="+s.opts.AlertFor[n])
		}
	}
	return append(v, s.opts.HelmSet...)
}

func splitImage(ref string) (repo, tag string) {
	i := strings.LastIndex(ref, ":")
	if i < 0 || strings.Contains(ref[i:], "/") {
		return ref, ""
	}
	return ref[:i], ref[i+1:]
}

// installChart is `helm install` of charts/vcon-operator, waiting for the
// operator and the API to be Ready; then it reads the API's address and
// token the way a user would (the Service, the chart's Secret).
func (s *System) installChart(ctx context.Context) error {
	if err := s.ensureNamespace(ctx, ReleaseNamespace); err != nil {
		return err
	}
	args := []string{"upgrade", "--install", ReleaseName, "charts/vcon-operator",
		"--kubeconfig", s.KubeconfigPath, "--namespace", ReleaseNamespace,
		"--wait", "--timeout", "4m"}
	for _, v := range s.chartValues() {
		args = append(args, "--set", v)
	}
	if err := s.helm(ctx, "helm-install", args...); err != nil {
		return err
	}
	svc, err := s.Kube.CoreV1().Services(ReleaseNamespace).Get(ctx, APIService, metav1.GetOptions{})
	if err != nil {
		return err
	}
	s.APIURL = fmt.Sprintf("http://%s:%d", svc.Spec.ClusterIP, svc.Spec.Ports[0].Port)
	sec, err := s.Kube.CoreV1().Secrets(ReleaseNamespace).Get(ctx, apiTokenSecret, metav1.GetOptions{})
	if err != nil {
		return err
	}
	s.APIToken = string(sec.Data["token"])
	s.APITokenPath = s.statePath("api-token")
	if err := writeFileAtomic(s.APITokenPath, []byte(s.APIToken+"\n"), 0o600); err != nil {
		return err
	}
	// kube-proxy programs the Service a moment after the endpoints exist.
	return waitHTTP(ctx, nil, s.APIURL+"/api/health", time.Minute)
}

func (s *System) statePath(name string) string { return filepath.Join(s.opts.StateDir, name) }

// helm runs bin/helm, its output in logs/NAME.log.
func (s *System) helm(ctx context.Context, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, s.bin("helm"), args...)
	cmd.Env = append(baseEnv(), "HELM_CACHE_HOME="+s.statePath("helm/cache"), "HELM_CONFIG_HOME="+s.statePath("helm/config"), "HELM_DATA_HOME="+s.statePath("helm/data"))
	return s.runLogged(name, cmd)
}

// RestartOperator deletes the operator's pod (as `kubectl delete pod`
// does, with its grace period) and waits for the Deployment's new pod to be
// Ready.
func (s *System) RestartOperator(ctx context.Context) error {
	sel := "app.kubernetes.io/instance=" + ReleaseName + ",app.kubernetes.io/component=operator"
	pods, err := s.Kube.CoreV1().Pods(ReleaseNamespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return err
	}
	if len(pods.Items) == 0 {
		return fmt.Errorf("no operator pod (%s)", sel)
	}
	old := map[string]bool{}
	for _, p := range pods.Items {
		old[p.Name] = true
		if err := s.Kube.CoreV1().Pods(ReleaseNamespace).Delete(ctx, p.Name, metav1.DeleteOptions{}); err != nil {
			return err
		}
	}
	return wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		pods, err := s.Kube.CoreV1().Pods(ReleaseNamespace).List(ctx, metav1.ListOptions{LabelSelector: sel})
		if err != nil {
			return false, nil
		}
		for _, p := range pods.Items {
			if !old[p.Name] && p.DeletionTimestamp == nil && podReady(&p) {
				return true, nil
			}
		}
		return false, nil
	})
}

// ScaleAPI sets the API Deployment's replicas and waits until that many
// pods are Ready (and, for 0, gone).
func (s *System) ScaleAPI(ctx context.Context, replicas int32) error {
	deps := s.Kube.AppsV1().Deployments(ReleaseNamespace)
	sc, err := deps.GetScale(ctx, APIDeployment, metav1.GetOptions{})
	if err != nil {
		return err
	}
	sc.Spec.Replicas = replicas
	if _, err := deps.UpdateScale(ctx, APIDeployment, sc, metav1.UpdateOptions{}); err != nil {
		return err
	}
	return wait.PollUntilContextTimeout(ctx, 250*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
		d, err := deps.Get(ctx, APIDeployment, metav1.GetOptions{})
		if err != nil {
			return false, nil
		}
		return d.Status.ObservedGeneration == d.Generation && d.Status.ReadyReplicas == replicas && d.Status.Replicas == replicas, nil
	})
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
