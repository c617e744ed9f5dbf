#!/usr/bin/env bash
# dev.sh (make dev): run the whole system on this machine, no cluster and no
# Docker: kube-apiserver + etcd (envtest), redis-server, PostgreSQL when the
# samples use it, the operator, the API, Prometheus, and a local workload
# runner playing the kubelet for the worker Deployments. Ctrl-C stops it all.
#
# It builds what is missing first (cached per machine by hack/tools.sh), and
# never touches ~/.kube/config or your current kubectl context: the dev
# cluster's kubeconfig is .dev/kubeconfig.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"

command -v go >/dev/null || { echo "dev: Go is needed (https://go.dev/dl/)" >&2; exit 1; }

# The four binaries, when missing or older than the sources.
stale=no
for b in manager conserver api kubectl-vcon; do
  [ -x "bin/$b" ] || { [ "$b" = kubectl-vcon ] && [ ! -d cmd/kubectl-vcon ] && continue; stale=yes; break; }
done
if [ "$stale" = no ] && [ -n "$(find api cmd controllers internal -name '*.go' -newer bin/manager -print -quit 2>/dev/null)" ]; then
  stale=yes
fi
if [ "$stale" = yes ]; then
  echo "dev: building bin/ (make build)" >&2
  make --no-print-directory build BINARIES="$(for d in cmd/*/; do basename "$d"; done | tr '\n' ' ')"
fi

# kube-apiserver, etcd and prometheus are built once per machine from the Go
# module proxy (the first time takes a while); redis-server and PostgreSQL
# come from apt.
hack/tools.sh envtest prometheus
hack/deps.sh

mkdir -p .dev
echo "dev: building the dev runner" >&2
go build -o .dev/vcon-dev ./hack/dev/runner
exec .dev/vcon-dev "$@"
