//! Each scenario of the chat-load binary, briefly, against real gateways started in this test
//! process (the test support's in-process gateway, and a two-pod cluster for `cross-pod`). The
//! checks are about what the tool reports — every message accounted for, files written — not
//! about speed.

#![allow(
    missing_docs,
    unreachable_pub,
    reason = "integration tests, not a library API"
)]

use std::path::PathBuf;
use std::process::Stdio;

use chat_tests::cluster::TestCluster;
use chat_tests::fixtures::SECRET;
use chat_tests::{TempDir, TestGateway};
use serde_json::Value;

/// Runs chat-load with `args` (plus the test secret and `--json`); returns its JSON result.
async fn chat_load(args: &[&str]) -> Value {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat-load"))
        .args(args)
        .args(["--jwt-secret", SECRET, "--json"])
        .stdin(Stdio::null())
        .output()
        .await
        .expect("run chat-load");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "chat-load {args:?} failed: {}\n{stdout}\n{stderr}",
        out.status
    );
    let last = stdout.lines().last().expect("some output");
    serde_json::from_str(last).unwrap_or_else(|e| panic!("last line is not JSON ({e}): {last}"))
}

fn pid() -> String {
    std::process::id().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn direct_paced_writes_its_json_and_plot_and_prices_the_server() {
    let gw = TestGateway::start().await;
    let dir = TempDir::new("load-direct");
    let (out, plot): (PathBuf, PathBuf) = (dir.path().join("r.json"), dir.path().join("r.png"));
    let r = chat_load(&[
        "direct",
        "--url",
        &gw.ws_url(),
        "--pairs",
        "5",
        "--rate",
        "100",
        "--duration-seconds",
        "2",
        "--warmup-seconds",
        "1",
        "--drain-seconds",
        "5",
        "--server-pid",
        &pid(),
        "--out",
        out.to_str().unwrap(),
        "--plot",
        plot.to_str().unwrap(),
    ])
    .await;
    assert_eq!(r["mode"], "direct");
    assert_eq!(r["lost"], 0, "{r}");
    assert_eq!(r["delivered_total"], r["sent_total"], "{r}");
    assert!(r["delivered_per_second"].as_f64().unwrap() > 50.0, "{r}");
    assert!(r["send_to_delivered"]["p99_ms"].as_f64().unwrap() > 0.0);
    assert!(r["cost"]["server_cpu_seconds"].as_f64().is_some(), "{r}");
    assert!(r["timeline"].as_array().unwrap().len() >= 3, "{r}");
    let written: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(written["delivered_total"], r["delivered_total"]);
    assert!(
        !written.to_string().contains(SECRET),
        "the secret stays out"
    );
    assert!(std::fs::read(&plot).unwrap().starts_with(b"\x89PNG"));
}

#[tokio::test(flavor = "multi_thread")]
async fn throughput_at_saturation_in_two_processes() {
    let gw = TestGateway::start().await;
    let r = chat_load(&[
        "--procs",
        "2",
        "throughput",
        "--url",
        &gw.ws_url(),
        "--pairs",
        "4",
        "--window",
        "2",
        "--duration-seconds",
        "1",
        "--warmup-seconds",
        "0",
        "--drain-seconds",
        "5",
    ])
    .await;
    assert_eq!(
        (r["mode"].as_str(), r["procs"].as_u64()),
        (Some("direct"), Some(2))
    );
    assert_eq!(r["lost"], 0, "{r}");
    assert_eq!(r["unanswered"], 0, "{r}");
    assert!(r["delivered_total"].as_u64().unwrap() > 0, "{r}");
    let merged = r["send_to_delivered"]["count"].as_u64().unwrap();
    assert!(merged > 0, "histograms of both processes: {r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn group_members_ack_every_delivery() {
    let gw = TestGateway::start().await;
    let r = chat_load(&[
        "group",
        "--url",
        &gw.ws_url(),
        "--members",
        "12",
        "--senders",
        "2",
        "--rate",
        "20",
        "--duration-seconds",
        "2",
        "--warmup-seconds",
        "0",
        "--drain-seconds",
        "5",
    ])
    .await;
    assert_eq!(r["mode"], "group");
    assert_eq!(r["lost"], 0, "{r}");
    let stored = r["stored_total"].as_u64().unwrap();
    assert!(stored > 0, "{r}");
    assert_eq!(r["expected_deliveries"].as_u64(), Some(stored * 11), "{r}");
    assert_eq!(r["deliveries_total"], r["expected_deliveries"], "{r}");
    assert_eq!(r["ack_errors"], serde_json::json!({}), "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn storm_brings_every_client_back() {
    let gw = TestGateway::start().await;
    let r = chat_load(&[
        "storm",
        "--url",
        &gw.ws_url(),
        "--clients",
        "60",
        "--settle-seconds",
        "1",
    ])
    .await;
    assert_eq!(r["mode"], "storm");
    assert_eq!(
        (r["up_before"].as_u64(), r["back"].as_u64()),
        (Some(60), Some(60)),
        "{r}"
    );
    assert_eq!(r["not_back"], 0);
    assert!(r["all_back_seconds"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["listen_overflows"].as_u64().is_some(), "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_in_two_processes_prices_a_connection() {
    let gw = TestGateway::start().await;
    let r = chat_load(&[
        "idle",
        "--procs",
        "2",
        "--url",
        &gw.ws_url(),
        "--connections",
        "101",
        "--settle-seconds",
        "1",
        "--hold-seconds",
        "1",
        "--server-pid",
        &pid(),
    ])
    .await;
    assert_eq!(
        (r["connected"].as_u64(), r["held"].as_u64()),
        (Some(101), Some(101)),
        "{r}"
    );
    assert_eq!(r["procs"], 2);
    assert!(r["server_rss_per_connection_kib"].as_f64().is_some(), "{r}");
    assert_eq!(r["handshake"]["count"], 101);
}

#[tokio::test(flavor = "multi_thread")]
async fn cross_pod_crosses_between_two_pods() {
    let cluster = TestCluster::start(2).await;
    let urls = format!("{},{}", cluster.pod(0).ws_url(), cluster.pod(1).ws_url());
    let r = chat_load(&[
        "cross-pod",
        "--url",
        &urls,
        "--pairs",
        "4",
        "--rate",
        "40",
        "--duration-seconds",
        "2",
        "--warmup-seconds",
        "1",
        "--drain-seconds",
        "10",
    ])
    .await;
    assert_eq!(
        (r["mode"].as_str(), r["gateways"].as_u64()),
        (Some("cross-pod"), Some(2))
    );
    assert_eq!(r["lost"], 0, "{r}");
    assert_eq!(r["delivered_total"], r["sent_total"], "{r}");
}

#[tokio::test(flavor = "multi_thread")]
async fn impossible_arguments_fail_with_a_clear_error() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_chat-load"))
        .args([
            "cross-pod",
            "--jwt-secret",
            "s",
            "--url",
            "ws://127.0.0.1:1/ws",
        ])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("cross-pod needs the URLs of at least two gateways"),
        "{stderr}"
    );
}
