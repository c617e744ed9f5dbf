#!/usr/bin/env bash
# pki.sh DIR: the cluster's certificates and keys, made with openssl into
# DIR: a CA, the apiserver's serving certificate, one client certificate per
# identity and the service-account key pair. Every run makes a new CA: the
# cluster is rebuilt from nothing each time, so nothing outlives it.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
dir=${1:?usage: pki.sh DIR}
mkdir -p "$dir"
cd "$dir"

days=30
openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days "$days" \
  -subj /CN=vcon-cluster-ca 2>/dev/null

# cert NAME SUBJECT [EXTENSIONS]: a key and a certificate signed by the CA.
cert() {
  local name=$1 subj=$2 ext=${3:-extendedKeyUsage=clientAuth}
  openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "$subj" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
    -days "$days" -out "$name.crt" -extfile <(printf '%s\n' "$ext") 2>/dev/null
  rm -f "$name.csr"
}

# The apiserver listens only on the node address; in-cluster clients dial
# the kubernetes Service's first IP or its DNS names.
cert apiserver /CN=kube-apiserver "$(printf '%s\n' \
  'extendedKeyUsage=serverAuth' \
  "subjectAltName=IP:$NODE_IP,IP:$SERVICE_IP,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local")"
# Identities the built-in RBAC roles and the Node authorizer know.
cert admin /O=system:masters/CN=vcon-admin
cert controller-manager /CN=system:kube-controller-manager
cert scheduler /CN=system:kube-scheduler
cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME"
cert kube-proxy /CN=system:kube-proxy
# The apiserver's client for kubelet (logs, exec, port-forward).
cert apiserver-kubelet-client /O=system:masters/CN=kube-apiserver-kubelet-client
# CoreDNS has no built-in role and this cluster applies no manifests, so it
# reads Services and EndpointSlices with the admin identity.
cert coredns /O=system:masters/CN=coredns

openssl genrsa -out sa.key 2048 2>/dev/null
openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
chmod 600 ./*.key
