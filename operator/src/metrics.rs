//! The operator's own Prometheus metrics, rendered on `/metrics` ([`crate::http`]).
//!
//! Series: `chat_operator_reconciles_total`, `chat_operator_reconcile_failures_total{reason}`,
//! `chat_operator_reconcile_duration_seconds` (histogram), `chat_operator_actions_total{action}`
//! (the rollout steps executed) and `chat_operator_leader` (1 while this replica holds the Lease).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Reconcile duration buckets (seconds): a reconcile is a handful of API calls plus one admin call
/// per pod, each bounded by a short timeout.
const DURATION_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Counter: reconciles started.
pub const RECONCILES: &str = "chat_operator_reconciles_total";
/// Counter: reconciles that failed, by `reason`.
pub const FAILURES: &str = "chat_operator_reconcile_failures_total";
/// Histogram: reconcile duration in seconds.
pub const DURATION: &str = "chat_operator_reconcile_duration_seconds";
/// Counter: rollout/scaling steps executed, by `action` (the step's Event reason).
pub const ACTIONS: &str = "chat_operator_actions_total";
/// Gauge: 1 while this replica is the leader (always 1 without leader election).
pub const LEADER: &str = "chat_operator_leader";

/// Installs the process-wide recorder once and returns its handle.
pub fn handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Full(DURATION.into()), DURATION_BUCKETS)
                .expect("buckets are non-empty")
                .build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!(
                    "a metrics recorder was already installed; /metrics shows only this handle's series"
                );
            }
            describe();
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!(RECONCILES, "ChatCluster reconciles started");
    metrics::describe_counter!(FAILURES, "ChatCluster reconciles that failed, by reason");
    metrics::describe_histogram!(
        DURATION,
        metrics::Unit::Seconds,
        "Time one ChatCluster reconcile took"
    );
    metrics::describe_counter!(ACTIONS, "Rollout and scaling steps executed, by action");
    metrics::describe_gauge!(
        LEADER,
        "1 while this operator replica holds the leader Lease"
    );
}
