#!/usr/bin/env bash
# The peer baseline of issue 15: chat-gateway against a Socket.IO 4.8 server doing the same
# exchange without storing anything (bench/peers/socketio-server.js), both driven by one Node load
# client with the same traffic (bench/peers/load.js). Runs are interleaved in PAIRS pairs, the
# first of each pair alternating, every run on fresh servers; the end is a table of the ratios
# gateway / Socket.IO per pair and their medians (bench/peers/README.md says what they mean).
#
#   scripts/bench-peers.sh                                     # all scenarios, 3 pairs
#   SCENARIOS="saturation rate5000" PAIRS=5 scripts/bench-peers.sh
#   GATEWAY_BIN=path BROKER_BIN=path scripts/bench-peers.sh    # other builds
#
# Scenarios (SCENARIOS, default all four):
#   saturation  1:1, LOAD_PAIRS pairs, WINDOW messages per sender not yet delivered (WINDOW_UNTIL
#               =reply: not yet answered, as chat-load's window)
#   rate5000    1:1, LOAD_PAIRS pairs, RATE msg/s paced evenly
#   group       one sender, GROUP_SIZE online members acking every delivery, GROUP_WINDOW group
#               messages not yet delivered to all
#   cross-pod   3 gateway pods on PostgreSQL, Redis and the Pulsar test broker against 3 Socket.IO
#               processes on its Redis adapter; each sender sits on the process after its
#               recipient's, so every message crosses processes; CROSS_RATE msg/s offered (empty:
#               saturation with WINDOW). Server CPU sums the pods, PostgreSQL and Redis against the
#               Node processes and Redis; the broker's CPU is reported apart.
#
# Knobs (env): PAIRS (3), LOAD_PAIRS (200), WINDOW (16), WINDOW_UNTIL (delivered), RATE (5000),
# GROUP_SIZE (10000), GROUP_WINDOW (4), CROSS_RATE (10000), DURATION (20), WARMUP (3),
# MESSAGE_BYTES (64), LOAD_PROCS (1: load processes), PG_FSYNC (on), KEEP (a folder to copy the
# results and every run's server logs to).
# It does not build: GATEWAY_BIN (target/release/chat-gateway) and, for cross-pod, BROKER_BIN
# (target/release/pulsar-test-broker) must exist. Needs Node 20 and npm (bench/peers is
# installed with npm ci when its node_modules is missing); cross-pod needs redis-server and
# PostgreSQL (scripts/install-test-deps.sh). Prints one JSON line per run (load.js's, with
# scenario, pair and order added), then the table; the load's summaries and progress go to
# stderr. Servers and load share this machine's cores: run it on a quiet machine.
set -euo pipefail
KEEP=${KEEP:+$(realpath -m -- "$KEEP")}
cd "$(dirname "$0")/.."

PAIRS=${PAIRS:-3}
SCENARIOS=${SCENARIOS:-saturation rate5000 group cross-pod}
LOAD_PAIRS=${LOAD_PAIRS:-200}
WINDOW=${WINDOW:-16}
WINDOW_UNTIL=${WINDOW_UNTIL:-delivered}
RATE=${RATE:-5000}
GROUP_SIZE=${GROUP_SIZE:-10000}
GROUP_WINDOW=${GROUP_WINDOW:-4}
CROSS_RATE=${CROSS_RATE-10000}
DURATION=${DURATION:-20}
WARMUP=${WARMUP:-3}
MESSAGE_BYTES=${MESSAGE_BYTES:-64}
LOAD_PROCS=${LOAD_PROCS:-1}
PG_FSYNC=${PG_FSYNC:-on}
GATEWAY_BIN=${GATEWAY_BIN:-target/release/chat-gateway}
BROKER=${BROKER_BIN:-target/release/pulsar-test-broker}
SECRET=bench-secret
PEERS=bench/peers
PODS=3

# Ports apart from the other bench scripts', so a run here does not meet one of theirs.
GW_PORT=38080
GW_ADMIN=39090
SIO_PORT=38180
POD_PORT=38280
POD_ADMIN_PORT=39280
PG_PORT=35432
REDIS_PORT=36379
BROKER_PORT=36650
BROKER_ADMIN=36680
DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres
PG_OPTS=""
PG_STATS=0
PG_WARM_WAL=1
# Rate limiting is per connection and would throttle the load, not measure the server.
GATEWAY_FLAGS=(--drain-seconds 0 --rate-limit-per-second 1000000 --rate-burst 1000000
  --user-send-rate 0 --connect-rate-per-ip 0)

TMP=$(mktemp -d -t chat-peers.XXXXXX)
# PostgreSQL runs as its own user and must reach its directory under here.
chmod 755 "$TMP"
WORK=$TMP/servers
RESULTS=$TMP/results.jsonl
: >"$RESULTS"

# pg_bin, as_pg, pg_pid, stop_all, wait_for, start_redis, start_backends, start_pods.
source scripts/lib/cluster.sh
PIDS=()
RUNNING=""
# save_logs NAME: the servers' logs of the run that just ended, under logs/NAME.
save_logs() {
  mkdir -p "$TMP/logs/$1"
  if [ -d "$WORK" ]; then find "$WORK" -maxdepth 2 -name '*.log' -exec cp {} "$TMP/logs/$1/" \; ; fi
}
finish() {
  stop_all
  if [ -n "${KEEP:-}" ]; then
    if [ -n "$RUNNING" ]; then save_logs "$RUNNING-unfinished"; fi
    mkdir -p "$KEEP" && cp -r "$TMP/logs" "$RESULTS" "$KEEP"/
  fi
  rm -rf "$TMP"
}
trap finish EXIT

fail() {
  echo "bench-peers: $*" >&2
  exit 1
}

node -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 20 ? 0 : 1)' 2>/dev/null ||
  fail "needs Node 20 or later on the PATH"
if [ ! -d "$PEERS/node_modules" ]; then (cd "$PEERS" && npm ci --no-audit --no-fund >&2); fi
[ -x "$GATEWAY_BIN" ] || fail "no gateway at $GATEWAY_BIN (cargo build --release -p chat-gateway, or set GATEWAY_BIN)"
case " $SCENARIOS " in
  *" cross-pod "*)
    [ -x "$BROKER" ] || fail "no test broker at $BROKER (cargo build --release -p pulsar-test-broker, or set BROKER_BIN)"
    cluster_tools ;;
esac
for scenario in $SCENARIOS; do
  case $scenario in saturation | rate5000 | group | cross-pod) ;; *) fail "unknown scenario $scenario" ;; esac
done

# A group's sockets sit in one server process and are spread over the load processes.
ulimit -n "$(ulimit -Hn)"
case " $SCENARIOS " in
  *" group "*)
    fds=$(ulimit -n)
    [ "$fds" = unlimited ] || [ $((GROUP_SIZE / LOAD_PROCS + 200)) -le "$fds" ] ||
      fail "GROUP_SIZE=$GROUP_SIZE needs more than the $fds open files a process may have here; raise LOAD_PROCS or lower GROUP_SIZE"
    ;;
esac

# Each start_* leaves the servers' pids in PIDS and sets URLS, SERVER_PIDS and AUX_PIDS.
start_gateway_single() {
  rm -rf "$WORK" && mkdir -p "$WORK"
  "$GATEWAY_BIN" serve --listen 127.0.0.1:$GW_PORT --admin-listen 127.0.0.1:$GW_ADMIN \
    --data-dir "$WORK/data" --jwt-secret "$SECRET" --max-connections 60000 "${GATEWAY_FLAGS[@]}" \
    >"$WORK/gateway.log" 2>&1 &
  PIDS+=($!)
  SERVER_PIDS=$!
  AUX_PIDS=""
  URLS=ws://127.0.0.1:$GW_PORT/ws
  wait_for "http://127.0.0.1:$GW_ADMIN/readyz" "the gateway"
}

# start_socketio PORT [flags]: one Socket.IO process; sets SIO_PID.
start_socketio() {
  local port=$1; shift
  node "$PEERS/socketio-server.js" --port "$port" --jwt-secret "$SECRET" "$@" >"$WORK/socketio-$port.log" 2>&1 &
  SIO_PID=$!
  PIDS+=("$SIO_PID")
}

start_socketio_single() {
  rm -rf "$WORK" && mkdir -p "$WORK"
  start_socketio $SIO_PORT
  SERVER_PIDS=$SIO_PID
  AUX_PIDS=""
  URLS=http://127.0.0.1:$SIO_PORT
  wait_for "$URLS/readyz" "the Socket.IO server"
}

start_gateway_cluster() {
  start_backends
  start_pods $PODS "${GATEWAY_FLAGS[@]}"
  SERVER_PIDS="$(IFS=,; echo "${POD_PIDS[*]}"),$(pg_pid),$REDIS_PID"
  AUX_PIDS=$BROKER_PID
}

start_socketio_cluster() {
  rm -rf "$WORK" && mkdir -p "$WORK"
  start_redis
  SERVER_PIDS=""
  URLS=""
  for i in $(seq 0 $((PODS - 1))); do
    start_socketio $((SIO_PORT + 200 + i)) --redis "redis://127.0.0.1:$REDIS_PORT"
    SERVER_PIDS+="$SIO_PID,"
    URLS+="${URLS:+,}http://127.0.0.1:$((SIO_PORT + 200 + i))"
  done
  SERVER_PIDS+=$REDIS_PID
  AUX_PIDS=""
  for url in ${URLS//,/ }; do wait_for "$url/readyz" "a Socket.IO process"; done
}

# run SCENARIO TARGET PAIR ORDER: one measurement on fresh servers; its JSON line to stdout.
run() {
  local scenario=$1 target=$2 pair=$3 order=$4 load layout=single
  case $scenario in
    saturation) load=(--pairs "$LOAD_PAIRS" --window "$WINDOW") ;;
    rate5000) load=(--pairs "$LOAD_PAIRS" --rate "$RATE") ;;
    group) load=(--group-size "$GROUP_SIZE" --window "$GROUP_WINDOW") ;;
    cross-pod)
      layout=cluster
      if [ -n "$CROSS_RATE" ]; then load=(--pairs "$LOAD_PAIRS" --rate "$CROSS_RATE"); else load=(--pairs "$LOAD_PAIRS" --window "$WINDOW"); fi ;;
  esac
  echo "== $scenario, pair $pair ($order): $target" >&2
  RUNNING=$scenario-$pair-$target
  "start_${target}_${layout}"
  local out
  out=$(node "$PEERS/load.js" --target "$target" --url "$URLS" --server-pids "$SERVER_PIDS" \
    ${AUX_PIDS:+--aux-pids "$AUX_PIDS"} --jwt-secret "$SECRET" --warmup-seconds "$WARMUP" \
    --duration-seconds "$DURATION" --message-bytes "$MESSAGE_BYTES" --procs "$LOAD_PROCS" \
    --window-until "$WINDOW_UNTIL" \
    --label "scenario=$scenario" --label "pair=$pair" --label "order=$order" "${load[@]}") ||
    fail "load.js failed on $scenario/$target (KEEP=dir keeps the servers' logs)"
  stop_all
  save_logs "$RUNNING"
  RUNNING=""
  sed '$d' <<<"$out" >&2
  tail -1 <<<"$out" | tee -a "$RESULTS"
}

echo "bench-peers: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), gateway $GATEWAY_BIN, $(node --version), scenarios: $SCENARIOS, $PAIRS pair(s)" >&2
for scenario in $SCENARIOS; do
  for pair in $(seq 1 "$PAIRS"); do
    # Alternate which target goes first, so a drift in the machine's speed favours neither.
    if [ $((pair % 2)) = 1 ]; then order="gateway socketio"; else order="socketio gateway"; fi
    for target in $order; do run "$scenario" "$target" "$pair" "${order%% *}-first"; done
  done
done
echo
node "$PEERS/ratios.js" "$RESULTS"
