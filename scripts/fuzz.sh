#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ live, each for a bounded time, and fails on a crash.
# Usage: scripts/fuzz.sh [SECONDS] [TARGET...]     (default: 45 s each, every target)
#
# Installs what it needs when missing: the nightly toolchain (rustup, minimal profile) and
# cargo-fuzz (pinned, into target/tools). New inputs go to target/fuzz/corpus/<target> (the kept
# corpus in fuzz/corpus/<target> is read, never written); a crash input is written to
# target/fuzz/artifacts/<target>/. After fixing the bug, copy that input to
# fuzz/artifacts/<target>/: the replay tests run it on stable from then on. docs/reliability.md
# (## Fuzzing) says how to run longer and how to minimise the corpus.
set -euo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH="${1:-45}"
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || TARGETS=(client_frame server_frame session)

CARGO_FUZZ_VERSION=0.13.2
TOOLS="$PWD/target/tools"
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "fuzz: installing the nightly toolchain (cargo fuzz needs it)" >&2
  rustup toolchain install nightly --profile minimal
fi
if ! "$TOOLS/bin/cargo-fuzz" --version 2>/dev/null | grep -q "$CARGO_FUZZ_VERSION"; then
  echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION into $TOOLS" >&2
  cargo install cargo-fuzz --locked --version "$CARGO_FUZZ_VERSION" --root "$TOOLS"
fi
export PATH="$TOOLS/bin:$PATH"

# No sanitizer: every crate of the workspace forbids `unsafe`, so what the fuzzers hunt is
# panics, overflows and broken invariants (debug assertions and overflow checks are on), and
# AddressSanitizer would only slow each run and the build. 16 codegen units: the target links
# the whole gateway (sqlx, pulsar, object_store…), and one unit per crate made its build the
# longest step of CI, for runs only somewhat faster.
FUZZ_FLAGS=(--sanitizer none --codegen-units 16)
(cd fuzz && cargo +nightly fuzz build "${FUZZ_FLAGS[@]}")

status=0
for t in "${TARGETS[@]}"; do
  scratch="target/fuzz/corpus/$t"
  artifacts="target/fuzz/artifacts/$t/"
  mkdir -p "$scratch" "$artifacts"
  echo "== fuzz $t (${SECONDS_EACH} s)" >&2
  log="target/fuzz/$t.log"
  if (cd fuzz && cargo +nightly fuzz run "${FUZZ_FLAGS[@]}" "$t" "../$scratch" "corpus/$t" -- \
      -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 -timeout=10 \
      -artifact_prefix="../$artifacts" -print_final_stats=1) >"$log" 2>&1; then
    grep -E '^Done [0-9]+ runs' "$log" >&2 || true
  else
    status=1
    tail -n 40 "$log" >&2
    echo "fuzz: $t crashed; the input is in $artifacts (full log: $log)" >&2
  fi
done
exit "$status"
