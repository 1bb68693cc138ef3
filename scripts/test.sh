#!/usr/bin/env bash
# Runs every check and test of the workspace, installing what the tests need first.
# Usage: scripts/test.sh            (fmt, clippy, all tests, a bounded live fuzz run)
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-build-deps.sh
scripts/install-test-deps.sh

echo "== cargo fmt --check" >&2
cargo fmt --all -- --check
echo "== cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "== cargo test" >&2
# The bounded chaos soak runs one known schedule here (seed 23), so that a red CI is a change on
# it, not a new random schedule; random seeds are run by hand (docs/reliability.md). Seed 56934
# showed 1 late live delivery of 5,805 on 2026-12-08 (a device moving while a pod retried), open.
CHAOS_SEED="${CHAOS_SEED:-23}" cargo test --workspace --locked --no-fail-fast
echo "== bench/peers (node --test: the Socket.IO peer and the load client against real servers)" >&2
cargo build --locked -p chat-gateway
(cd bench/peers && npm ci --no-audit --no-fund --loglevel=error \
  && GATEWAY_BIN="$PWD/../../target/debug/chat-gateway" npm test)
echo "== clients/typescript (SDK: unit tests, bundle freshness, integration tests on real gateways)" >&2
cargo build --locked -p chat-tests --bin sdk-harness
(cd clients/typescript && npm ci --no-audit --no-fund --loglevel=error \
  && GATEWAY_BIN="$PWD/../../target/debug/chat-gateway" SDK_HARNESS_BIN="$PWD/../../target/debug/sdk-harness" npm test)
echo "== chart (helm lint/template, kubernetes-validate, CRD copy)" >&2
scripts/chart-test.sh
# Bounded: 45 s a target keeps CI well inside its 45 minutes; longer runs are by hand
# (docs/reliability.md). The kept corpus and crash inputs also replay in `cargo test` above.
echo "== cargo fuzz (live, 45 s a target; fails on a crash)" >&2
scripts/fuzz.sh 45
