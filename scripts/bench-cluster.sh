#!/usr/bin/env bash
# Cluster-mode benchmarks (docs/benchmarks.md, issue 3): gateways on PostgreSQL, a Redis route
# table and Pulsar forwarding (the project's Pulsar-protocol test broker), measured with chat-load.
#
#   scripts/bench-cluster.sh          # builds release binaries; runs 1 pod, then 3 pods; JSON lines
#
# Each layout runs the same two measurements: latency at a fixed offered rate, and saturation.
# With 3 pods chat-load puts each sender on the pod after its recipient's, so every message is
# forwarded from one pod to another through its inbox topic. With 1 pod nothing is forwarded:
# that run is the baseline the 3-pod saturation is compared with.
#
# Knobs (env): PAIRS (200), RATE (2000), DURATION (20), WINDOW (16), PODS (3), LAYOUTS ("1 $PODS":
# the pod counts to run), RUNS ("rate saturation"), PG_FSYNC (on; "off" measures without the
# disk's fsync), PG_OPTS (more `-c name=value` settings for the server), PG_WARM_WAL (1; 0 runs
# on WAL segments created on the fly, as a fresh server does: see warm_wal), PG_STATS (0; 1 loads
# pg_stat_statements and prints where PostgreSQL's time went: planning and execution per
# statement, how many updates were HOT, and the WAL written), TIMELINE_MS (unset; N adds send ->
# delivered for each N ms of the measured window to the JSON: a tail made of a few stalls reads
# differently from one spread over the run), NEIGHBOUR (unset; "BUSY/IDLE" in ms, e.g. "10/5",
# runs a process beside each measurement that burns a core for BUSY ms then sleeps IDLE ms, as a
# noisy neighbour on a shared host would: 10/5 takes two thirds of a core). After each run the
# CPU seconds each process used (the load client's and the neighbour's too) and the pods' latency
# histograms, summed over pods (scripts/metrics-summary.py: store write, commit, fan-out, route
# lookup; and the counters that mean trouble), go to stderr. Everything the run starts lives
# under target/bench-cluster and is stopped on exit. Needs redis-server and PostgreSQL's
# initdb/postgres/psql (scripts/install-test-deps.sh installs them). The servers and the clients
# share this machine's cores: run it on a quiet machine.
set -euo pipefail
cd "$(dirname "$0")/.."

PAIRS=${PAIRS:-200}
RATE=${RATE:-2000}
DURATION=${DURATION:-20}
WINDOW=${WINDOW:-16}
PODS=${PODS:-3}
PG_FSYNC=${PG_FSYNC:-on}
PG_OPTS=${PG_OPTS:-}
PG_WARM_WAL=${PG_WARM_WAL:-1}
PG_STATS=${PG_STATS:-0}
TIMELINE_MS=${TIMELINE_MS:-}
NEIGHBOUR=${NEIGHBOUR:-}
LAYOUTS=${LAYOUTS:-1 $PODS}
RUNS=${RUNS:-rate saturation}
SECRET=bench-secret

cargo build --release --locked -p chat-gateway -p chat-load -p pulsar-test-broker >&2
GATEWAY_BIN=${GATEWAY_BIN:-target/release/chat-gateway}
LOAD=target/release/chat-load
BROKER=target/release/pulsar-test-broker
WORK=$PWD/target/bench-cluster
PG_PORT=15432
REDIS_PORT=16379
BROKER_PORT=16650
BROKER_ADMIN=18081
# The fresh server's own database: each layout starts from a new initdb.
DATABASE_URL=postgres://postgres@127.0.0.1:$PG_PORT/postgres

# pg_bin, pg_sql, as_pg, stop_all, wait_for, start_backends, warm_wal, start_pods.
source scripts/lib/cluster.sh
PIDS=()
trap stop_all EXIT
cluster_tools

echo "bench-cluster: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), PostgreSQL fsync=$PG_FSYNC, gateway $GATEWAY_BIN" >&2

# CPU seconds used so far by each process this script started (and PostgreSQL's), to stderr.
cpu_report() {
  local pg=""
  if [ -f "$WORK/pg/data/postmaster.pid" ]; then
    pg=$(head -1 "$WORK/pg/data/postmaster.pid")
    pg+=$(pgrep -d, -P "$pg" | sed 's/^/,/' || true)
  fi
  ps -o comm=,args=,times= -p "$(IFS=,; echo "${PIDS[*]}")${pg:+,$pg}" 2>/dev/null |
    awk '{ name = $1; for (i = 2; i < NF; i++) if ($i == "--pod-name") name = $(i + 1);
           cpu[name] += $NF } END { for (n in cpu) printf "  cpu %-20s %6d s\n", n, cpu[n] }' >&2
}

# The statements PostgreSQL spent the most time on (planning + execution), to stderr.
pg_report() {
  pg_sql -P pager=off -c "
    SELECT calls, round(total_plan_time) AS plan_ms, round(total_exec_time) AS exec_ms,
           rows, left(regexp_replace(query, '\s+', ' ', 'g'), 90) AS query
    FROM pg_stat_statements ORDER BY total_plan_time + total_exec_time DESC LIMIT 15" >&2
  # Updates that had to write new index entries (not HOT) cost the most per row.
  pg_sql -P pager=off -c "
    SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd, n_tup_del, n_live_tup
    FROM pg_stat_user_tables ORDER BY relname" >&2
  # The WAL written, full-page images counted apart.
  pg_sql -P pager=off -c "
    SELECT wal_records, wal_fpi, pg_size_pretty(wal_bytes) AS wal, wal_buffers_full, wal_write, wal_sync
    FROM pg_stat_wal" >&2
}

# A CPU-burning process (NEIGHBOUR="BUSY/IDLE" ms), stopped with the servers.
start_neighbour() {
  python3 -c '
import sys, time
busy, idle = (float(ms) / 1000 for ms in sys.argv[1].split("/"))
while True:
    start = time.perf_counter()
    while time.perf_counter() - start < busy:
        pass
    time.sleep(idle)' "$NEIGHBOUR" &
  PIDS+=($!)
}

for pods in $LAYOUTS; do
  for run in $RUNS; do
    case $run in
      rate) load=(--rate "$RATE"); echo "== $pods pod(s): fixed rate $RATE msg/s" >&2 ;;
      saturation) load=(--window "$WINDOW"); echo "== $pods pod(s): saturation, window $WINDOW" >&2 ;;
      *) echo "bench-cluster: RUNS takes rate and saturation, not $run" >&2; exit 1 ;;
    esac
    start_backends
    start_pods "$pods"
    [ -n "$NEIGHBOUR" ] && start_neighbour
    TIMEFORMAT="  cpu chat-load (client)   %U user + %S sys s"
    time "$LOAD" throughput --url "$URLS" --jwt-secret "$SECRET" --pairs "$PAIRS" "${load[@]}" \
      --duration-seconds "$DURATION" --warmup-seconds 3 ${TIMELINE_MS:+--timeline-ms "$TIMELINE_MS"} --json | tail -1
    cpu_report
    python3 scripts/metrics-summary.py $(for i in $(seq 0 $((pods - 1))); do echo "http://127.0.0.1:2909$i/metrics"; done)
    [ "$PG_STATS" = 1 ] && pg_report
    stop_all
  done
done
