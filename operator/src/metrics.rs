//! The operator's own Prometheus metrics, rendered on `/metrics` ([`crate::http`]).
//!
//! Series: `chat_operator_reconciles_total`, `chat_operator_reconcile_failures_total{reason}`,
//! `chat_operator_reconcile_duration_seconds` (histogram), `chat_operator_actions_total{action}`
//! (the rollout steps executed) and `chat_operator_leader` (1 while this replica holds the Lease);
//! and per ChatCluster (labels `chatcluster_namespace`, `chatcluster`), from the status each
//! reconcile computes: `chat_operator_cluster_replicas` (wanted), `…_ready_replicas`,
//! `…_rollout_active` and `…_updated_replicas`, which the chart's alerts use (no ready pods, pods
//! unready, rollout stuck). The ChatCluster's namespace is not called `namespace`: a scrape adds
//! that label itself (the operator pod's namespace).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::crd::ChatClusterStatus;

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
/// Gauge per ChatCluster: `spec.replicas`.
pub const CLUSTER_REPLICAS: &str = "chat_operator_cluster_replicas";
/// Gauge per ChatCluster: `status.readyReplicas`.
pub const CLUSTER_READY: &str = "chat_operator_cluster_ready_replicas";
/// Gauge per ChatCluster: 1 while a pod-by-pod rollout runs (`status.rollout` is set).
pub const ROLLOUT_ACTIVE: &str = "chat_operator_cluster_rollout_active";
/// Gauge per ChatCluster: pods already on the rollout's revision (`status.rollout.updated`;
/// `status.replicas` when no rollout runs). Flat during a rollout means the rollout is stuck.
pub const UPDATED: &str = "chat_operator_cluster_updated_replicas";

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
            spawn_upkeep(handle.clone());
            describe();
            // Exported from the start: a standby replica shows 0, not nothing. An increment of
            // 0, so a recorder installed before this one keeps its value.
            metrics::gauge!(LEADER).increment(0.0);
            handle
        })
        .clone()
}

/// Folds recorded histogram samples into their buckets every 30 s. The exporter keeps each
/// sample until a `/metrics` render or its upkeep does that; without the upkeep, an operator
/// nobody scrapes keeps every reconcile's duration for ever.
fn spawn_upkeep(handle: PrometheusHandle) {
    let spawned = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_secs(30));
            handle.run_upkeep();
        });
    if let Err(e) = spawned {
        tracing::warn!(error = %e, "no metrics upkeep thread: histograms grow until /metrics is scraped");
    }
}

/// Sets the per-ChatCluster gauges from the status a reconcile computed.
pub fn record_cluster(namespace: &str, name: &str, wanted: i32, status: &ChatClusterStatus) {
    let labels = labels(namespace, name);
    let updated = status
        .rollout
        .as_ref()
        .map_or(status.replicas, |r| r.updated);
    metrics::gauge!(CLUSTER_REPLICAS, &labels).set(f64::from(wanted));
    metrics::gauge!(CLUSTER_READY, &labels).set(f64::from(status.ready_replicas));
    metrics::gauge!(ROLLOUT_ACTIVE, &labels).set(f64::from(u8::from(status.rollout.is_some())));
    metrics::gauge!(UPDATED, &labels).set(f64::from(updated));
}

/// Zeroes the per-ChatCluster gauges of a deleted ChatCluster: no pods wanted, so no alert.
pub fn forget_cluster(namespace: &str, name: &str) {
    let labels = labels(namespace, name);
    for gauge in [CLUSTER_REPLICAS, CLUSTER_READY, ROLLOUT_ACTIVE, UPDATED] {
        metrics::gauge!(gauge, &labels).set(0.0);
    }
}

fn labels(namespace: &str, name: &str) -> [(&'static str, String); 2] {
    [
        ("chatcluster_namespace", namespace.to_owned()),
        ("chatcluster", name.to_owned()),
    ]
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
    metrics::describe_gauge!(
        CLUSTER_REPLICAS,
        "Gateway pods a ChatCluster wants (spec.replicas)"
    );
    metrics::describe_gauge!(
        CLUSTER_READY,
        "Gateway pods of a ChatCluster that are Ready (status.readyReplicas)"
    );
    metrics::describe_gauge!(
        ROLLOUT_ACTIVE,
        "1 while a ChatCluster's pod-by-pod rollout runs"
    );
    metrics::describe_gauge!(
        UPDATED,
        "Gateway pods of a ChatCluster on the rollout's revision (all pods when none runs)"
    );
}
