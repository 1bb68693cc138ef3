//! The gateway's `/metrics` against Prometheus's conventions, with real promtool: a live embedded
//! gateway after real traffic (a message sent, pushed, acked; a refused request), then
//! `promtool check metrics` on what its admin port serves. The chart's dashboard and alerts are
//! checked against the same live exposition: every `chat_*` series they read that is not the
//! operator's (`chat_operator_*`, checked in operator/tests/monitoring.rs) must be exported here.
//!
//! Its own test binary: the metrics recorder is process-wide.

use chat_tests::promtool::{assert_exported, check_metrics, check_rules, rules_path, used_metrics};
use chat_tests::TestGateway;

/// The admin port's `/metrics` after `/readyz` (which sets `chat_backend_up` and `chat_draining`).
async fn scrape(gw: &TestGateway) -> String {
    let ready = reqwest::get(gw.admin_url("/readyz")).await.expect("readyz");
    assert!(ready.status().is_success(), "the gateway is not ready");
    let response = reqwest::get(gw.admin_url("/metrics"))
        .await
        .expect("/metrics");
    assert!(
        response.status().is_success(),
        "/metrics: {}",
        response.status()
    );
    response.text().await.expect("the /metrics body")
}

/// Traffic touching the series the dashboard shows: a 1:1 message stored, pushed and acked, and
/// one request refused (an ERROR with a status code).
async fn traffic(gw: &TestGateway) {
    let mut alice = gw.connect("alice", "phone").await;
    let mut bob = gw.connect("bob", "phone").await;
    alice.send_to("bob", "hello", Some("m1")).await;
    let envelope = bob.push(2).await;
    bob.ack(&envelope).await;
    alice
        .send_text(r#"{"type": 15, "params": {"msgid": "00000000000000000000000000000000"}}"#)
        .await;
    assert_eq!(alice.error().await["status"], 404);
}

#[tokio::test]
async fn live_gateway_metrics_pass_promtool_and_cover_the_dashboard_and_alerts() {
    let gw = TestGateway::start().await;
    traffic(&gw).await;
    let exposition = scrape(&gw).await;
    for series in [
        "chat_connections",
        "chat_messages_in_total",
        "chat_acks_total",
        "chat_store_write_seconds_bucket",
        "chat_errors_total{code=\"404\"}",
    ] {
        assert!(
            exposition.contains(series),
            "{series} missing:\n{exposition}"
        );
    }
    check_metrics(&exposition);

    let gateway_side = used_metrics()
        .into_iter()
        .filter(|name| !name.starts_with("chat_operator_"))
        .collect();
    assert_exported(&gateway_side, &exposition, "gateway");
}

#[test]
fn alert_rules_pass_promtool() {
    check_rules(&rules_path());
}

/// The checks above must be able to fail: promtool finds a counter without `_total` and a series
/// without HELP, and a dashboard name the exposition lacks is reported.
#[test]
fn the_checks_catch_what_they_look_for() {
    let bad = "# TYPE chat_things counter\nchat_things 1\n";
    let caught = std::panic::catch_unwind(|| check_metrics(bad));
    assert!(
        caught.is_err(),
        "promtool accepted a counter without _total and HELP"
    );
    let used = ["chat_not_exported_seconds_bucket".to_owned()].into();
    let caught = std::panic::catch_unwind(|| {
        assert_exported(&used, "# TYPE chat_other histogram\n", "test")
    });
    assert!(caught.is_err(), "a name missing from the exposition passed");
}
