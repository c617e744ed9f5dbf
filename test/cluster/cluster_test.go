//go:build cluster

// Package cluster tests make cluster / make cluster-down on this machine:
// a real single-node Kubernetes comes up, runs the project's image as a
// hardened pod and a Deployment behind a ClusterIP Service the host can
// reach, and is torn down leaving nothing. Needs root and Linux; run it
// with make cluster-test (it replaces a cluster make cluster brought up).
package cluster

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"

	"github.com/vcon-operator/vcon-operator/internal/devsys"
)

const (
	echoImage = "localhost/vcon-operator/httpecho:1"
	ns        = "default"
)

var sysctls = []string{"vm.overcommit_memory", "kernel.panic", "kernel.panic_on_oops"}

func TestClusterUpPodServiceDown(t *testing.T) {
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		t.Fatal("needs root on Linux (network namespaces, mounts, cgroups): run sudo make cluster-test on a Linux machine")
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, ".cluster")
	sock := filepath.Join(dir, "run", "containerd.sock")
	projectImage := findProjectImage(t, root)
	before := readSysctls(t)
	shimSockets := listDir("/run/containerd/s")

	start := time.Now()
	out := sh(t, root, "hack/cluster/up.sh")
	t.Logf("bring-up %.1f s", time.Since(start).Seconds())
	down := func() { _ = exec.Command(filepath.Join(root, "hack/cluster/down.sh")).Run() }
	t.Cleanup(down) // a failing test must not leave a node running
	if !strings.Contains(out, "export KUBECONFIG="+filepath.Join(dir, "kubeconfig")) {
		t.Errorf("up.sh did not print the export line; printed:\n%s", out)
	}

	cfg, err := clientcmd.BuildConfigFromFlags("", filepath.Join(dir, "kubeconfig"))
	if err != nil {
		t.Fatal(err)
	}
	kube := kubernetes.NewForConfigOrDie(cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Nothing is pulled on this node: both images are imported.
	echoTar := filepath.Join(t.TempDir(), "httpecho.tar")
	sh(t, root, "go", "run", "./hack/cluster/binimage", "-pkg", "./test/cluster/httpecho", "-tag", echoImage, "-out", echoTar)
	for _, tar := range []string{projectImage.file, echoTar} {
		sh(t, root, "ctr", "-n", "k8s.io", "-a", sock, "images", "import", tar)
	}

	t.Run("hardened pod of the project's image", func(t *testing.T) {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "kubectl-vcon-help"},
			Spec: corev1.PodSpec{
				RestartPolicy:   corev1.RestartPolicyNever,
				SecurityContext: hardenedPod(),
				Containers: []corev1.Container{{
					Name: "help", Image: projectImage.ref, ImagePullPolicy: corev1.PullNever,
					Command: []string{"/kubectl-vcon", "--help"}, SecurityContext: hardenedContainer(),
				}},
			},
		}
		if _, err := kube.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		var phase corev1.PodPhase
		err := wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			p, err := kube.CoreV1().Pods(ns).Get(ctx, pod.Name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			phase = p.Status.Phase
			return phase == corev1.PodSucceeded || phase == corev1.PodFailed, nil
		})
		if err != nil || phase != corev1.PodSucceeded {
			t.Fatalf("pod phase %q (%v); want Succeeded", phase, err)
		}
		logs, err := kube.CoreV1().Pods(ns).GetLogs(pod.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(logs, []byte("kubectl vcon")) {
			t.Errorf("logs do not look like kubectl-vcon --help:\n%s", logs)
		}
	})

	t.Run("deployment behind a ClusterIP service, from the host", func(t *testing.T) {
		labels := map[string]string{"app": "httpecho"}
		dep := &appsv1.Deployment{
			ObjectMeta: metav1.ObjectMeta{Name: "httpecho"},
			Spec: appsv1.DeploymentSpec{
				Replicas: ptr.To[int32](2),
				Selector: &metav1.LabelSelector{MatchLabels: labels},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels},
					Spec: corev1.PodSpec{
						SecurityContext: hardenedPod(),
						Containers: []corev1.Container{{
							Name: "httpecho", Image: echoImage, ImagePullPolicy: corev1.PullNever,
							Ports:           []corev1.ContainerPort{{ContainerPort: 8080}},
							SecurityContext: hardenedContainer(),
							ReadinessProbe: &corev1.Probe{
								ProbeHandler:  corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(8080)}},
								PeriodSeconds: 1,
							},
						}},
					},
				},
			},
		}
		if _, err := kube.AppsV1().Deployments(ns).Create(ctx, dep, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		svc, err := kube.CoreV1().Services(ns).Create(ctx, &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: "httpecho"},
			Spec: corev1.ServiceSpec{
				Selector: labels,
				Ports:    []corev1.ServicePort{{Port: 80, TargetPort: intstr.FromInt32(8080)}},
			},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 2*time.Minute, true, func(ctx context.Context) (bool, error) {
			d, err := kube.AppsV1().Deployments(ns).Get(ctx, dep.Name, metav1.GetOptions{})
			return err == nil && d.Status.ReadyReplicas == 2, err
		})
		if err != nil {
			t.Fatalf("deployment not ready: %v\n%s", err, podDiagnosis(ctx, kube, ns))
		}
		// kube-proxy programs the Service asynchronously: retry until it answers.
		url := fmt.Sprintf("http://%s/", svc.Spec.ClusterIP)
		var body string
		client := &http.Client{Timeout: 2 * time.Second}
		err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, time.Minute, true, func(ctx context.Context) (bool, error) {
			resp, err := client.Get(url)
			if err != nil {
				return false, nil
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			body = string(b)
			return resp.StatusCode == http.StatusOK, nil
		})
		if err != nil || !strings.HasPrefix(body, "httpecho httpecho-") {
			t.Fatalf("GET %s: %v, body %q", url, err, body)
		}
	})

	start = time.Now()
	sh(t, root, "hack/cluster/down.sh")
	t.Logf("teardown %.1f s", time.Since(start).Seconds())
	checkNothingLeft(t, dir, before)
	for _, s := range listDir("/run/containerd/s") {
		if !slices.Contains(shimSockets, s) {
			t.Errorf("shim socket left: /run/containerd/s/%s", s)
		}
	}
}

func listDir(dir string) []string {
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func hardenedPod() *corev1.PodSecurityContext {
	return &corev1.PodSecurityContext{
		RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To[int64](65532), RunAsGroup: ptr.To[int64](65532),
		SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

func hardenedContainer() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
	}
}

type imageFile struct{ file, ref string }

// findProjectImage is make image's docker archive for this machine.
func findProjectImage(t *testing.T, root string) imageFile {
	t.Helper()
	file, ref, err := devsys.ProjectImage(root)
	if err != nil {
		t.Fatalf("%v (make cluster-test does)", err)
	}
	return imageFile{file: file, ref: ref}
}

// checkNothingLeft looks for everything the cluster makes outside its
// directory, and for the directory itself.
func checkNothingLeft(t *testing.T, dir string, sysctlsBefore map[string]string) {
	t.Helper()
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s is still there", dir)
	}
	netns, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(netns), "\n") {
		if strings.HasPrefix(line, "vcon-node") || strings.HasPrefix(line, "cni-") {
			t.Errorf("network namespace left: %s", line)
		}
	}
	if exec.Command("ip", "link", "show", "vcon-host0").Run() == nil {
		t.Error("veth vcon-host0 left")
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mounts), "\n") {
		if strings.Contains(line, dir) || strings.Contains(line, "/run/netns/vcon-node") {
			t.Errorf("mount left: %s", line)
		}
	}
	if cg, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods"); len(cg) > 0 {
		t.Errorf("cgroups left: %v", cg)
	}
	for _, p := range []string{"/var/lib/kubelet", "/var/log/containers", "/var/log/pods"} {
		if _, err := os.Stat(p); err == nil {
			t.Errorf("host path left: %s", p)
		}
	}
	// Every component's command line names a file under dir (containerd's
	// shims their socket); container processes would keep a kubepods
	// cgroup alive, checked above.
	cmdlines, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range cmdlines {
		cmdline, err := os.ReadFile(f)
		if err == nil && bytes.Contains(cmdline, []byte(dir+"/")) {
			t.Errorf("process left: %s %s", f, bytes.ReplaceAll(cmdline, []byte{0}, []byte{' '}))
		}
	}
	if after := readSysctls(t); fmt.Sprint(after) != fmt.Sprint(sysctlsBefore) {
		t.Errorf("sysctls %v after teardown, %v before", after, sysctlsBefore)
	}
}

func readSysctls(t *testing.T) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, s := range sysctls {
		b, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(s, ".", "/"))
		if err != nil {
			t.Fatal(err)
		}
		m[s] = strings.TrimSpace(string(b))
	}
	return m
}

// sh runs a command in dir and returns its stdout; a failure shows stderr.
func sh(t *testing.T, dir string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// podDiagnosis says what the pods of ns are waiting for, and the namespace's
// latest events, for a failure message: the cluster and its logs are gone
// once the test tears it down.
func podDiagnosis(ctx context.Context, kube kubernetes.Interface, ns string) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var b strings.Builder
	pods, err := kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return "list pods: " + err.Error()
	}
	for _, p := range pods.Items {
		fmt.Fprintf(&b, "pod %s: phase %s node %q\n", p.Name, p.Status.Phase, p.Spec.NodeName)
		for _, c := range p.Status.Conditions {
			fmt.Fprintf(&b, "  condition %s=%s %s %s\n", c.Type, c.Status, c.Reason, c.Message)
		}
		for _, cs := range p.Status.ContainerStatuses {
			fmt.Fprintf(&b, "  container %s ready=%v restarts=%d", cs.Name, cs.Ready, cs.RestartCount)
			if w := cs.State.Waiting; w != nil {
				fmt.Fprintf(&b, " waiting %s: %s", w.Reason, w.Message)
			}
			if te := cs.State.Terminated; te != nil {
				fmt.Fprintf(&b, " terminated %s (exit %d): %s", te.Reason, te.ExitCode, te.Message)
			}
			b.WriteString("\n")
		}
	}
	events, err := kube.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err == nil {
		for _, e := range events.Items {
			fmt.Fprintf(&b, "event %s %s/%s: %s %s\n", e.Type, e.InvolvedObject.Kind, e.InvolvedObject.Name, e.Reason, e.Message)
		}
	}
	return b.String()
}
