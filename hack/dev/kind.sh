#!/usr/bin/env bash
# kind.sh (make kind): create a kind cluster and deploy the chart there,
# where Docker works. Otherwise say why not, and point at make dev.
#   KIND_CLUSTER (vcon-dev), IMG (the image to build and load).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
CLUSTER=${KIND_CLUSTER:-vcon-dev}
IMG=${IMG:-ghcr.io/vcon-operator/vcon-operator:dev}

why_not() { echo "kind: $*" >&2; echo "kind: sudo make dev runs the whole system on a real single-node cluster here, without Docker." >&2; exit 1; }
command -v docker >/dev/null || why_not "docker is not installed"
docker info >/dev/null 2>&1 || why_not "docker is installed but its daemon does not answer (docker info fails: is it running, may this user use it?)"
if ! command -v kind >/dev/null; then
  echo "kind: installing kind with go install sigs.k8s.io/kind@latest" >&2
  GOBIN="$ROOT/bin" go install sigs.k8s.io/kind@latest
fi
KIND=$(command -v kind || echo "$ROOT/bin/kind")

if ! "$KIND" get clusters 2>/dev/null | grep -qx "$CLUSTER"; then
  "$KIND" create cluster --name "$CLUSTER" --wait 120s
fi
make --no-print-directory docker-build IMG="$IMG"
"$KIND" load docker-image "$IMG" --name "$CLUSTER"
# kind create cluster made kind-$CLUSTER the current context.
kubectl config use-context "kind-$CLUSTER" >/dev/null
YES=1 HELM_ARGS="--set image.repository=${IMG%:*} --set image.tag=${IMG##*:} --set image.pullPolicy=IfNotPresent ${HELM_ARGS:-}" hack/dev/deploy.sh
