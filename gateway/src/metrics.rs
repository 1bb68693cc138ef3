//! Prometheus metrics, rendered on the admin port's `/metrics`.
//!
//! Series: `chat_connections` (gauge), `chat_messages_in_total`, `chat_messages_out_total`,
//! `chat_acks_total`, `chat_retries_total`, `chat_errors_total{code}`,
//! `chat_store_commit_seconds` and `chat_store_batch_size` (histograms), `chat_store_write_seconds`
//! (histogram: a write's wait in the writer's queue plus its batch's commit) and
//! `chat_fanout_seconds` (histogram: route lookup and forwarding of one delivery — a SEND is
//! answered after both) and `chat_route_lookup_seconds` (histogram: its route lookup alone),
//! `chat_store_batch_retries_total`, `chat_draining`, and the recent-message cache's
//! `chat_recent_cache_hits_total`, `chat_recent_cache_misses_total` (reads sent to the database)
//! and `chat_recent_cache_errors_total{op}` (`read`, `write`, `queue`: a Redis failure or a full
//! write queue; never a failed request), and the Pulsar bus's `chat_bus_batch_events`
//! (histogram: events per message sent to another pod's inbox). The rarer paths' series (backend
//! health, refusals, fan-out retries, lifecycle jobs) are described in `describe_operations`;
//! every series has HELP text, and `promtool check metrics` runs on a live `/metrics` in
//! `tests/tests/metrics.rs`.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Store commit latency buckets (seconds): an fsync is ~0.1-10 ms on most disks.
const COMMIT_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];
/// Items per batch: store commits and forwarded bus messages.
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];

/// Installs the process-wide recorder once (several in-process servers share it) and returns it.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full("chat_store_commit_seconds".into()), COMMIT_BUCKETS)
                .expect("buckets are non-empty")
                .set_buckets_for_metric(Matcher::Full("chat_store_write_seconds".into()), COMMIT_BUCKETS)
                .expect("buckets are non-empty")
                .set_buckets_for_metric(Matcher::Full("chat_fanout_seconds".into()), COMMIT_BUCKETS)
                .expect("buckets are non-empty")
                .set_buckets_for_metric(Matcher::Full("chat_route_lookup_seconds".into()), COMMIT_BUCKETS)
                .expect("buckets are non-empty")
                .set_buckets_for_metric(Matcher::Full("chat_store_batch_size".into()), BATCH_BUCKETS)
                .expect("buckets are non-empty")
                .set_buckets_for_metric(Matcher::Full("chat_bus_batch_events".into()), BATCH_BUCKETS)
                .expect("buckets are non-empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics shows only this handle's series");
            }
            spawn_upkeep(handle.clone());
            describe();
            zero_counters();
            handle
        })
        .clone()
}

/// How often histogram samples are folded into their buckets.
const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The exporter keeps every histogram sample as it was recorded until something folds them into
/// the buckets: a `/metrics` render, or its upkeep. Nothing ran the upkeep, so a gateway nobody
/// scraped kept ~20 bytes for every sample of every histogram (several per message) for ever —
/// a steady 1:1 load showed the heap growing with the messages, a third of it these samples
/// (valgrind's massif). A thread of its own, so it runs whatever runtime the recorder was made in.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(UPKEEP_INTERVAL);
            handle.run_upkeep();
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no metrics upkeep thread: histograms grow until /metrics is scraped");
    }
}

/// Counters exported at 0 from the start, before anything counts: a `rate()` then sees the
/// first increment, and an alert comparing two of them (`chat_webhook_retried_total` unless
/// `chat_webhook_sent_total`) has both sides. The chart's dashboard and alerts read these.
const ZEROED_COUNTERS: &[&str] = &[
    "chat_messages_in_total",
    "chat_messages_out_total",
    "chat_acks_total",
    "chat_retries_total",
    "chat_store_batch_retries_total",
    "chat_fanout_retries_total",
    "chat_fanout_retries_dropped_total",
    "chat_pending_fanouts_recorded_total",
    "chat_pending_fanouts_swept_total",
    "chat_pending_fanouts_given_up_total",
    "chat_webhook_sent_total",
    "chat_webhook_retried_total",
    "chat_webhook_failed_total",
];

/// The `limit` label values of `chat_limited_total`, exported at 0 like [`ZEROED_COUNTERS`].
const LIMITS: &[&str] = &["connect_per_ip", "max_connections", "user_sends"];

/// Registers [`ZEROED_COUNTERS`] and `chat_limited_total{limit}`. An increment of 0, not a reset:
/// with another recorder installed first, its counts stay.
fn zero_counters() {
    for name in ZEROED_COUNTERS {
        metrics::counter!(*name).increment(0);
    }
    for limit in LIMITS {
        metrics::counter!("chat_limited_total", "limit" => *limit).increment(0);
    }
}

fn describe() {
    metrics::describe_gauge!(
        "chat_connections",
        "WebSocket connections held by this process"
    );
    metrics::describe_counter!("chat_messages_in_total", "Messages stored (reply 0 sent)");
    metrics::describe_counter!(
        "chat_messages_out_total",
        "Message pushes written to devices, retries included"
    );
    metrics::describe_counter!("chat_acks_total", "ACK (15) frames received");
    metrics::describe_counter!(
        "chat_limited_total",
        "Requests refused by an abuse limit, by limit: connect_per_ip (429), max_connections (503), user_sends (ERROR 429)"
    );
    metrics::describe_counter!(
        "chat_slow_clients_total",
        "Connections closed 1013: a write waited --write-timeout-seconds for a client that stopped reading"
    );
    metrics::describe_counter!("chat_retries_total", "Pushes resent after the ack timeout");
    metrics::describe_counter!(
        "chat_errors_total",
        "Errors returned to clients, by status code"
    );
    metrics::describe_histogram!(
        "chat_store_commit_seconds",
        "Time to run and commit one store batch"
    );
    metrics::describe_histogram!(
        "chat_store_write_seconds",
        "Time from queueing a store write to its result: the wait for the writer plus its batch's commit"
    );
    metrics::describe_histogram!(
        "chat_fanout_seconds",
        "Time to look up the recipients' routes and hand a delivery to local sessions and other pods' inboxes"
    );
    metrics::describe_histogram!(
        "chat_route_lookup_seconds",
        "Time to look up the recipients' routes of one delivery (the route table: Redis in cluster mode)"
    );
    metrics::describe_histogram!(
        "chat_store_batch_size",
        "Commands per store transaction (group commit)"
    );
    metrics::describe_counter!(
        "chat_store_batch_retries_total",
        "Store batches run again after a conflict with another pod's writer (PostgreSQL)"
    );
    metrics::describe_gauge!("chat_draining", "1 while this process drains");
    metrics::describe_histogram!(
        "chat_bus_batch_events",
        "Events per message sent to another pod's inbox (forwarding batches grow with the load)"
    );
    metrics::describe_counter!(
        "chat_recent_cache_hits_total",
        "Conversation pages (SYNC, catch-up) read whole from the Redis recent cache"
    );
    metrics::describe_counter!(
        "chat_recent_cache_misses_total",
        "Conversation pages read from the database because the recent cache lacked part of them"
    );
    metrics::describe_counter!(
        "chat_recent_cache_errors_total",
        "Recent cache failures by op (read, write, queue); each one falls back to the database"
    );
    metrics::describe_counter!(
        "chat_webhook_sent_total",
        "Offline-push webhook deliveries the receiver took (2xx)"
    );
    metrics::describe_counter!(
        "chat_webhook_retried_total",
        "Offline-push webhook attempts that failed (error, timeout, 5xx, 408, 429) and were rescheduled"
    );
    metrics::describe_counter!(
        "chat_webhook_failed_total",
        "Offline-push webhook deliveries given up: the retry window ran out, or the receiver refused (4xx)"
    );
    describe_operations();
}

/// The series of the rarer paths: health, security refusals, retries of the fan-out, lifecycle
/// jobs. Every series the gateway exports has its HELP text (`promtool check metrics`).
fn describe_operations() {
    metrics::describe_gauge!(
        "chat_backend_up",
        "1 while a backend (store, routes, bus) answers, 0 while it is down, by backend"
    );
    metrics::describe_gauge!(
        "chat_route_table_down",
        "1 while the route table (Redis) is unreachable and this pod re-announces its devices later"
    );
    metrics::describe_counter!(
        "chat_startup_backend_failures_total",
        "Start-up attempts that found a backend unreachable (the pod stays unready and retries)"
    );
    metrics::describe_counter!(
        "chat_admin_unauthorized_total",
        "Admin port requests refused 401 for a missing or wrong admin token"
    );
    metrics::describe_counter!(
        "chat_origin_refused_total",
        "WebSocket upgrades refused 403 for an Origin not in --allowed-origins"
    );
    metrics::describe_counter!(
        "chat_revoked_tokens_refused_total",
        "Upgrades refused 401 for a token issued before its user's or device's revocation"
    );
    metrics::describe_counter!(
        "chat_dropped_notices_total",
        "Notices (presence, typing, read marks) dropped for a session whose inbox was full or closed"
    );
    metrics::describe_counter!(
        "chat_presence_dropped_total",
        "Presence changes not forwarded to other pods because the forwarding queue was full"
    );
    metrics::describe_counter!(
        "chat_typing_dropped_total",
        "TYPING frames dropped by the per-conversation typing rate"
    );
    metrics::describe_counter!(
        "chat_fanout_retries_total",
        "Deliveries queued for another try after the route table or the bus failed"
    );
    metrics::describe_counter!(
        "chat_fanout_retries_dropped_total",
        "Queued delivery retries dropped: too old, or the retry queue was full (clients catch up by SYNC)"
    );
    metrics::describe_gauge!(
        "chat_fanout_retries_waiting",
        "Deliveries waiting in the fan-out retry queue"
    );
    metrics::describe_gauge!(
        "chat_pending_fanouts",
        "Rows in pending_fanouts: failed fan-outs recorded so any pod finishes them (0 normally)"
    );
    metrics::describe_counter!(
        "chat_pending_fanouts_recorded_total",
        "Failed fan-outs this pod recorded in pending_fanouts"
    );
    metrics::describe_counter!(
        "chat_pending_fanouts_swept_total",
        "Pending fan-outs whose lease ran out that this pod pushed"
    );
    metrics::describe_counter!(
        "chat_pending_fanouts_given_up_total",
        "Pending fan-outs over 10 min old dropped (clients catch up by SYNC)"
    );
    metrics::describe_counter!("chat_recalls_total", "Messages recalled (RECALL, 32)");
    metrics::describe_counter!("chat_files_uploaded_total", "Files uploaded and indexed");
    metrics::describe_counter!(
        "chat_files_swept_total",
        "Uploaded files deleted because no message referenced them in time"
    );
    metrics::describe_counter!(
        "chat_retention_purged_total",
        "Messages deleted by the retention job"
    );
    metrics::describe_counter!(
        "chat_users_erased_total",
        "Users erased (DELETE /api/users/{id})"
    );
}
