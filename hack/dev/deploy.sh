#!/usr/bin/env bash
# deploy.sh (make deploy): install charts/vcon-operator into the current
# kubectl context with helm, after a confirmation unless YES=1.
#   RELEASE (vcon-operator), NAMESPACE (vcon-system), HELM_ARGS (extra flags,
#   e.g. "--set redis.url=redis://redis.vcon-system:6379/0").
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
RELEASE=${RELEASE:-vcon-operator}
NAMESPACE=${NAMESPACE:-vcon-system}

command -v kubectl >/dev/null || { echo "deploy: kubectl not found on PATH" >&2; exit 1; }
hack/tools.sh helm
HELM="$ROOT/bin/helm"

ctx=$(kubectl config current-context 2>/dev/null) || { echo "deploy: no current kubectl context (kubectl config use-context NAME)" >&2; exit 1; }
server=$(kubectl config view --minify -o jsonpath='{.clusters[0].cluster.server}' 2>/dev/null || true)
echo "deploy: helm upgrade --install $RELEASE charts/vcon-operator -n $NAMESPACE into context \"$ctx\" ($server)"
if [ "${YES:-}" != 1 ]; then
  read -r -p "Proceed? [y/N] " answer
  case "$answer" in y|Y|yes|YES) ;; *) echo "deploy: cancelled"; exit 1 ;; esac
fi
# shellcheck disable=SC2086
"$HELM" upgrade --install "$RELEASE" charts/vcon-operator --namespace "$NAMESPACE" --create-namespace \
  --kube-context "$ctx" --wait --timeout 5m ${HELM_ARGS:-}
echo "deploy: done. kubectl -n $NAMESPACE get pods; kubectl apply -k config/samples -n <your namespace>"
