# Start-up of a local cluster for the benchmarks: a fresh PostgreSQL, Redis, the project's Pulsar
# test broker, and gateway pods on them. Sourced by scripts/bench-cluster.sh and
# scripts/bench-peers.sh; it defines functions only.
#
# The caller sets: WORK (a directory this owns: start_backends empties it), PG_PORT, REDIS_PORT,
# BROKER_PORT, BROKER_ADMIN, DATABASE_URL, PG_FSYNC, PG_OPTS, PG_STATS, PG_WARM_WAL, GATEWAY_BIN,
# BROKER (the test broker's binary), SECRET, and an array PIDS (processes to stop); optionally
# POD_PORT and POD_ADMIN_PORT (pod i listens on POD_PORT + i and POD_ADMIN_PORT + i; defaults
# 28080 and 29090). Call cluster_tools once before the rest; stop_all stops everything.

# The name errors are reported under.
cluster_log_name() { basename "$0" .sh; }

# Checks for redis-server and PostgreSQL's binaries; sets PG_BIN.
cluster_tools() {
  PG_BIN=$(pg_bin)
  command -v redis-server >/dev/null || {
    echo "$(cluster_log_name): redis-server not found (scripts/install-test-deps.sh installs it)" >&2
    exit 1
  }
}

# The directory of PostgreSQL's own binaries (an initdb on the PATH may be a link to it).
pg_bin() {
  for dir in $(command -v initdb | xargs -r readlink -f | xargs -r dirname) /usr/lib/postgresql/*/bin; do
    [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ] && [ -x "$dir/psql" ] && { echo "$dir"; return; }
  done
  echo "$(cluster_log_name): PostgreSQL's initdb/postgres/psql not found (scripts/install-test-deps.sh installs them)" >&2
  exit 1
}

# psql against the bench's server.
pg_sql() { "$PG_BIN/psql" -h "$WORK/pg" -p "$PG_PORT" -U postgres -X "$@"; }

# initdb and postgres refuse to run as root.
as_pg() {
  local cmd=$1; shift
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$PG_BIN/$cmd" "$@"; else "$PG_BIN/$cmd" "$@"; fi
}

# The postmaster's pid, empty when PostgreSQL is not running.
pg_pid() {
  if [ -f "$WORK/pg/data/postmaster.pid" ]; then head -1 "$WORK/pg/data/postmaster.pid"; fi
}

stop_all() {
  for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  PIDS=()
  if [ -f "$WORK/pg/data/postmaster.pid" ]; then
    as_pg pg_ctl -D "$WORK/pg/data" -m fast stop >/dev/null 2>&1 || true
  fi
}

wait_for() { # url what
  for _ in $(seq 300); do
    curl -sf "$1" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "$(cluster_log_name): $2 did not come up ($1; logs in $WORK)" >&2
  exit 1
}

# A Redis without persistence on REDIS_PORT; sets REDIS_PID.
start_redis() {
  redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no >"$WORK/redis.log" 2>&1 &
  REDIS_PID=$!
  PIDS+=("$REDIS_PID")
}

# Fresh servers for each layout, so the runs start from the same empty state; sets REDIS_PID and
# BROKER_PID.
start_backends() {
  rm -rf "$WORK" && mkdir -p "$WORK/pg"
  [ "$(id -u)" = 0 ] && chown postgres "$WORK/pg"
  as_pg initdb -D "$WORK/pg/data" -U postgres --auth=trust -E UTF8 >"$WORK/initdb.log" 2>&1
  local stats=""
  [ "$PG_STATS" = 1 ] && stats="-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track_planning=on"
  as_pg pg_ctl -D "$WORK/pg/data" -l "$WORK/pg/postgres.log" -w start \
    -o "-p $PG_PORT -k $WORK/pg -c listen_addresses=127.0.0.1 -c fsync=$PG_FSYNC -c max_connections=200 -c shared_buffers=256MB $stats $PG_OPTS" >/dev/null
  [ "$PG_STATS" = 1 ] && pg_sql -qc 'CREATE EXTENSION pg_stat_statements' >/dev/null
  start_redis
  "$BROKER" --port "$BROKER_PORT" --admin-port "$BROKER_ADMIN" >"$WORK/broker.log" 2>&1 &
  BROKER_PID=$!
  PIDS+=("$BROKER_PID")
  wait_for "http://127.0.0.1:$BROKER_ADMIN/admin/v2/tenants" "the Pulsar test broker"
  # Tenant and namespace, as the operator provisions them.
  curl -sf -X PUT -H 'Content-Type: application/json' -d '{}' "http://127.0.0.1:$BROKER_ADMIN/admin/v2/tenants/public" >/dev/null || true
  curl -sf -X PUT -H 'Content-Type: application/json' -d '{}' "http://127.0.0.1:$BROKER_ADMIN/admin/v2/namespaces/public/chat" >/dev/null || true
  "$GATEWAY_BIN" migrate --database-url "$DATABASE_URL" >&2
  if [ "$PG_WARM_WAL" = 1 ]; then warm_wal; fi
}

# A fresh cluster creates each 16 MB WAL segment by writing it full of zeros and syncing it,
# and commits wait meanwhile: at 2,000 msg/s (~2.6 MB of WAL a second) that stalled every pod's
# writes for ~50 ms every ~6 s. A server that has been running recycles the segments of past
# checkpoints instead, so the bench writes ~150 MB of throwaway WAL and checkpoints first:
# the run then measures that steady state.
warm_wal() {
  pg_sql -q -v ON_ERROR_STOP=1 -c "
    CREATE TABLE wal_warmup AS SELECT repeat('x', 1000) AS pad FROM generate_series(1, 150000)" \
    -c "DROP TABLE wal_warmup" -c "CHECKPOINT" >&2
}

# start_pods N [serve flags...]: N gateways on PostgreSQL, Redis and the broker, pod i on ports
# POD_PORT + i (public) and POD_ADMIN_PORT + i (admin); sets URLS and POD_PIDS.
start_pods() {
  local pods=$1; shift
  local port=${POD_PORT:-28080} admin=${POD_ADMIN_PORT:-29090}
  URLS=""
  POD_PIDS=()
  for i in $(seq 0 $((pods - 1))); do
    CHAT_CONNECT_RATE_PER_IP=0 CHAT_USER_SEND_RATE=0 "$GATEWAY_BIN" serve --listen 127.0.0.1:$((port + i)) --admin-listen 127.0.0.1:$((admin + i)) \
      --pod-name pod-$i --data-dir "$WORK/pod-$i" --jwt-secret "$SECRET" --max-connections 60000 \
      --database-url "$DATABASE_URL" \
      --redis-url "redis://127.0.0.1:$REDIS_PORT" --key-prefix bench \
      --pulsar-url "pulsar://127.0.0.1:$BROKER_PORT" --pulsar-admin-url "http://127.0.0.1:$BROKER_ADMIN" \
      --pulsar-tenant public --pulsar-namespace chat "$@" >"$WORK/pod-$i.log" 2>&1 &
    PIDS+=($!)
    POD_PIDS+=($!)
    URLS+="${URLS:+,}ws://127.0.0.1:$((port + i))/ws"
  done
  for i in $(seq 0 $((pods - 1))); do wait_for "http://127.0.0.1:$((admin + i))/readyz" "pod-$i"; done
}
