#!/usr/bin/env bash
# down.sh: tear down the single-node cluster of up.sh and leave nothing:
# processes, container tasks, mounts, network namespaces, veth, kubepods
# cgroups, host paths; the sysctls kubelet rewrote are restored. It works on
# a half-started or crashed (kill -9) cluster too, which is why up.sh runs
# it first, and it is safe to run twice.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

[ "$(id -u)" = 0 ] || die "needs root: run sudo make cluster-down"

# alive PID: the process exists and is not a zombie.
alive() { [ -e "/proc/$1" ] && ! grep -q '^State:.*Z' "/proc/$1/status" 2>/dev/null; }

# stop NAME: SIGTERM the component from its pid file, SIGKILL after 10 s.
# The pid is checked against the binary's path so a reused pid is spared.
stop() {
  local f="$CLUSTER_DIR/pids/$1.pid" pid i
  [ -f "$f" ] || return 0
  pid=$(cat "$f")
  if alive "$pid" && grep -qa -- "$1" "/proc/$pid/cmdline" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 100); do alive "$pid" || break; sleep 0.1; done
    alive "$pid" && kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

# Container tasks first through containerd while it still runs, so runc
# tears them down and unmounts their rootfs itself.
kill_tasks() {
  [ -S "$CTR_SOCK" ] || return 0
  local t
  for t in $(ctr -a "$CTR_SOCK" -n k8s.io tasks ls -q 2>/dev/null); do
    ctr -a "$CTR_SOCK" -n k8s.io tasks kill -s SIGKILL "$t" >/dev/null 2>&1 || true
  done
}

# kill_leftovers: after a crash, shims, containers and components may
# outlive their pid files. Everything in the node's namespace is ours, and
# so is every process in a kubepods cgroup (pods have namespaces of their own).
kill_leftovers() {
  local pids=() p
  [ -e "/run/netns/$NETNS" ] && mapfile -t pids < <(ip netns pids "$NETNS" 2>/dev/null)
  for p in /sys/fs/cgroup/*/kubepods; do
    [ -d "$p" ] && mapfile -t -O "${#pids[@]}" pids < <(find "$p" -name cgroup.procs -exec cat {} + 2>/dev/null)
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  for p in "${pids[@]}"; do
    [ "$p" = $$ ] || kill -KILL "$p" 2>/dev/null || true
  done
  for p in "${pids[@]}"; do
    while alive "$p"; do sleep 0.05; done
  done
}

# Mounts under the cluster's directory (overlay rootfs, shm, secret and
# token tmpfs), deepest first so a parent is never busy.
unmount_all() {
  local m
  awk -v d="$CLUSTER_DIR/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo |
    awk '{print length, $0}' | sort -rn | cut -d' ' -f2- |
    while read -r m; do umount "$m" 2>/dev/null || umount -l "$m" || true; done
}

# A shim killed by a crash leaves its socket in containerd 1.6's fixed
# /run/containerd/s/; each shim's state directory names its address.
remove_shim_sockets() {
  local a s
  for a in "$CLUSTER_DIR"/containerd/state/io.containerd.runtime.v2.task/*/*/address; do
    [ -f "$a" ] || continue
    s=$(cat "$a"); s=${s#unix://}
    case $s in /run/containerd/s/*) rm -f -- "$s" ;; esac
  done
}

# Cgroups kubelet and runc made, depth first (a cgroup with children
# cannot be removed).
remove_cgroups() {
  local c
  for c in /sys/fs/cgroup/*/kubepods; do
    [ -d "$c" ] || continue
    find "$c" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [ ! -d "$c" ] || log "warning: $c is still there"
  done
}

remove_netns() {
  local n
  # The pods' namespaces: containerd names them cni-<uuid>; they are never
  # CNI-deleted here since the pods are never stopped through the CRI.
  for n in $(ip netns list 2>/dev/null | awk '$1 ~ /^cni-[0-9a-f-]+$/ {print $1}'); do
    ip netns delete "$n" 2>/dev/null || true
  done
  # Deleting the namespace destroys the node end of the veth, and with it
  # the host end and the host routes through it.
  if [ -e "/run/netns/$NETNS" ]; then ip netns delete "$NETNS"; fi
  if ip link show "$VETH_HOST" >/dev/null 2>&1; then ip link delete "$VETH_HOST"; fi
}

# restore_host puts back the sysctls and removes the host paths that were
# not there at bring-up, from what up.sh recorded in $HOST_STATE.
restore_host() {
  [ -f "$HOST_STATE" ] || return 0
  local kind key value
  while read -r kind key value; do
    case $kind in
      sysctl) sysctl -q -w "$key=$value" || log "warning: could not restore $key=$value" ;;
      absent) rm -rf --one-file-system -- "$key" ;;
      # Only when no namespace of anyone else's is left in it.
      netnsdir) if [ -z "$(ip netns list 2>/dev/null)" ] && mountpoint -q "$key"; then
                  umount "$key" && rmdir "$key"; fi ;;
    esac
  done <"$HOST_STATE"
}

start=$(date +%s.%N)
for c in "${COMPONENTS[@]:0:5}"; do stop "$c"; done
kill_tasks
for c in "${COMPONENTS[@]:5}"; do stop "$c"; done
kill_leftovers
remove_shim_sockets
unmount_all
remove_netns
remove_cgroups
restore_host
# The whole directory: etcd data, the containerd store and the host-local
# IPAM leases must not survive into the next bring-up.
rm -rf --one-file-system -- "$CLUSTER_DIR"
log "down in $(printf '%.1f' "$(echo "$(date +%s.%N) - $start" | bc 2>/dev/null || echo 0)") s"
