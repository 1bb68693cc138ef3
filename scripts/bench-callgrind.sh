#!/usr/bin/env bash
# Instructions the gateway spends per delivered message, counted by callgrind: unlike times, the
# count does not swing with this VM's speed, so builds compare exactly. The embedded default
# (SQLite) takes a paced 1:1 load twice, SHORT and LONG seconds long; the difference between the
# two runs' instructions over the difference in delivered messages leaves start-up, connection
# set-up and shutdown out.
#
#   scripts/bench-callgrind.sh                      # this tree's release build
#   GATEWAY_BIN=path scripts/bench-callgrind.sh     # another build (a baseline), same load tool
#
# Knobs (env): PAIRS (10), RATE (100 msg/s: what the gateway keeps up with under valgrind),
# SHORT (5), LONG (15), LOAD_BIN (target/release/chat-load), KEEP (a folder to keep the callgrind
# files in, for callgrind_annotate). Prints one JSON line.
set -euo pipefail
cd "$(dirname "$0")/.."

PAIRS=${PAIRS:-10}
RATE=${RATE:-100}
SHORT=${SHORT:-5}
LONG=${LONG:-15}
SECRET=bench-secret
command -v valgrind >/dev/null || { echo "bench-callgrind: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
if [ -z "${GATEWAY_BIN:-}" ] || [ -z "${LOAD_BIN:-}" ]; then
  cargo build --release --locked -p chat-gateway -p chat-load >&2
fi
GATEWAY_BIN=${GATEWAY_BIN:-target/release/chat-gateway}
LOAD_BIN=${LOAD_BIN:-target/release/chat-load}
WORK=$(mktemp -d -t chat-callgrind.XXXXXX)
trap 'kill "${GW_PID:-}" 2>/dev/null || true; rm -rf "$WORK"' EXIT
PORT=18180
ADMIN=19190

# One run of `seconds`: prints "<instructions> <delivered>".
run() {
  local seconds=$1 out="$WORK/callgrind.$1"
  rm -rf "$WORK/data"
  CHAT_CONNECT_RATE_PER_IP=0 CHAT_USER_SEND_RATE=0 valgrind --tool=callgrind --callgrind-out-file="$out" "$GATEWAY_BIN" serve \
    --listen 127.0.0.1:$PORT --admin-listen 127.0.0.1:$ADMIN --data-dir "$WORK/data" \
    --jwt-secret "$SECRET" --drain-seconds 0 >"$WORK/gateway.$seconds.log" 2>&1 &
  GW_PID=$!
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$ADMIN/readyz" >/dev/null 2>&1 && break
    sleep 0.1
  done
  local report
  report=$("$LOAD_BIN" throughput --url ws://127.0.0.1:$PORT/ws --jwt-secret "$SECRET" \
    --pairs "$PAIRS" --rate "$RATE" --duration-seconds "$seconds" --warmup-seconds 1 \
    --drain-seconds 10 --json | tail -1)
  kill -TERM "$GW_PID"
  wait "$GW_PID" 2>/dev/null || true
  local instructions delivered lost
  instructions=$(grep -E '^(summary|totals):' "$out" | head -1 | awk '{print $2}')
  delivered=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["delivered_total"])' "$report")
  lost=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["lost"])' "$report")
  [ "$lost" = 0 ] || { echo "bench-callgrind: $lost messages lost" >&2; exit 1; }
  if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp "$out" "$KEEP/"; fi
  echo "$instructions $delivered"
}

read -r short_ir short_n < <(run "$SHORT")
read -r long_ir long_n < <(run "$LONG")
python3 - "$GATEWAY_BIN" "$short_ir" "$short_n" "$long_ir" "$long_n" <<'PY'
import json, sys
gw, si, sn, li, ln = sys.argv[1], *map(int, sys.argv[2:])
print(json.dumps({"gateway": gw, "short": {"instructions": si, "delivered": sn},
                  "long": {"instructions": li, "delivered": ln},
                  "instructions_per_message": round((li - si) / (ln - sn))}))
PY
