#!/usr/bin/env bash
# Server CPU per delivered message for gateway builds, interleaved: each build in turn on the
# embedded default, the same chat-load run against each, CPU read from /proc/<pid>/stat (user and
# system, the whole process) before and after the load. The figure that does not depend on how
# fast this VM runs in a given hour is the ratio between builds inside one round.
#
#   scripts/bench-cpu.sh OLD/chat-gateway NEW/chat-gateway -- --pairs 200 --rate 5000
#   ROUNDS=5 LOAD_BIN=old/chat-load scripts/bench-cpu.sh A B C -- --pairs 200 --window 16
#
# Everything after `--` goes to `chat-load throughput` (default: --pairs 200 --rate 5000).
# Knobs (env): ROUNDS (3), DURATION (8 s measured, no warm-up: the CPU counts the whole run),
# LOAD_BIN (target/release/chat-load). Prints one JSON line per run.
set -euo pipefail
cd "$(dirname "$0")/.."

builds=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do builds+=("$1"); shift; done
[ "${1:-}" = "--" ] && shift
load_args=("$@")
[ ${#load_args[@]} -gt 0 ] || load_args=(--pairs 200 --rate 5000)
[ ${#builds[@]} -gt 0 ] || { echo "usage: $0 GATEWAY_BIN... [-- chat-load args]" >&2; exit 2; }
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-8}
LOAD_BIN=${LOAD_BIN:-target/release/chat-load}
SECRET=bench-secret
PORT=18680
ADMIN=19690
WORK=$(mktemp -d -t chat-cpu.XXXXXX)
trap 'kill "${GW_PID:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT

# One run of gateway `$1`: prints its JSON line.
run() {
  rm -rf "$WORK/data"
  # Env, not flags: the build measured may predate them (the load comes from one address).
  CHAT_CONNECT_RATE_PER_IP=0 CHAT_USER_SEND_RATE=0 "$1" serve --listen 127.0.0.1:$PORT --admin-listen 127.0.0.1:$ADMIN --data-dir "$WORK/data" \
    --jwt-secret "$SECRET" --drain-seconds 0 >"$WORK/gateway.log" 2>&1 &
  GW_PID=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$ADMIN/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  local before after report
  before=$(awk '{print $14 + $15}' "/proc/$GW_PID/stat")
  report=$("$LOAD_BIN" throughput --url ws://127.0.0.1:$PORT/ws --jwt-secret "$SECRET" \
    --warmup-seconds 0 --duration-seconds "$DURATION" --drain-seconds 3 "${load_args[@]}" \
    --json 2>/dev/null | tail -1)
  after=$(awk '{print $14 + $15}' "/proc/$GW_PID/stat")
  kill -TERM "$GW_PID"
  wait "$GW_PID" 2>/dev/null || true
  python3 - "$1" "$report" "$before" "$after" "$(getconf CLK_TCK)" <<'PY'
import json, sys
build, report, before, after, hz = sys.argv[1], json.loads(sys.argv[2]), *map(int, sys.argv[3:])
n = report["delivered_total"]
print(json.dumps({"gateway": build, "delivered_per_second": round(report["delivered_per_second"]),
                  "delivered": n, "lost": report["lost"],
                  "cpu_ms_per_1000": round((after - before) * 1000 / hz / n * 1000, 1)}))
PY
}

for round in $(seq "$ROUNDS"); do
  for b in "${builds[@]}"; do run "$b"; done
done
