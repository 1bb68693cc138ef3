#!/usr/bin/env bash
# Benchmarks of the embedded default (docs/benchmarks.md): idle-connection memory, latency at a
# fixed offered rate, and saturation throughput, with real WebSocket clients (chat-load).
#
#   scripts/bench.sh                 # builds release binaries, runs all three, prints JSON lines
#   GATEWAY_BIN=path scripts/bench.sh  # the same against another gateway build (a baseline)
#
# Knobs (env): IDLE_CONNECTIONS (10000), PAIRS (200), RATE (2000), DURATION (20), WINDOW (16).
# The gateway and the clients share this machine's cores: run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."

IDLE_CONNECTIONS=${IDLE_CONNECTIONS:-10000}
PAIRS=${PAIRS:-200}
RATE=${RATE:-2000}
DURATION=${DURATION:-20}
WINDOW=${WINDOW:-16}
SECRET=bench-secret

cargo build --release --locked -p chat-gateway -p chat-load >&2
GATEWAY_BIN=${GATEWAY_BIN:-target/release/chat-gateway}
LOAD=target/release/chat-load
WORK=target/bench
rm -rf "$WORK" && mkdir -p "$WORK"
PORT=18080
ADMIN=19090

start_gateway() {
  rm -rf "$WORK/data"
  # The load comes from one address: no per-address connect limit (an env var, so it is set
  # the same way for every script and build).
  CHAT_CONNECT_RATE_PER_IP=0 "$GATEWAY_BIN" serve --listen 127.0.0.1:$PORT --admin-listen 127.0.0.1:$ADMIN --data-dir "$WORK/data" \
    --jwt-secret "$SECRET" --max-connections 60000 >"$WORK/gateway.log" 2>&1 &
  GW_PID=$!
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$ADMIN/readyz" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "bench: gateway did not become ready (see $WORK/gateway.log)" >&2
  exit 1
}

stop_gateway() {
  kill "$GW_PID" 2>/dev/null || true
  wait "$GW_PID" 2>/dev/null || true
}
trap stop_gateway EXIT

URL=ws://127.0.0.1:$PORT/ws
echo "bench: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), gateway $GATEWAY_BIN" >&2

start_gateway
"$LOAD" idle --url "$URL" --jwt-secret "$SECRET" --connections "$IDLE_CONNECTIONS" \
  --server-pid "$GW_PID" --hold-seconds 10 --json | tail -1
stop_gateway

start_gateway
"$LOAD" throughput --url "$URL" --jwt-secret "$SECRET" --pairs "$PAIRS" --rate "$RATE" \
  --duration-seconds "$DURATION" --warmup-seconds 3 --json | tail -1
stop_gateway

start_gateway
"$LOAD" throughput --url "$URL" --jwt-secret "$SECRET" --pairs "$PAIRS" --window "$WINDOW" \
  --duration-seconds "$DURATION" --warmup-seconds 3 --json | tail -1
curl -s "http://127.0.0.1:$ADMIN/metrics" | grep -E '^chat_store_(batch_size|commit_seconds)_(sum|count)' >&2
stop_gateway
