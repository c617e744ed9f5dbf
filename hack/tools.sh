#!/usr/bin/env bash
# tools.sh TOOL... : make each tool available in bin/ (the Makefile calls this).
#
# Tools are built once per machine into a per-user cache keyed by tool and
# version (~/.cache/vcon-operator/<tool>-<version>/) and symlinked into bin/,
# so a fresh clone (CI) or a second `make test` reuses them instead of paying
# the build again. This machine has no internet beyond the Go module proxy,
# so everything is built from source through it; setup-envtest is tried
# first for the envtest binaries in case downloads work where this runs.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN="$ROOT/bin"
CACHE="${VCON_TOOLS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vcon-operator}"
mkdir -p "$BIN" "$CACHE"

KUBE_VERSION=${KUBE_VERSION:-v1.37.2}      # kube-apiserver
KUBE_STAGING=${KUBE_STAGING:-v0.37.2}      # the k8s.io/<staging> modules of that release
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
CONTROLLER_TOOLS_VERSION=${CONTROLLER_TOOLS_VERSION:-v0.23.0}
HELM_VERSION=${HELM_VERSION:-v3.22.0}
PROMTOOL_VERSION=${PROMTOOL_VERSION:-v0.316.0}   # module version of github.com/prometheus/prometheus
PROMETHEUS_VERSION=${PROMETHEUS_VERSION:-$PROMTOOL_VERSION}
VERSITYGW_VERSION=${VERSITYGW_VERSION:-v1.8.0}  # S3-compatible server for the storage.s3 tests
FERRETDB_VERSION=${FERRETDB_VERSION:-v1.24.2}    # MongoDB wire protocol on SQLite, for the storage.mongo tests
COREDNS_VERSION=${COREDNS_VERSION:-v1.15.0}      # cluster DNS of the real single-node cluster
PROMETHEUS_OPERATOR_VERSION=${PROMETHEUS_OPERATOR_VERSION:-v0.85.0}  # internal/devsys/promop, on the real cluster
HELM_DOCS_VERSION=${HELM_DOCS_VERSION:-v1.14.2}  # charts/vcon-operator/README.md from values.yaml comments
JOSE_NODE_VERSION=${JOSE_NODE_VERSION:-6.2.18}   # panva's jose on node: the independent JOSE implementation of internal/vconjose's interop test

log() { printf 'tools: %s\n' "$*" >&2; }

# link NAME DIR: bin/NAME -> DIR/NAME
link() { ln -sfn "$2/$1" "$BIN/$1"; }

# build_in_module DIR MODULE@VERSION PKG OUT [extra go.mod lines]
# Builds PKG from a throwaway module so the tool's dependencies never touch
# our go.mod. The module directory is kept in the cache for inspection.
build_in_module() {
  local dir=$1 req=$2 pkg=$3 out=$4 extra=${5:-}
  mkdir -p "$dir/src"
  (
    cd "$dir/src"
    [ -f go.mod ] || { go mod init tmp.local/toolbuild >/dev/null 2>&1; }
    [ -z "$extra" ] || printf '%s\n' "$extra" >>go.mod
    GOFLAGS=-mod=mod go get "$req" >&2
    CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags="-s -w ${TOOL_LDFLAGS:-}" -o "$out" "$pkg" >&2
  )
  rm -rf "$dir/src"
}

ensure() {
  local name=$1 version=$2 dir="$CACHE/$1-$2" lockfd
  if [ -x "$dir/$name" ]; then link "$name" "$dir"; return 0; fi
  # One build per tool at a time: a second make (another clone, CI) waits
  # for the first instead of clobbering its half-built tree.
  exec {lockfd}>"$dir.lock"
  flock "$lockfd"
  if [ -x "$dir/$name" ]; then flock -u "$lockfd"; link "$name" "$dir"; return 0; fi
  log "building $name $version into $dir (once per machine)"
  rm -rf "$dir.tmp"; mkdir -p "$dir.tmp"
  "build_$3" "$dir.tmp" "$version"
  rm -rf "$dir"; mv "$dir.tmp" "$dir"
  flock -u "$lockfd"
  link "$name" "$dir"
}

build_controller_gen() {
  GOBIN="$1" go install "sigs.k8s.io/controller-tools/cmd/controller-gen@$2"
}

build_etcd() {
  # go.etcd.io/etcd/server/v3 has the etcd main package at its root.
  build_in_module "$1" "go.etcd.io/etcd/server/v3@$2" go.etcd.io/etcd/server/v3 "$1/etcd"
}

# kube_replaces prints the go.mod lines a throwaway module needs to require
# k8s.io/kubernetes $1: its own go.mod replaces every k8s.io/<staging>
# module with a local directory, so each must be replaced with the
# published version instead.
kube_replaces() {
  local version=$1 gomod replaces
  GOFLAGS=-mod=mod go mod download "k8s.io/kubernetes@$version" >&2
  gomod=$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$version.mod
  replaces=$(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#replace \1 => \1 '"$KUBE_STAGING"'#p' "$gomod")
  [ -n "$replaces" ] || { log "no staging replaces found in $gomod"; return 1; }
  printf '%s\n' "$replaces"
}

# build_kube_component DIR VERSION NAME: one binary of k8s.io/kubernetes,
# stamped with its version so a node reports it.
build_kube_component() {
  local dir=$1 version=$2 name=$3 replaces minor
  replaces=$(kube_replaces "$version")
  minor=${version#v1.}; minor=${minor%%.*}
  TOOL_LDFLAGS="-X k8s.io/component-base/version.gitVersion=$version -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor" \
    build_in_module "$dir" "k8s.io/kubernetes@$version" "k8s.io/kubernetes/cmd/$name" "$dir/$name" "$replaces"
}

build_kube_apiserver() { build_kube_component "$1" "$2" kube-apiserver; }
build_kubelet() { build_kube_component "$1" "$2" kubelet; }
build_kube_controller_manager() { build_kube_component "$1" "$2" kube-controller-manager; }
build_kube_scheduler() { build_kube_component "$1" "$2" kube-scheduler; }
build_kube_proxy() { build_kube_component "$1" "$2" kube-proxy; }
build_kubectl() { build_kube_component "$1" "$2" kubectl; }

build_coredns() {
  build_in_module "$1" "github.com/coredns/coredns@$2" github.com/coredns/coredns "$1/coredns"
}

build_helm() {
  build_in_module "$1" "helm.sh/helm/v3@$2" helm.sh/helm/v3/cmd/helm "$1/helm"
}

build_helm_docs() {
  build_in_module "$1" "github.com/norwoodj/helm-docs@$2" github.com/norwoodj/helm-docs/cmd/helm-docs "$1/helm-docs"
}

build_promtool() {
  build_in_module "$1" "github.com/prometheus/prometheus@$2" github.com/prometheus/prometheus/cmd/promtool "$1/promtool"
}

build_prometheus() {
  build_in_module "$1" "github.com/prometheus/prometheus@$2" github.com/prometheus/prometheus/cmd/prometheus "$1/prometheus"
}

# build_prometheus_operator DIR VERSION: the operator, its config reloader
# and, from the same module, the CRDs and the operator's ClusterRole that
# internal/devsys/promop applies (so they always match the binaries).
build_prometheus_operator() {
  local dir=$1 version=$2 mod=github.com/prometheus-operator/prometheus-operator src
  TOOL_LDFLAGS="-X github.com/prometheus/common/version.Version=${version#v}" \
    build_in_module "$dir" "$mod@$version" "$mod/cmd/operator" "$dir/prometheus-operator"
  TOOL_LDFLAGS="-X github.com/prometheus/common/version.Version=${version#v}" \
    build_in_module "$dir" "$mod@$version" "$mod/cmd/prometheus-config-reloader" "$dir/prometheus-config-reloader"
  src=$(GOFLAGS=-mod=mod go mod download -json "$mod@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$src/example/prometheus-operator-crd" ] || { log "no example/prometheus-operator-crd in $src"; return 1; }
  mkdir -p "$dir/crds" "$dir/rbac"
  cp "$src"/example/prometheus-operator-crd/*.yaml "$dir/crds/"
  cp "$src/example/rbac/prometheus-operator/prometheus-operator-cluster-role.yaml" "$dir/rbac/"
  chmod -R u+w "$dir/crds" "$dir/rbac"
}

build_versitygw() {
  # versitygw is a real S3 server; its posix backend stores buckets as
  # directories, which is all the storage.s3 tests need.
  build_in_module "$1" "github.com/versity/versitygw@$2" github.com/versity/versitygw/cmd/versitygw "$1/versitygw"
}

build_ferretdb() {
  # FerretDB speaks the MongoDB wire protocol; its SQLite backend (pure Go)
  # keeps a database as files in a directory, which is all the
  # storage.mongo tests need. v1 is the last line with that backend. Its
  # binary refuses to start without build/version/version.txt, which
  # FerretDB's release build generates and the module does not ship, so it
  # is built from a copy of the module with that file written.
  local dir=$1 version=$2 src
  src=$(GOFLAGS=-mod=mod go mod download -json "github.com/FerretDB/FerretDB@$version" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  [ -d "$src/cmd/ferretdb" ] || { log "no cmd/ferretdb in $src"; return 1; }
  mkdir -p "$dir/src"
  cp -R "$src/." "$dir/src/"
  chmod -R u+w "$dir/src"
  printf '%s\n' "$version" >"$dir/src/build/version/version.txt"
  (cd "$dir/src" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags="-s -w" -o "$dir/ferretdb" ./cmd/ferretdb >&2)
  rm -rf "$dir/src"
}

# jose-node: panva's jose npm package, installed once per machine with
# npm (node and npm come from hack/deps.sh) and linked as bin/jose-node, so
# that internal/vconjose's interop test finds bin/jose-node/node_modules.
ensure_jose_node() {
  local dir="$CACHE/jose-node-$JOSE_NODE_VERSION"
  if [ ! -f "$dir/node_modules/jose/package.json" ]; then
    command -v npm >/dev/null || { log "jose-node needs npm: run hack/deps.sh"; return 1; }
    log "installing jose@$JOSE_NODE_VERSION with npm into $dir"
    mkdir -p "$dir"
    npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error "jose@$JOSE_NODE_VERSION" >&2
  fi
  ln -sfn "$dir" "$BIN/jose-node"
}

# envtest binaries: setup-envtest first (works where downloads do), else build.
ensure_envtest() {
  local dir="$CACHE/envtest-${KUBE_VERSION#v}"
  if [ -x "$dir/kube-apiserver" ] && [ -x "$dir/etcd" ]; then
    link kube-apiserver "$dir"; link etcd "$dir"; return 0
  fi
  mkdir -p "$dir"
  local assets
  if assets=$(timeout 60 go run sigs.k8s.io/controller-runtime/tools/setup-envtest@latest use "${KUBE_VERSION#v}" \
      --bin-dir "$CACHE/setup-envtest" -p path 2>/dev/null) && [ -x "$assets/kube-apiserver" ]; then
    log "envtest binaries from setup-envtest: $assets"
    cp "$assets/kube-apiserver" "$assets/etcd" "$dir/"
  else
    log "setup-envtest could not download; building kube-apiserver $KUBE_VERSION and etcd $ETCD_VERSION from the Go module proxy"
    ensure kube-apiserver "$KUBE_VERSION" kube_apiserver
    ensure etcd "$ETCD_VERSION" etcd
    ln -sfn "$CACHE/kube-apiserver-$KUBE_VERSION/kube-apiserver" "$dir/kube-apiserver"
    ln -sfn "$CACHE/etcd-$ETCD_VERSION/etcd" "$dir/etcd"
  fi
  link kube-apiserver "$dir"; link etcd "$dir"
}

for tool in "$@"; do
  case "$tool" in
    envtest) ensure_envtest ;;
    controller-gen) ensure controller-gen "$CONTROLLER_TOOLS_VERSION" controller_gen ;;
    helm) ensure helm "$HELM_VERSION" helm ;;
    promtool) ensure promtool "$PROMTOOL_VERSION" promtool ;;
    helm-docs) ensure helm-docs "$HELM_DOCS_VERSION" helm_docs ;;
    prometheus) ensure prometheus "$PROMETHEUS_VERSION" prometheus ;;
    s3server) ensure versitygw "$VERSITYGW_VERSION" versitygw ;;
    ferretdb) ensure ferretdb "$FERRETDB_VERSION" ferretdb ;;
    jose-node) ensure_jose_node ;;
    # The Prometheus Operator on the real cluster (internal/devsys/promop): its two
    # binaries, plus its CRDs and ClusterRole as bin/prometheus-operator-crds
    # and bin/prometheus-operator-rbac.
    prometheus-operator)
      ensure prometheus-operator "$PROMETHEUS_OPERATOR_VERSION" prometheus_operator
      link prometheus-config-reloader "$CACHE/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION"
      ln -sfn "$CACHE/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION/crds" "$BIN/prometheus-operator-crds"
      ln -sfn "$CACHE/prometheus-operator-$PROMETHEUS_OPERATOR_VERSION/rbac" "$BIN/prometheus-operator-rbac" ;;
    # The real single-node cluster's binaries, and kubectl for the README's
    # tour. Each builds once per machine, several minutes on 2 cores.
    cluster)
      ensure etcd "$ETCD_VERSION" etcd
      for c in kube-apiserver kubelet kube-controller-manager kube-scheduler kube-proxy kubectl; do
        ensure "$c" "$KUBE_VERSION" "$(echo "$c" | tr - _)"
      done
      ensure coredns "$COREDNS_VERSION" coredns ;;
    *) log "unknown tool $tool"; exit 2 ;;
  esac
done
