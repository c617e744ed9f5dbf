#!/usr/bin/env bash
# dev.sh (make dev): run the whole system on a real single-node Kubernetes
# on this machine (hack/cluster: kubelet, containerd, real pods; no Docker):
# the image built without Docker and imported, Redis and PostgreSQL on the
# node's address, the Prometheus Operator and its Prometheus, and
# `helm install` of charts/vcon-operator with the samples applied. Ctrl-C
# tears it all down and leaves nothing behind.
#
# It builds what is missing first (cached per machine by hack/tools.sh), and
# never touches ~/.kube/config or your current kubectl context: the
# cluster's kubeconfig is .cluster/kubeconfig (. .dev/env sets it).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

command -v go >/dev/null || { echo "dev: Go is needed (https://go.dev/dl/)" >&2; exit 1; }
[ "$(uname -s)" = Linux ] || { echo "dev: the real cluster needs Linux; with Docker, make kind" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "dev: the real cluster needs root (network namespaces, mounts, cgroups): sudo make dev" >&2; exit 1; }

# The cluster's binaries, kubectl, helm and the Prometheus Operator are
# built once per machine from the Go module proxy (the first time takes a
# while); redis-server, PostgreSQL and containerd come from apt.
hack/tools.sh cluster helm prometheus prometheus-operator
hack/deps.sh cluster
make --no-print-directory build BINARIES=kubectl-vcon

mkdir -p .dev
echo "dev: building the dev runner" >&2
go build -o .dev/vcon-dev ./hack/dev/runner
exec .dev/vcon-dev "$@"
