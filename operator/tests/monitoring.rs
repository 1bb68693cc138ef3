//! `spec.monitoring.podMonitor` with the real controller against the fake API server, with and
//! without the Prometheus Operator's CRD; and the operator's live `/metrics` through real
//! promtool, checked against the chart's dashboard and alerts.
//!
//! Its own test binary: the metrics recorder is process-wide.

#![allow(
    missing_docs,
    unreachable_pub,
    reason = "test support and tools, not a library API: the workspace lints are for the libraries"
)]

mod support;

use std::sync::Arc;

use chat_operator::crd::{ChatCluster, Phase};
use chat_operator::http::{router, Health};
use chat_operator::monitoring::{APPLIED, CRD_MISSING, MONITORING};
use chat_tests::promtool::{assert_exported, check_metrics, used_metrics};
use serde_json::{json, Value};
use support::fake_api::Settings;
use support::{Harness, NAMESPACE};

const POD_MONITOR: (&str, &str, &str) = ("monitoring.coreos.com/v1", "PodMonitor", "demo-gateway");

/// The fake API server with or without the PodMonitor CRD, and the controller running.
fn harness(monitoring_crd: bool) -> Harness {
    let mut h = Harness::with_settings(Settings {
        monitoring_crd,
        ..Settings::default()
    });
    h.operator = Some(h.spawn_controller());
    h
}

fn pod_monitor(h: &Harness) -> Option<Value> {
    h.object(POD_MONITOR.0, POD_MONITOR.1, POD_MONITOR.2)
}

/// The `Monitoring` condition's `(status, reason)`, if any.
fn monitoring_condition(cc: &ChatCluster) -> Option<(String, String)> {
    cc.status
        .as_ref()?
        .conditions
        .iter()
        .find(|c| c.type_ == MONITORING)
        .map(|c| (c.status.clone(), c.reason.clone()))
}

async fn enable(h: &Harness, enabled: bool) {
    h.patch_spec(json!({"monitoring": {"podMonitor": {
        "enabled": enabled, "interval": "15s", "labels": {"release": "kps"}
    }}}))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enabled_pod_monitor_is_applied_owned_and_deleted_when_disabled() {
    let h = harness(true);
    h.create(2, "chat-gateway:1").await;
    h.wait_until("2 pods Running", |h| h.converged(2)).await;
    assert!(
        pod_monitor(&h).is_none(),
        "a PodMonitor before it was asked for"
    );
    assert_eq!(monitoring_condition(&h.cluster().unwrap()), None);

    enable(&h, true).await;
    h.wait_until("the PodMonitor and a True Monitoring condition", |h| {
        pod_monitor(h).is_some()
            && monitoring_condition(&h.cluster().unwrap()) == Some(("True".into(), APPLIED.into()))
    })
    .await;
    let pm = pod_monitor(&h).unwrap();
    let uid = h.cluster().unwrap().metadata.uid.unwrap();
    assert_eq!(
        pm["metadata"]["ownerReferences"][0]["uid"],
        uid.as_str(),
        "{pm}"
    );
    assert_eq!(pm["metadata"]["labels"]["release"], "kps", "{pm}");
    assert_eq!(
        pm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"], "demo",
        "{pm}"
    );
    let endpoint = &pm["spec"]["podMetricsEndpoints"][0];
    assert_eq!(endpoint["port"], "admin", "the gateways' admin port: {pm}");
    assert_eq!(endpoint["path"], "/metrics");
    assert_eq!(endpoint["interval"], "15s");
    // The gateway pods name that port.
    let sts = h.object("apps/v1", "StatefulSet", "demo-gateway").unwrap();
    let ports = &sts["spec"]["template"]["spec"]["containers"][0]["ports"];
    assert!(
        ports
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "admin"),
        "{ports}"
    );

    enable(&h, false).await;
    h.wait_until("the PodMonitor deleted, the condition gone", |h| {
        pod_monitor(h).is_none() && monitoring_condition(&h.cluster().unwrap()).is_none()
    })
    .await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_crd_the_cluster_runs_and_a_condition_and_one_event_say_so() {
    let h = harness(false);
    h.create(2, "chat-gateway:1").await;
    enable(&h, true).await;
    h.wait_until("Running with a False Monitoring condition", |h| {
        let cc = h.cluster().unwrap();
        h.converged(2) && monitoring_condition(&cc) == Some(("False".into(), CRD_MISSING.into()))
    })
    .await;
    let warnings = |h: &Harness| {
        h.api
            .list("events.k8s.io/v1", "Event", NAMESPACE)
            .into_iter()
            .filter(|e| e["type"] == "Warning" && e["reason"] == CRD_MISSING)
            .count()
    };
    h.wait_until("a Warning Event", |h| warnings(h) == 1).await;
    let status = h.cluster().unwrap().status.unwrap();
    assert_eq!(status.phase, Phase::Running);
    assert!(
        status
            .conditions
            .iter()
            .all(|c| c.type_ != "Degraded" || c.status == "False"),
        "{:#?}",
        status.conditions
    );
    // More reconciles (a spec change) do not repeat the Event.
    h.patch_spec(json!({"gateway": {"recallSeconds": 60}}))
        .await;
    h.wait_until("the new generation observed", |h| {
        let cc = h.cluster().unwrap();
        cc.status.unwrap().observed_generation == cc.metadata.generation && h.converged(2)
    })
    .await;
    assert_eq!(warnings(&h), 1, "the Event is published once");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_operator_metrics_pass_promtool_and_cover_the_dashboard_and_alerts() {
    // Installed before the controller runs, as `chat-operator run` does.
    let metrics = chat_operator::metrics::handle();
    let h = harness(true);
    // One failed reconcile first, so the failure counter has a series.
    h.pulsar.set_failing(true);
    h.create(2, "chat-gateway:1").await;
    h.wait_until("a failed reconcile", |h| {
        h.cluster()
            .and_then(|c| c.status)
            .is_some_and(|s| s.phase == Phase::Degraded)
    })
    .await;
    h.pulsar.set_failing(false);
    h.wait_until("2 pods Running", |h| h.converged(2)).await;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let health = Arc::new(Health::default());
    let app = router(health, metrics);
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let exposition = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .expect("/metrics")
        .text()
        .await
        .unwrap();
    server.abort();
    for series in [
        "chat_operator_reconciles_total",
        "chat_operator_reconcile_failures_total{reason=\"pulsar\"}",
        // Labelled by the ChatCluster; its value is not checked: the other tests of this binary
        // run a ChatCluster of the same name meanwhile.
        "chat_operator_cluster_ready_replicas{chatcluster_namespace=\"chat\",chatcluster=\"demo\"}",
    ] {
        assert!(
            exposition.contains(series),
            "{series} missing:\n{exposition}"
        );
    }
    check_metrics(&exposition);
    let operator_side = used_metrics()
        .into_iter()
        .filter(|name| name.starts_with("chat_operator_"))
        .collect();
    assert_exported(&operator_side, &exposition, "operator");
    h.stop().await;
}
