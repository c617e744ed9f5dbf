#!/usr/bin/env bash
# The krew release step of kubectl vcon.
#
#   release.sh build  VERSION DIR   build kubectl-vcon_<os>_<arch>.tar.gz for
#                                   every platform of hack/krew/vcon.yaml
#   release.sh render VERSION DIR   write DIR/vcon.yaml: hack/krew/vcon.yaml
#                                   with VERSION in spec.version and the URIs,
#                                   and each platform's sha256 computed from
#                                   DIR/<its archive>
#
# Upload the archives to the GitHub release VERSION, then submit
# DIR/vcon.yaml to krew-index.
set -euo pipefail

cmd=${1:?usage: release.sh build|render VERSION DIR}
version=${2:?usage: release.sh build|render VERSION DIR}
dir=${3:?usage: release.sh build|render VERSION DIR}
here=$(cd "$(dirname "$0")" && pwd)
manifest=$here/vcon.yaml

if [[ ! $version =~ ^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.-]+)?$ ]]; then
  echo "VERSION must be a semantic version with a v, e.g. v1.2.3: got $version" >&2
  exit 1
fi
mkdir -p "$dir"

platforms() {
  grep -o 'kubectl-vcon_[a-z0-9]*_[a-z0-9]*\.tar\.gz' "$manifest" | sort -u
}

case $cmd in
build)
  root=$(cd "$here/../.." && pwd)
  for archive in $(platforms); do
    plat=${archive#kubectl-vcon_}
    plat=${plat%.tar.gz}
    os=${plat%_*}
    arch=${plat#*_}
    bin=kubectl-vcon
    [[ $os == windows ]] && bin=kubectl-vcon.exe
    work=$(mktemp -d)
    (cd "$root" && CGO_ENABLED=0 GOOS=$os GOARCH=$arch go build -trimpath \
      -ldflags "-s -w -X github.com/vcon-operator/vcon-operator/internal/version.Version=$version" \
      -o "$work/$bin" ./cmd/kubectl-vcon)
    tar -C "$work" -czf "$dir/$archive" "$bin"
    rm -rf "$work"
  done
  ;;
render)
  out=$dir/vcon.yaml
  : >"$out"
  archive=""
  while IFS= read -r line; do
    case $line in
    *"version: v0.0.0"*) line=${line/v0.0.0/$version} ;;
    *"uri: "*)
      line=${line//\/v0.0.0\//\/$version\/}
      archive=${line##*/}
      ;;
    *"sha256: "*)
      if [[ ! -f $dir/$archive ]]; then
        echo "no archive $dir/$archive to take the sha256 of: run release.sh build first" >&2
        exit 1
      fi
      sum=$(sha256sum "$dir/$archive" | cut -d' ' -f1)
      line="${line%%sha256:*}sha256: \"$sum\""
      ;;
    esac
    printf '%s\n' "$line" >>"$out"
  done <"$manifest"
  ;;
*)
  echo "usage: release.sh build|render VERSION DIR" >&2
  exit 1
  ;;
esac
