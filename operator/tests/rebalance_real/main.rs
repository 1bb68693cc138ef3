//! Issue 19 point 6, rebalancing, against real gateway processes holding real WebSocket clients:
//! a 1-pod ChatCluster carries every user; it scales to 2, and the new pod starts empty. The
//! operator asks the busy pod to move a paced share of its clients (`POST /admin/rebalance`: the
//! drain's DRAIN (22), the pod staying ready) until both pods are within 20 % of the mean. The
//! clients reconnect through the Service, which places them round-robin over the Ready pods, as
//! kube-proxy would. No message that got reply 0 is lost, the busy pod never drains nor goes
//! unready, and `status.rebalance` and the Events tell the steps.
//!
//! The same real and fake parts as `rollout_real` (whose kubelet and chat users this test
//! shares): the real controller and its adapters, real `chat-gateway serve` processes in cluster
//! mode (PostgreSQL, Redis, the Pulsar test broker), real `chat_client` users; the API server and
//! the kubelet are the fakes. Run with `serve`, this binary is the gateway's CLI (see
//! `rollout_real`).

#![allow(
    missing_docs,
    unreachable_pub,
    reason = "test support and tools, not a library API: the workspace lints are for the libraries"
)]

#[path = "../support/mod.rs"]
mod support;

#[path = "../rollout_real/chat.rs"]
#[allow(dead_code, reason = "shared with rollout_real, which uses all of it")]
mod chat;
#[path = "../rollout_real/harness.rs"]
mod harness;
#[path = "../rollout_real/kubelet.rs"]
#[allow(dead_code, reason = "shared with rollout_real, which uses all of it")]
mod kubelet;

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_gateway::auth::Auth;
use chat_operator::crd::{ChatCluster, RebalancePhase};
use chat_operator::gateway::{GatewayAdmin, HttpGatewayAdmin};
use chat_operator::keys::RedisKeyStore;
use chat_operator::pulsar::HttpPulsarAdmin;
use chat_tests::fixtures::SECRET;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use pulsar_test_broker::{Broker, BrokerHandle};
use serde_json::json;
use support::fake_api::Settings;
use support::{is_serving, Harness, NAME, NAMESPACE};
use tokio_util::sync::CancellationToken;

use chat::{Ledger, Service, User};
use kubelet::{Kubelet, PodNetwork};

/// The scenario's name, for `cargo test` filters.
const TEST: &str = "connections_crowded_on_one_pod_spread_out_while_it_stays_ready";
/// Chat users, one device each, each writing to the next; every fifth ignores DRAIN (an old app)
/// and is moved by the 1012 at the end of the pace instead.
const USERS: usize = 20;
/// `spec.gateway.drainSeconds`, the pace of each step's moves: short, so the test takes seconds.
const DRAIN_SECONDS: u64 = 3;
/// `spec.gateway.timelifeSeconds`.
const TIMELIFE_SECONDS: u64 = 30;
/// `spec.rebalance.tolerancePercent`: the issue's 20 %.
const TOLERANCE_PERCENT: i64 = 20;
/// Longest wait for the cluster to start, and for the rebalancing to end.
const CLUSTER_WAIT: Duration = Duration::from_secs(90);
/// Longest wait for the last deliveries once sending stopped.
const DELIVERY_WAIT: Duration = Duration::from_secs(20);
/// The gateways' `--admin-token`, from a Secret the spec names: the test reads the admin ports too.
const ADMIN_TOKEN: &str = "rebalance-admin-token";
const BUSY: &str = "demo-gateway-0";
const NEW: &str = "demo-gateway-1";

fn main() -> ExitCode {
    harness::main(
        TEST,
        connections_crowded_on_one_pod_spread_out_while_it_stays_ready,
    )
}

/// The ChatCluster: 1 pod, the real backends, secrets by reference, fast rebalancing steps.
fn cluster(redis_url: &str, key_prefix: &str, broker: &BrokerHandle) -> ChatCluster {
    serde_json::from_value(json!({
        "apiVersion": "chatcluster.dev/v1alpha1",
        "kind": "ChatCluster",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "spec": {
            "replicas": 1,
            "image": "chat-gateway:1",
            "gateway": {"timelifeSeconds": TIMELIFE_SECONDS, "heartbeatSeconds": 5,
                        "drainSeconds": DRAIN_SECONDS, "maxConnectionsPerPod": 1000},
            "redis": {"url": redis_url, "keyPrefix": key_prefix},
            "pulsar": {"serviceUrl": broker.service_url(), "adminUrl": broker.admin_url(),
                       "tenant": "public", "namespace": "chat"},
            "database": {"urlSecretRef": {"name": "chat-db", "key": "url"}},
            "auth": {"jwtSecretRef": {"name": "chat-jwt", "key": "secret"},
                     "adminTokenSecretRef": {"name": "chat-admin", "key": "token"}},
            "rebalance": {"tolerancePercent": TOLERANCE_PERCENT, "maxSharePercent": 50,
                          "intervalSeconds": 1, "minConnectionsPerPod": 5},
        }
    }))
    .expect("a ChatCluster")
}

/// A Secret with one key, as `kubectl create secret generic` makes it.
fn secret(name: &str, key: &str, value: &str) -> Secret {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "data": {key: ByteString(value.as_bytes().to_vec())},
    }))
    .expect("a Secret")
}

/// Waits until `ledger` counts `at_least` acknowledged messages.
async fn traffic(ledger: &Mutex<Ledger>, at_least: usize, when: &str) {
    let started = Instant::now();
    while ledger.lock().unwrap().acknowledged() < at_least {
        assert!(
            started.elapsed() < CLUSTER_WAIT,
            "messages do not flow {when}: {}",
            ledger.lock().unwrap().summary()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Each pod's connections and `moving`, read straight from the gateways' admin ports.
async fn loads(kubelet: &Kubelet, admin: &HttpGatewayAdmin) -> Vec<(String, i64, i64)> {
    let mut loads = Vec::new();
    for pod in [BUSY, NEW] {
        let Some(endpoint) = kubelet.endpoint(pod) else {
            continue;
        };
        if let Ok(status) = admin
            .status(&format!("http://{}", endpoint.admin), Some(ADMIN_TOKEN))
            .await
        {
            loads.push((pod.to_owned(), status.connections, status.moving));
        }
    }
    loads
}

/// Both pods hold connections within the tolerance of their mean, none of them moving.
fn balanced(loads: &[(String, i64, i64)]) -> bool {
    let total: i64 = loads.iter().map(|l| l.1).sum();
    loads.len() == 2
        && total > 0
        && loads.iter().all(|(_, connections, moving)| {
            *moving == 0 && (connections * 2 - total).abs() * 100 <= TOLERANCE_PERCENT * total
        })
}

async fn connections_crowded_on_one_pod_spread_out_while_it_stays_ready() {
    // The real backends.
    let broker = Broker::start("127.0.0.1:0", "127.0.0.1:0")
        .await
        .expect("start the pulsar test broker");
    let redis_url = chat_tests::redis::server().url();
    let key_prefix = chat_tests::redis::unique_prefix("rebalance");
    let database_url = chat_tests::postgres::database("rebalance").await;

    // The fake API server, its kubelet running real gateways, and the real operator.
    let mut h = Harness::with_settings(Settings {
        external_kubelet: true,
        ..Settings::default()
    });
    let stop_kubelet = CancellationToken::new();
    let (kubelet, kubelet_task) = Kubelet::start(
        h.api.clone(),
        NAMESPACE,
        h.journal.clone(),
        stop_kubelet.clone(),
    );
    let network = Arc::new(PodNetwork::new(kubelet.clone(), h.journal.clone()));
    h.pulsar_admin = Arc::new(HttpPulsarAdmin::new().expect("an HTTP client"));
    h.keys = Arc::new(RedisKeyStore::new());
    h.gateway_admin = network.clone();
    h.operator = Some(h.spawn_controller());

    let secrets: Api<Secret> = Api::namespaced(h.client.clone(), NAMESPACE);
    for (name, key, value) in [
        ("chat-db", "url", database_url.as_str()),
        ("chat-jwt", "secret", SECRET),
        ("chat-admin", "token", ADMIN_TOKEN),
    ] {
        secrets
            .create(&PostParams::default(), &secret(name, key, value))
            .await
            .expect("creating a Secret");
    }
    h.clusters()
        .create(
            &PostParams::default(),
            &cluster(&redis_url, &key_prefix, &broker),
        )
        .await
        .expect("creating the ChatCluster");
    h.wait_within(CLUSTER_WAIT, "1 Ready gateway", |h| h.converged(1), |_| ())
        .await;

    // Every user connects to the one pod, through the Service, and chats.
    let auth = Auth::new(SECRET.as_bytes());
    let service = Service::new(h.api.clone(), kubelet.clone(), NAMESPACE);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let (sending, quit) = (CancellationToken::new(), CancellationToken::new());
    let users: Vec<_> = (0..USERS)
        .map(|i| {
            let name = format!("u{i}");
            let user = User {
                token: auth
                    .issue(&name, Some(&name), false, 3600)
                    .expect("a token"),
                peer: format!("u{}", (i + 1) % USERS),
                follows_drain: i % 5 != 4,
                name,
            };
            tokio::spawn(chat::run(
                user,
                service.clone(),
                ledger.clone(),
                sending.clone(),
                quit.clone(),
            ))
        })
        .collect();
    traffic(&ledger, 3 * USERS, "on one pod").await;
    let admin = HttpGatewayAdmin::new().expect("an HTTP client");
    assert_eq!(
        loads(&kubelet, &admin).await,
        [(BUSY.to_owned(), USERS as i64, 0)],
        "every user on the one pod"
    );
    assert_eq!(
        ledger.lock().unwrap().drains,
        0,
        "a single pod is balanced: nothing moves"
    );

    // The scale-up: the new pod starts empty, and the operator moves clients onto it while they
    // chat. The busy pod must stay Ready (and never drain) throughout.
    let mark = h.journal.entries().len();
    let before = ledger.lock().unwrap().acknowledged();
    h.patch_spec(json!({"replicas": 2})).await;
    h.wait_within(CLUSTER_WAIT, "2 Ready gateways", |h| h.converged(2), |_| ())
        .await;
    let started = Instant::now();
    let mut busy_unready = Vec::new();
    let mut phases = Vec::new();
    let last = loop {
        for pod in h.pods() {
            if pod["metadata"]["name"] == BUSY && !is_serving(&pod) {
                busy_unready.push(format!("{:?}", started.elapsed()));
            }
        }
        let phase = h
            .cluster()
            .and_then(|c| c.status)
            .and_then(|s| s.rebalance)
            .map(|r| r.phase);
        if phases.last() != Some(&phase) {
            phases.push(phase);
        }
        let now = loads(&kubelet, &admin).await;
        if balanced(&now) && phase == Some(RebalancePhase::Balanced) {
            break now;
        }
        assert!(
            started.elapsed() < CLUSTER_WAIT,
            "not balanced after {CLUSTER_WAIT:?}: {now:?}, phases {phases:?}; {}",
            ledger.lock().unwrap().summary()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let took = started.elapsed();
    let moved = ledger.lock().unwrap().acknowledged();
    traffic(&ledger, moved + 2 * USERS, "after the rebalancing").await;

    // The last replies and deliveries.
    sending.cancel();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let waiting = Instant::now();
    while !ledger.lock().unwrap().missing().is_empty() && waiting.elapsed() < DELIVERY_WAIT {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    quit.cancel();
    for user in users {
        tokio::time::timeout(Duration::from_secs(10), user)
            .await
            .expect("a user stops")
            .expect("a user does not panic");
    }
    let ledger = Arc::try_unwrap(ledger)
        .expect("the users are gone")
        .into_inner()
        .unwrap();
    println!(
        "balanced in {:.1} s ({last:?}), {} messages during it; phases {phases:?}; {}",
        took.as_secs_f64(),
        moved - before,
        ledger.summary()
    );

    // Nothing acknowledged was lost; clients moved by DRAIN, the busy pod stayed in service.
    assert_eq!(
        ledger.missing(),
        Vec::<String>::new(),
        "acknowledged, never delivered"
    );
    assert_eq!(ledger.problems, Vec::<String>::new());
    assert!(moved > before, "messages flowed during the rebalancing");
    assert!(
        ledger.drains > 0 && ledger.moves > 0,
        "clients followed DRAIN: {}",
        ledger.summary()
    );
    assert!(
        ledger.connections_by_pod.get(NEW).is_some_and(|n| *n > 0),
        "clients reached the new pod: {}",
        ledger.summary()
    );
    assert_eq!(busy_unready, Vec::<String>::new(), "{BUSY} went unready");
    let entries = h.journal.entries();
    let after = &entries[mark..];
    assert!(
        !after.iter().any(|e| e.starts_with("drain ")),
        "nothing was drained: {after:#?}"
    );
    let steps: Vec<&String> = after
        .iter()
        .filter(|e| e.starts_with("rebalance "))
        .collect();
    assert!(
        !steps.is_empty()
            && steps
                .iter()
                .all(|e| e.starts_with(&format!("rebalance {BUSY} "))),
        "only the busy pod was asked to move connections: {steps:#?}"
    );
    assert!(
        phases.contains(&Some(RebalancePhase::Rebalancing)),
        "phases seen: {phases:?}"
    );
    assert_eq!(
        kubelet.failures(),
        Vec::<String>::new(),
        "container failures"
    );

    // Status and Events tell it.
    let rebalance = h
        .cluster()
        .and_then(|c| c.status)
        .and_then(|s| s.rebalance)
        .expect("status.rebalance");
    assert_eq!(rebalance.phase, RebalancePhase::Balanced);
    assert!(
        rebalance.spread_percent <= TOLERANCE_PERCENT,
        "{rebalance:?}"
    );
    assert_eq!(
        rebalance
            .pods
            .iter()
            .map(|p| p.pod.as_str())
            .collect::<Vec<_>>(),
        [BUSY, NEW]
    );
    assert!(
        rebalance
            .last_step
            .as_deref()
            .is_some_and(|s| s.starts_with(&format!("asked {BUSY} to move "))),
        "{rebalance:?}"
    );
    assert!(rebalance.last_step_time.is_some());
    let events = h.api.list("events.k8s.io/v1", "Event", NAMESPACE);
    let notes = |reason: &str| -> Vec<String> {
        events
            .iter()
            .filter(|e| e["reason"] == reason)
            .map(|e| e["note"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let rebalancing = notes("Rebalancing");
    assert!(
        !rebalancing.is_empty()
            && rebalancing
                .iter()
                .all(|n| n.starts_with(&format!("asked {BUSY} to move "))),
        "{rebalancing:?}"
    );
    assert!(
        notes("Balanced")
            .iter()
            .any(|n| n.starts_with("every pod within 20% of the mean")),
        "{:?}",
        notes("Balanced")
    );

    h.stop().await;
    stop_kubelet.cancel();
    kubelet_task.await.expect("the kubelet stops");
    broker.shutdown().await;
}
