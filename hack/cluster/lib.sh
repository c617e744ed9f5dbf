# lib.sh: names and helpers shared by up.sh and down.sh (sourced, not run).
#
# Everything the cluster owns lives under CLUSTER_DIR (the repo's .cluster/,
# gitignored), except what the kernel or kubelet keep in fixed places: the
# node's network namespace and veth, the pods' cni-* namespaces, the
# kubepods cgroups, three sysctls and /var/lib/kubelet, /var/log/containers,
# /var/log/pods. down.sh removes each of those; see docs/cluster.md.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BIN="$ROOT/bin"
CLUSTER_DIR="${CLUSTER_DIR:-$ROOT/.cluster}"
# down.sh removes this directory whole: refuse anything that is not a
# dedicated absolute directory.
case $CLUSTER_DIR in
  /*/*) ;;
  *) printf 'cluster: error: CLUSTER_DIR=%s must be an absolute path at least two deep\n' "$CLUSTER_DIR" >&2; exit 1 ;;
esac

NETNS=vcon-node               # the node's network namespace
VETH_HOST=vcon-host0          # host end of the veth
VETH_NODE=vcon-node0          # node end, inside $NETNS
HOST_IP=10.99.0.1
NODE_IP=10.99.0.2
NODE_NAME=vcon-node
SERVICE_CIDR=10.96.0.0/16
SERVICE_IP=10.96.0.1          # the kubernetes Service, in the serving cert
POD_CIDR=10.244.0.0/24        # the node's pod range (host-local IPAM)
CLUSTER_CIDR=10.244.0.0/16
PAUSE_IMAGE=localhost/vcon-operator/pause:1

CTR_SOCK="$CLUSTER_DIR/run/containerd.sock"
PKI="$CLUSTER_DIR/pki"
KUBECONFIG_ADMIN="$CLUSTER_DIR/kubeconfig"
HOST_STATE="$CLUSTER_DIR/host-state"   # sysctls and host paths as found at bring-up

# The sysctls kubelet rewrites (its "protect kernel defaults" values).
SYSCTLS=(vm.overcommit_memory kernel.panic kernel.panic_on_oops)
# Fixed host paths kubelet writes whatever its --root-dir.
HOST_PATHS=(/var/lib/kubelet /var/log/containers /var/log/pods)

# Stop order: the node agents first so nothing restarts pods, containerd and
# the apiserver next, etcd last (the apiserver needs it to stop cleanly).
COMPONENTS=(coredns kubelet kube-proxy kube-scheduler kube-controller-manager containerd kube-apiserver etcd)

log() { printf 'cluster: %s\n' "$*" >&2; }
die() { printf 'cluster: error: %s\n' "$*" >&2; exit 1; }

in_node() { nsenter --net="/run/netns/$NETNS" -- "$@"; }

# preflight checks what the scripts need and names the fix for each gap.
preflight() {
  [ "$(uname -s)" = Linux ] || die "needs Linux (network namespaces, cgroups); this is $(uname -s)"
  [ "$(id -u)" = 0 ] || die "needs root (netns, mounts, cgroups): run sudo make cluster"
  local missing=() b
  for b in etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy coredns; do
    [ -x "$BIN/$b" ] || missing+=("$b")
  done
  [ ${#missing[@]} -eq 0 ] || die "missing in bin/: ${missing[*]}: run make tools-cluster"
  missing=()
  for b in containerd containerd-shim-runc-v2 runc ctr nsenter ip iptables conntrack openssl curl; do
    command -v "$b" >/dev/null || missing+=("$b")
  done
  [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] || missing+=("CNI plugins")
  [ ${#missing[@]} -eq 0 ] || die "missing ${missing[*]}: run apt-get install -y containerd runc containernetworking-plugins iptables conntrack openssl curl"
  command -v go >/dev/null || die "missing go (the pause image is built from hack/cluster/pause)"
}
