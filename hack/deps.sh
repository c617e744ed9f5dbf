#!/usr/bin/env bash
# deps.sh [cluster]: install the Debian packages the tests need when they
# are missing. Tests start their own private redis-server, PostgreSQL and
# sshd instances; they only need the binaries. With "cluster", also what the real
# single-node cluster runs (containerd, runc, CNI plugins, iptables,
# conntrack, openssl, curl). Missing binaries that cannot be installed are
# a loud failure, never a silent skip.
set -euo pipefail

need=()
command -v redis-server >/dev/null || need+=(redis-server)
ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 || command -v postgres >/dev/null || need+=(postgresql)
[ -r /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)   # storage.sftp's test server
command -v prlimit >/dev/null || need+=(util-linux)   # caps the worker's memory in the poison-pill test
command -v ffmpeg >/dev/null || need+=(ffmpeg)   # internal/audio and links.transcribe convert non-WAV recordings
command -v node >/dev/null || need+=(nodejs)   # internal/vconjose's interop test runs panva's jose
command -v npm >/dev/null || need+=(npm)       # installs it (hack/tools.sh jose-node)
if [ "${1:-}" = cluster ]; then
  for b in containerd runc iptables conntrack openssl curl; do
    command -v "$b" >/dev/null || need+=("$b")
  done
  [ -x /usr/lib/cni/bridge ] || need+=(containernetworking-plugins)
fi
[ ${#need[@]} -eq 0 ] && exit 0

echo "deps: installing ${need[*]}" >&2
if [ "$(id -u)" -ne 0 ]; then
  sudo=sudo
  command -v sudo >/dev/null || { echo "deps: need root to apt-get install ${need[*]}" >&2; exit 1; }
else
  sudo=
fi
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
# Debian starts the packaged services; the tests run their own instances.
for svc in redis-server postgresql ssh containerd; do
  $sudo service "$svc" stop >/dev/null 2>&1 || true
done
