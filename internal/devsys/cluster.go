package devsys

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/vcon-operator/vcon-operator/internal/testenv"
)

// ClusterLock is the machine-wide lock of the real single-node cluster:
// its network namespace, veth and addresses are fixed names, so one user
// (make dev, the end-to-end test, a cluster test) at a time holds it for as
// long as the cluster runs.
const ClusterLock = "/tmp/vcon-cluster.lock"

// Node is what hack/cluster/lib.sh says about the cluster it brings up,
// read from the script so the two never disagree.
type Node struct {
	Dir        string // .cluster
	NetNS      string // the node's network namespace
	IP         string // the node's address: managed services listen here
	Kubeconfig string // admin kubeconfig
	CtrSocket  string // containerd's socket
}

func readNode(root string) (Node, error) {
	cmd := exec.Command("bash", "-c",
		`. hack/cluster/lib.sh && printf '%s\n' "$CLUSTER_DIR" "$NETNS" "$NODE_IP" "$KUBECONFIG_ADMIN" "$CTR_SOCK"`)
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return Node{}, fmt.Errorf("read hack/cluster/lib.sh: %w", err)
	}
	f := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(f) != 5 {
		return Node{}, fmt.Errorf("hack/cluster/lib.sh printed %q", out)
	}
	return Node{Dir: f[0], NetNS: f[1], IP: f[2], Kubeconfig: f[3], CtrSocket: f[4]}, nil
}

// lockCluster takes ClusterLock, waiting (and saying so) while another
// run holds it. The lock lives as long as the returned file is open.
func (s *System) lockCluster(ctx context.Context) error {
	f, err := os.OpenFile(ClusterLock, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	for i := 0; ; i++ {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			s.clusterLock = f
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return fmt.Errorf("lock %s: %w", ClusterLock, err)
		}
		if i%30 == 0 {
			s.log.Info("waiting for the cluster: another make dev, e2e or cluster test holds " + ClusterLock)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// startCluster brings the real single-node cluster up (hack/cluster/up.sh,
// which first removes whatever a crashed run left) and connects to it.
func (s *System) startCluster(ctx context.Context) error {
	if runtime.GOOS != "linux" || os.Geteuid() != 0 {
		return errors.New("the real cluster needs root on Linux (network namespaces, mounts, cgroups): run sudo make dev / sudo make e2e")
	}
	if err := s.lockCluster(ctx); err != nil {
		return err
	}
	node, err := readNode(s.opts.Root)
	if err != nil {
		return err
	}
	s.Node = node
	if err := s.script(ctx, "cluster-up", "hack/cluster/up.sh"); err != nil {
		return err
	}
	s.clusterUp = true
	s.KubeconfigPath = node.Kubeconfig
	cfg, err := clientcmd.BuildConfigFromFlags("", node.Kubeconfig)
	if err != nil {
		return err
	}
	cfg.QPS, cfg.Burst = 50, 100
	s.Config = cfg
	if s.Kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return err
	}
	// controller-runtime's client logs through its global logger: ours.
	ctrllog.SetLogger(s.log.WithName("client"))
	s.Client, err = client.New(cfg, client.Options{Scheme: testenv.Scheme()})
	return err
}

// stopCluster tears the cluster down (hack/cluster/down.sh leaves nothing)
// and releases the lock.
func (s *System) stopCluster() {
	if s.clusterUp {
		if err := s.script(context.Background(), "cluster-down", "hack/cluster/down.sh"); err != nil {
			s.log.Error(err, "tear the cluster down")
		}
		s.clusterUp = false
	}
	if s.clusterLock != nil {
		s.clusterLock.Close()
		s.clusterLock = nil
	}
}

// script runs a repository script, its output in logs/NAME.log.
func (s *System) script(ctx context.Context, name string, path string, args ...string) error {
	return s.runLogged(name, exec.CommandContext(ctx, filepath.Join(s.opts.Root, path), args...))
}

// runLogged runs cmd in the repository with its output in logs/NAME.log;
// a failure quotes the log's tail.
func (s *System) runLogged(name string, cmd *exec.Cmd) error {
	logPath := s.logPath(name)
	if err := os.MkdirAll(filepath.Dir(logPath), 0o755); err != nil {
		return err
	}
	f, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer f.Close()
	cmd.Dir = s.opts.Root
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s: %v; log %s:\n%s", strings.Join(cmd.Args, " "), err, logPath, logTail(logPath, 20))
	}
	return nil
}

// ProjectImage is make image's docker archive for this machine's
// architecture (the newest, when several versions were built) and the
// reference it is tagged with.
func ProjectImage(root string) (file, ref string, err error) {
	files, _ := filepath.Glob(filepath.Join(root, "bin/image/vcon-operator-*-linux-"+runtime.GOARCH+".docker.tar"))
	if len(files) == 0 {
		return "", "", errors.New("no bin/image/vcon-operator-*.docker.tar: run make image")
	}
	newest, newestTime := "", time.Time{}
	for _, f := range files {
		if st, err := os.Stat(f); err == nil && st.ModTime().After(newestTime) {
			newest, newestTime = f, st.ModTime()
		}
	}
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(newest) })
	if err != nil || len(m) == 0 || len(m[0].RepoTags) == 0 {
		return "", "", fmt.Errorf("read %s: %v", newest, err)
	}
	return newest, m[0].RepoTags[0], nil
}

// buildImage runs make image for this machine's architecture only (the
// other platform would double the build for nothing here).
func (s *System) buildImage(ctx context.Context) error {
	build := exec.CommandContext(ctx, "make", "--no-print-directory", "image", "IMAGE_PLATFORMS=linux/"+runtime.GOARCH)
	if err := s.runLogged("image", build); err != nil {
		return err
	}
	var err error
	s.imageFile, s.Image, err = ProjectImage(s.opts.Root)
	return err
}

// ImportImage loads a docker archive into the node's containerd.
func (s *System) ImportImage(ctx context.Context, file string) error {
	out, err := exec.CommandContext(ctx, "ctr", "-a", s.Node.CtrSocket, "-n", "k8s.io", "images", "import", file).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr images import %s: %v\n%s", file, err, out)
	}
	return nil
}

// KillContainer kills a pod's container at the runtime (SIGKILL through
// containerd), behind the kubelet's back: the kubelet sees it die and
// restarts it. containerID is the pod status's "containerd://<id>".
func (s *System) KillContainer(ctx context.Context, containerID string) error {
	id, ok := strings.CutPrefix(containerID, "containerd://")
	if !ok {
		return fmt.Errorf("container id %q is not a containerd one", containerID)
	}
	out, err := exec.CommandContext(ctx, "ctr", "-a", s.Node.CtrSocket, "-n", "k8s.io", "tasks", "kill", "-s", "SIGKILL", id).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ctr tasks kill %s: %v\n%s", id, err, out)
	}
	return nil
}
