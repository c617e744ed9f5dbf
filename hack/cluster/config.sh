#!/usr/bin/env bash
# config.sh DIR: the configuration files of containerd, the CNI bridge,
# kubelet, kube-proxy and CoreDNS, written under DIR (the cluster's
# directory). Each setting that differs from a stock node says why.
set -euo pipefail
CLUSTER_DIR=${1:?usage: config.sh DIR}
. "$(dirname "$0")/lib.sh"
mkdir -p "$CLUSTER_DIR"/{etc,cni/net.d,cni/ipam,run,pod-logs}

# containerd with its own root, state and socket, so it never meets a
# containerd the machine may run. runc's state goes under it too.
cat >"$CLUSTER_DIR/etc/containerd.toml" <<TOML
version = 2
root = "$CLUSTER_DIR/containerd/root"
state = "$CLUSTER_DIR/containerd/state"
[grpc]
  address = "$CTR_SOCK"
[ttrpc]
  address = "$CTR_SOCK.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # CAP_SYS_RESOURCE is missing on these machines: no process may set a
  # negative oom_score_adj, so clamp what kubelet asks for.
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # cgroup v1 and no systemd: kubelet's cgroupDriver is cgroupfs too.
        SystemdCgroup = false
        Root = "$CLUSTER_DIR/run/runc"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$CLUSTER_DIR/cni/net.d"
TOML

# One bridge on the node; host-local keeps its leases under the cluster's
# directory, wiped on every bring-up (pods are never CNI-deleted).
cat >"$CLUSTER_DIR/cni/net.d/10-vcon-bridge.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "vcon",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "cni0",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$CLUSTER_DIR/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
JSON

# Pods resolve through CoreDNS only: no upstream nameserver to leak to.
: >"$CLUSTER_DIR/etc/resolv.conf"

cat >"$CLUSTER_DIR/etc/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# These machines are cgroup v1; since 1.35 kubelet refuses v1 unless told.
failCgroupV1: false
cgroupDriver: cgroupfs
containerRuntimeEndpoint: unix://$CTR_SOCK
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
clusterDomain: cluster.local
clusterDNS: [$NODE_IP]
resolvConf: $CLUSTER_DIR/etc/resolv.conf
podLogsDir: $CLUSTER_DIR/pod-logs
failSwapOn: false
# A shared build machine's disk is often fuller than the stock 10-15%
# thresholds; evicting test pods for it would only confuse.
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
# How often kubelet resyncs a running pod, and so how late an updated
# Secret or ConfigMap reaches its volume: the default 1m made the
# Prometheus Operator's config (a Secret the reloader watches) take up to
# 83 s to apply (internal/devsys/promop). A handful of test pods cost little.
syncFrequency: 5s
YAML

cat >"$CLUSTER_DIR/etc/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: {kubeconfig: $CLUSTER_DIR/etc/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
clusterCIDR: $CLUSTER_CIDR
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
# Zero: leave the machine's global conntrack sysctls alone.
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML

# CoreDNS as a node process: cluster names only, no forward, so a name
# outside the cluster gets NXDOMAIN instead of leaving the machine.
cat >"$CLUSTER_DIR/etc/Corefile" <<COREFILE
.:53 {
    bind $NODE_IP
    errors
    kubernetes cluster.local in-addr.arpa ip6.arpa {
        kubeconfig $CLUSTER_DIR/etc/coredns.kubeconfig vcon
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }
    cache 30
}
COREFILE
