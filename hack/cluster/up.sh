#!/usr/bin/env bash
# up.sh: bring up a real single-node Kubernetes (etcd, kube-apiserver,
# controller-manager, scheduler, kubelet, kube-proxy, CoreDNS, containerd +
# runc) from the binaries in bin/ (make tools-cluster). The node runs in a
# network namespace of its own joined to the host by a veth, with no default
# route, so nothing it runs can reach beyond this machine. Facts behind
# each choice: docs/cluster.md. Stop it with make cluster-down.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

preflight
start=$(date +%s.%N)
elapsed() { printf '%.1f' "$(echo "$(date +%s.%N) - $start" | bc)"; }

# A crashed or half-started run must never block this one.
"$(dirname "$0")/down.sh"

mkdir -p "$CLUSTER_DIR"/{pids,logs,run,pki,etc,etcd,cni/net.d,cni/ipam,kubelet,pod-logs}

# --- host state ---------------------------------------------------------
# kubelet rewrites these sysctls and creates these paths; record them as
# found so down.sh can put the machine back.
: >"$HOST_STATE"
for s in "${SYSCTLS[@]}"; do echo "sysctl $s $(sysctl -n "$s")" >>"$HOST_STATE"; done
for p in "${HOST_PATHS[@]}"; do [ -e "$p" ] || echo "absent $p" >>"$HOST_STATE"; done
# ip netns add makes /run/netns a mount point of its own the first time.
[ -e /run/netns ] || echo "netnsdir /run/netns" >>"$HOST_STATE"

# --- network ------------------------------------------------------------
ip netns add "$NETNS"
ip link add "$VETH_HOST" type veth peer name "$VETH_NODE"
ip link set "$VETH_NODE" netns "$NETNS"
ip addr add "$HOST_IP/24" dev "$VETH_HOST"
ip link set "$VETH_HOST" up
in_node ip link set lo up
in_node ip addr add "$NODE_IP/24" dev "$VETH_NODE"
in_node ip link set "$VETH_NODE" up
# No default route on purpose. Node-local clients of a ClusterIP still need
# a route for the packet to reach kube-proxy's DNAT in OUTPUT.
in_node ip route add "$SERVICE_CIDR" dev "$VETH_NODE"
in_node sysctl -q -w net.ipv4.ip_forward=1
# Host processes (tests) reach pods and Services through the node.
ip route add "$SERVICE_CIDR" via "$NODE_IP" dev "$VETH_HOST"
ip route add "$POD_CIDR" via "$NODE_IP" dev "$VETH_HOST"

# run NAME CMD...: start a component inside the node's namespace, logging
# to logs/NAME.log, its pid in pids/NAME.pid for down.sh.
run() {
  local name=$1; shift
  nsenter --net="/run/netns/$NETNS" -- "$@" >"$CLUSTER_DIR/logs/$name.log" 2>&1 &
  echo $! >"$CLUSTER_DIR/pids/$name.pid"
}

# wait_for WHAT SECONDS CMD...: poll CMD every 0.2 s; on timeout name the log.
wait_for() {
  local what=$1 secs=$2 i; shift 2
  for i in $(seq $((secs * 5))); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  die "$what not ready after ${secs}s; see $CLUSTER_DIR/logs/"
}

# --- certificates -------------------------------------------------------
"$(dirname "$0")/pki.sh" "$PKI"

# kubeconfig FILE NAME: a kubeconfig for the client certificate pki/NAME.
kubeconfig() {
  cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: vcon
  cluster:
    server: https://$NODE_IP:6443
    certificate-authority: $PKI/ca.crt
users:
- name: $2
  user:
    client-certificate: $PKI/$2.crt
    client-key: $PKI/$2.key
contexts:
- name: vcon
  context: {cluster: vcon, user: $2}
current-context: vcon
KC
}
kubeconfig "$KUBECONFIG_ADMIN" admin
for c in controller-manager scheduler kubelet kube-proxy coredns; do kubeconfig "$CLUSTER_DIR/etc/$c.kubeconfig" "$c"; done

# --- containerd ---------------------------------------------------------
"$(dirname "$0")/config.sh" "$CLUSTER_DIR"
run containerd containerd --config "$CLUSTER_DIR/etc/containerd.toml"
wait_for containerd 20 ctr -a "$CTR_SOCK" version
# The sandbox image first: nothing is pulled here, and kubelet cannot
# start a pod without it.
(cd "$ROOT" && go run ./hack/cluster/binimage -pkg ./hack/cluster/pause -tag "$PAUSE_IMAGE" -out "$CLUSTER_DIR/pause.tar")
ctr -a "$CTR_SOCK" -n k8s.io images import "$CLUSTER_DIR/pause.tar" >/dev/null

# --- control plane ------------------------------------------------------
run etcd "$BIN/etcd" --data-dir "$CLUSTER_DIR/etcd" \
  --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
  --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
  --initial-cluster default=http://127.0.0.1:2380 --listen-metrics-urls "" --log-level warn

run kube-apiserver "$BIN/kube-apiserver" \
  --etcd-servers http://127.0.0.1:2379 \
  --bind-address "$NODE_IP" --advertise-address "$NODE_IP" --secure-port 6443 \
  --service-cluster-ip-range "$SERVICE_CIDR" \
  --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
  --client-ca-file "$PKI/ca.crt" \
  --kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
  --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
  --kubelet-preferred-address-types InternalIP \
  --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
  --service-account-issuer https://kubernetes.default.svc.cluster.local \
  --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
  --allow-privileged=true

apiserver_ready() {
  curl -sf --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" "https://$NODE_IP:6443/readyz"
}
wait_for kube-apiserver 60 apiserver_ready
log "apiserver ready at $(elapsed) s"

# Only now: earlier they exit on a forbidden
# extension-apiserver-authentication configmap.
cm=$CLUSTER_DIR/etc/controller-manager.kubeconfig
run kube-controller-manager "$BIN/kube-controller-manager" \
  --kubeconfig "$cm" --authentication-kubeconfig "$cm" --authorization-kubeconfig "$cm" \
  --bind-address 127.0.0.1 --leader-elect=false \
  --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
  --use-service-account-credentials \
  --cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
  --allocate-node-cidrs --cluster-cidr "$CLUSTER_CIDR" --node-cidr-mask-size 24 \
  --service-cluster-ip-range "$SERVICE_CIDR"
sc=$CLUSTER_DIR/etc/scheduler.kubeconfig
run kube-scheduler "$BIN/kube-scheduler" \
  --kubeconfig "$sc" --authentication-kubeconfig "$sc" --authorization-kubeconfig "$sc" \
  --bind-address 127.0.0.1 --leader-elect=false

# --- node ---------------------------------------------------------------
# kubelet runs as root but may not lower oom_score_adj (CAP_SYS_RESOURCE is
# missing here): --oom-score-adj=0 and containerd's restrict_oom_score_adj.
run kubelet "$BIN/kubelet" \
  --config "$CLUSTER_DIR/etc/kubelet.yaml" \
  --kubeconfig "$CLUSTER_DIR/etc/kubelet.kubeconfig" \
  --root-dir "$CLUSTER_DIR/kubelet" \
  --node-ip "$NODE_IP" --hostname-override "$NODE_NAME" \
  --oom-score-adj=0
run kube-proxy "$BIN/kube-proxy" --config "$CLUSTER_DIR/etc/kube-proxy.yaml"
run coredns "$BIN/coredns" -conf "$CLUSTER_DIR/etc/Corefile"

node_ready() {
  curl -sf --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://$NODE_IP:6443/api/v1/nodes/$NODE_NAME" |
    grep -A1 '"type": "Ready"' | grep -q '"status": "True"'
}
wait_for "node $NODE_NAME" 60 node_ready
log "node Ready at $(elapsed) s"
default_sa() {
  curl -sf --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
    "https://$NODE_IP:6443/api/v1/namespaces/default/serviceaccounts/default"
}
wait_for "default ServiceAccount" 60 default_sa
log "up in $(elapsed) s (logs in $CLUSTER_DIR/logs; containerd socket $CTR_SOCK)"
echo "export KUBECONFIG=$KUBECONFIG_ADMIN"
