#!/usr/bin/env bash
# A real Kubernetes control plane on loopback, built from Go modules:
#   scripts/testbed.sh build   build what is missing into the cache
#   scripts/testbed.sh up      build, then start etcd, kube-apiserver, kube-controller-manager,
#                              kube-scheduler, kwok (three fake nodes) and the test bed's operators
#                              (W&B and Altinity ClickHouse)
#   scripts/testbed.sh env     print `export KUBECONFIG=...` (and the rest) for `eval`
#   scripts/testbed.sh down    stop exactly the processes `up` started and remove their data
# Cache: $WBSTACK_TESTBED_CACHE (default ~/.cache/wbstack-testbed); run directory:
# $WBSTACK_TESTBED_DIR (default /tmp/wbstack-testbed).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cache="${WBSTACK_TESTBED_CACHE:-$HOME/.cache/wbstack-testbed}"
run="${WBSTACK_TESTBED_DIR:-/tmp/wbstack-testbed}"
bin="$cache/bin"

log() { echo "testbed: $*" >&2; }

# Builds module $1 (under testbed/) into $bin unless its sources' digest is the one recorded at
# the last build and every named binary is there.
build_module() {
  local module="$1"; shift
  local src="$root/testbed/$module" stamp="$bin/.$module.sum" digest b
  digest="$(cd "$src" && find . -type f \( -name '*.go' -o -name go.mod -o -name go.sum \) -print0 | sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)"
  local stale=0
  [[ "$(cat "$stamp" 2>/dev/null)" == "$digest" ]] || stale=1
  for b in "$@"; do [[ -x "$bin/$b" ]] || stale=1; done
  ((stale)) || return 0
  log "building $* from testbed/$module"
  local start=$SECONDS
  (cd "$src" && go build -o "$bin/" "${pkgs[@]}")
  echo "$digest" >"$stamp"
  log "built $* in $((SECONDS - start)) s"
}

build() {
  mkdir -p "$bin"
  pkgs=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager
        k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
  build_module kube kube-apiserver kube-controller-manager kube-scheduler kubectl
  pkgs=(.); build_module etcd etcd
  pkgs=(sigs.k8s.io/kwok/cmd/kwok ./stages); build_module kwok kwok stages
  pkgs=(. ./altinity); build_module operator operator altinity
}

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

certs() {
  local d="$run/pki"
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=wbstack-testbed-ca" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$d/apiserver.key" -out "$d/apiserver.csr" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n' >"$d/san.ext"
  openssl x509 -req -in "$d/apiserver.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 2 -extfile "$d/san.ext" -out "$d/apiserver.crt" 2>/dev/null
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
}

token() { openssl rand -hex 16; }

# tokens.csv: token,user,uid,"groups"; one kubeconfig per identity.
identities() {
  local f="$run/tokens.csv" t
  : >"$f"
  add() { t="$(token)"; echo "$t,$1,$1,\"$2\"" >>"$f"; kubeconfig "$1" "$t"; }
  add admin system:masters
  add system:kube-controller-manager ""
  add system:kube-scheduler ""
  add kwok system:masters
  add wandb-operator system:masters
  add clickhouse-operator system:masters
  # The product's own identity: the audit log tells its requests apart.
  add wbstack system:masters
  # A product identity with no group: tests bind it to exactly the role `render --job` prints.
  add wbstack-job ""
}

kubeconfig() {
  mkdir -p "$run/kubeconfig"
  cat >"$run/kubeconfig/$1" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: testbed
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority: $run/pki/ca.crt
users:
- name: $1
  user:
    token: $2
contexts:
- name: testbed
  context: {cluster: testbed, user: $1}
current-context: testbed
EOF
}

start() {
  local name="$1"; shift
  "$@" >"$run/logs/$name.log" 2>&1 &
  echo "$!" >"$run/pids/$name"
}

wait_for() {
  local what="$1" i; shift
  for ((i = 0; i < 600; i++)); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  log "$what did not come up; its log:"; tail -n 30 "$run/logs/$what.log" >&2 || true
  return 1
}

up() {
  if [[ -d "$run/pids" ]]; then log "already up (run 'down' first): $run"; return 1; fi
  build
  local t0=$SECONDS
  mkdir -p "$run/logs" "$run/pids" "$run/etcd"
  api_port="$(free_port)"
  local etcd_port peer_port kcm_port sched_port
  etcd_port="$(free_port)"; peer_port="$(free_port)"; kcm_port="$(free_port)"; sched_port="$(free_port)"
  certs
  identities
  printf 'apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n' >"$run/audit-policy.yaml"
  start etcd "$bin/etcd" --name testbed --data-dir "$run/etcd" --unsafe-no-fsync \
    --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
    --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
    --initial-cluster "testbed=http://127.0.0.1:$peer_port" --listen-metrics-urls ""
  wait_for etcd curl -sf "http://127.0.0.1:$etcd_port/health"
  start kube-apiserver "$bin/kube-apiserver" --etcd-servers "http://127.0.0.1:$etcd_port" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$api_port" \
    --tls-cert-file "$run/pki/apiserver.crt" --tls-private-key-file "$run/pki/apiserver.key" \
    --client-ca-file "$run/pki/ca.crt" --token-auth-file "$run/tokens.csv" \
    --service-account-issuer https://kubernetes.default.svc --service-account-key-file "$run/pki/sa.pub" \
    --service-account-signing-key-file "$run/pki/sa.key" --service-cluster-ip-range 10.96.0.0/16 \
    --authorization-mode Node,RBAC --allow-privileged --endpoint-reconciler-type none \
    --audit-log-path "$run/audit.log" --audit-policy-file "$run/audit-policy.yaml" --audit-log-maxsize 0
  local admin="$run/kubeconfig/admin"
  wait_for kube-apiserver "$bin/kubectl" --kubeconfig "$admin" get --raw /readyz
  start kube-controller-manager "$bin/kube-controller-manager" --kubeconfig "$run/kubeconfig/system:kube-controller-manager" \
    --authentication-kubeconfig "$run/kubeconfig/system:kube-controller-manager" \
    --authorization-kubeconfig "$run/kubeconfig/system:kube-controller-manager" \
    --bind-address 127.0.0.1 --secure-port "$kcm_port" --leader-elect=false \
    --use-service-account-credentials --service-account-private-key-file "$run/pki/sa.key" \
    --root-ca-file "$run/pki/ca.crt" --enable-hostpath-provisioner --cluster-name testbed
  start kube-scheduler "$bin/kube-scheduler" --kubeconfig "$run/kubeconfig/system:kube-scheduler" \
    --authentication-kubeconfig "$run/kubeconfig/system:kube-scheduler" \
    --authorization-kubeconfig "$run/kubeconfig/system:kube-scheduler" \
    --bind-address 127.0.0.1 --secure-port "$sched_port" --leader-elect=false
  "$bin/stages" >"$run/kwok.yaml"
  start kwok "$bin/kwok" --kubeconfig "$run/kubeconfig/kwok" --config "$run/kwok.yaml" \
    --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake --node-ip 10.0.0.1 \
    --node-lease-duration-seconds 40 \
    --server-address "127.0.0.1:$(free_port)"
  cluster_objects | "$bin/kubectl" --kubeconfig "$admin" apply -f - >/dev/null
  wait_for kube-controller-manager "$bin/kubectl" --kubeconfig "$admin" get serviceaccount default -n default
  AIRGAPPED=true OPERATOR_NAMESPACE=wandb start operator "$bin/operator" --kubeconfig "$run/kubeconfig/wandb-operator"
  start altinity "$bin/altinity" --kubeconfig "$run/kubeconfig/clickhouse-operator"
  write_env
  log "up in $((SECONDS - t0)) s: eval \"\$($0 env)\""
}

# Three fake nodes, StorageClasses whose volumes the controller manager's host-path
# provisioner makes (the plans name gp2 and gp3; `standard` is the default), and the
# IngressClasses of the AWS Load Balancer Controller (`alb`) and ingress-nginx.
cluster_objects() {
  local i zone
  for i in 0 1 2; do
    zone="us-east-1$(printf '%s' abc | cut -c$((i + 1)))"
    cat <<EOF
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations: {kwok.x-k8s.io/node: fake, node.alpha.kubernetes.io/ttl: "0"}
  labels: {kubernetes.io/hostname: kwok-node-$i, kubernetes.io/os: linux, kubernetes.io/arch: amd64, type: kwok, topology.kubernetes.io/zone: $zone}
status:
  allocatable: {cpu: "64", memory: 512Gi, pods: "250", ephemeral-storage: 1Ti}
  capacity: {cpu: "64", memory: 512Gi, pods: "250", ephemeral-storage: 1Ti}
---
EOF
  done
  for sc in standard gp2 gp3; do
    cat <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: $sc
  annotations: {storageclass.kubernetes.io/is-default-class: "$([[ $sc == standard ]] && echo true || echo false)"}
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
volumeBindingMode: Immediate
---
EOF
  done
  cat <<EOF
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: alb}
spec: {controller: ingress.k8s.aws/alb}
---
apiVersion: networking.k8s.io/v1
kind: IngressClass
metadata: {name: nginx}
spec: {controller: k8s.io/ingress-nginx}
---
EOF
}

write_env() {
  cat >"$run/env" <<EOF
export KUBECONFIG=$run/kubeconfig/admin
export WBSTACK_TESTBED_DIR=$run
export WBSTACK_TESTBED_AUDIT=$run/audit.log
EOF
}

down() {
  [[ -d "$run" ]] || { log "not up"; return 0; }
  local name pid
  for name in altinity operator kwok kube-scheduler kube-controller-manager kube-apiserver etcd; do
    [[ -f "$run/pids/$name" ]] || continue
    pid="$(cat "$run/pids/$name")"
    if kill "$pid" 2>/dev/null; then
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -9 "$pid" 2>/dev/null || true
    fi
  done
  rm -rf "$run"
  log "down"
}

case "${1:-}" in
  build) build ;;
  up) up ;;
  env) cat "$run/env" ;;
  down) down ;;
  *) echo "usage: $0 build|up|env|down" >&2; exit 2 ;;
esac
