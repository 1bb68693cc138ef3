#!/usr/bin/env bash
# Runs the gateway on the embedded default (SQLite in ./chat-data) with browser logins enabled,
# installing the build's one extra tool (protoc) first when it is missing.
#   scripts/run.sh                      then open http://127.0.0.1:8080
#   scripts/run.sh --listen 0.0.0.0:8080   extra flags go to `chat-gateway serve`
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-build-deps.sh
exec cargo run --release -p chat-gateway -- serve --dev-login "$@"
