#!/usr/bin/env bash
# Two gateway builds at saturation, interleaved (A B A B …), on the embedded default with the same
# load tool: the way to compare builds on this VM, whose speed swings between hours. Prints one
# JSON line per run and, at the end, each pair's B/A ratio of delivered msg/s and their median.
#
#   A=path/to/old/chat-gateway B=target/release/chat-gateway scripts/bench-ab.sh
#
# Knobs (env): PAIRS_RUNS (3), PAIRS (200), WINDOW (16), DURATION (20), LOAD_BIN
# (target/release/chat-load: give both builds the same one).
set -euo pipefail
cd "$(dirname "$0")/.."

: "${A:?A=path to the first gateway binary}" "${B:?B=path to the second gateway binary}"
PAIRS_RUNS=${PAIRS_RUNS:-3}
PAIRS=${PAIRS:-200}
WINDOW=${WINDOW:-16}
DURATION=${DURATION:-20}
LOAD_BIN=${LOAD_BIN:-target/release/chat-load}
SECRET=bench-secret
WORK=$(mktemp -d -t chat-ab.XXXXXX)
trap 'kill "${GW_PID:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT=18280
ADMIN=19290

# One saturation run of gateway `$1`: prints delivered msg/s.
run() {
  rm -rf "$WORK/data"
  # Env, not flags: the build compared may predate them (the load comes from one address).
  CHAT_CONNECT_RATE_PER_IP=0 CHAT_USER_SEND_RATE=0 "$1" serve --listen 127.0.0.1:$PORT --admin-listen 127.0.0.1:$ADMIN --data-dir "$WORK/data" \
    --jwt-secret "$SECRET" --drain-seconds 0 --max-connections 60000 >"$WORK/gateway.log" 2>&1 &
  GW_PID=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$ADMIN/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  local report
  report=$("$LOAD_BIN" throughput --url ws://127.0.0.1:$PORT/ws --jwt-secret "$SECRET" \
    --pairs "$PAIRS" --window "$WINDOW" --duration-seconds "$DURATION" --warmup-seconds 3 \
    --json | tail -1)
  kill -TERM "$GW_PID"
  wait "$GW_PID" 2>/dev/null || true
  echo "$report" >>"$WORK/reports"
  python3 -c 'import json,sys; r=json.loads(sys.argv[1]); print(r["delivered_per_second"], r["lost"])' "$report"
}

ratios=()
for i in $(seq "$PAIRS_RUNS"); do
  read -r a lost_a < <(run "$A")
  read -r b lost_b < <(run "$B")
  echo "{\"pair\": $i, \"a_msgs_per_s\": $a, \"b_msgs_per_s\": $b, \"lost\": [$lost_a, $lost_b]}"
  ratios+=("$(python3 -c "print($b / $a)")")
done
python3 - "${ratios[@]}" <<'PY'
import json, statistics, sys
r = [float(x) for x in sys.argv[1:]]
print(json.dumps({"b_over_a": [round(x, 3) for x in r], "median": round(statistics.median(r), 3)}))
PY
