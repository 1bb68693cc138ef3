//! DESIGN §9, level 3: the drain/rollout sequence against real gateway processes holding real
//! WebSocket clients. A 3-pod ChatCluster gets a new image while users chat; the operator rolls
//! demo-gateway-2, -1 and -0 in turn, the clients follow each DRAIN (22) by reconnecting (those
//! that ignore it are closed with 1012 at the drain deadline and reconnect then). Then it
//! scales to 2: demo-gateway-2 drains before the StatefulSet shrinks, and its topic and Redis keys
//! go after. No message that got reply 0 is lost.
//!
//! Real: the operator's controller (`run_controller`) and its three adapters — `HttpGatewayAdmin`
//! calling the gateways' admin ports, `HttpPulsarAdmin` provisioning the topics on the Pulsar test
//! broker, `RedisKeyStore` on a real `redis-server`; the gateways, each a separate `chat-gateway
//! serve` process configured only by the environment the operator's pod template gives it, in
//! cluster mode (PostgreSQL store, Redis route table, Pulsar bus on the test broker); their SIGTERM
//! drain; the WebSocket clients and everything on the wire.
//!
//! Fake: the Kubernetes API server (the in-process `support::fake_api`, with its StatefulSet
//! controller) and the kubelet, which is this test's [`kubelet`]: it starts a gateway process per
//! pod, runs the readiness probe, sends SIGTERM on deletion and removes the pod once the process
//! exited. Pod DNS is [`kubelet::PodNetwork`] (the operator's `http://<pod>.<headless>.<ns>.svc`
//! URLs resolve to the gateways' loopback ports), the client Service is [`chat::Service`].
//!
//! How the gateway processes are started: this test has its own `main` (`harness = false`). Run
//! with `serve`, the binary is the gateway's CLI (`chat_gateway::cli::main`, what the
//! `chat-gateway` binary runs), so the kubelet runs the container's `chat-gateway serve` as
//! `<this test binary> serve`. That needs no binary of another package to have been built (cargo
//! builds only this package's binaries for its tests), and it is the same code as the real one.

#![allow(
    missing_docs,
    unreachable_pub,
    reason = "test support and tools, not a library API: the workspace lints are for the libraries"
)]

#[path = "../support/mod.rs"]
mod support;

mod chat;
mod harness;
mod kubelet;

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chat_gateway::auth::Auth;
use chat_operator::crd::{ChatCluster, Phase};
use chat_operator::keys::RedisKeyStore;
use chat_operator::pulsar::HttpPulsarAdmin;
use chat_tests::fixtures::SECRET;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use pulsar_test_broker::Broker;
use serde_json::json;
use support::fake_api::Settings;
use support::{is_serving, Harness, NAME, NAMESPACE};
use tokio_util::sync::CancellationToken;

use chat::{Ledger, Service, User};
use kubelet::{Kubelet, PodNetwork, What};

/// The scenario's name, for `cargo test` filters.
const TEST: &str = "pods_rolled_and_scaled_away_under_traffic_lose_no_acknowledged_message";
/// Chat users, each with one device, each writing to the next; every fourth one ignores DRAIN.
const USERS: usize = 8;
/// `spec.gateway.drainSeconds`: short, so the test takes seconds, and not above the timelife.
const DRAIN_SECONDS: u64 = 4;
/// `spec.gateway.timelifeSeconds`: short enough that the clients renew during the test.
const TIMELIFE_SECONDS: u64 = 20;
/// Longest wait for the cluster to start, and for the rollout to finish.
const CLUSTER_WAIT: Duration = Duration::from_secs(60);
/// Longest wait for the last deliveries once sending stopped.
const DELIVERY_WAIT: Duration = Duration::from_secs(20);

fn main() -> ExitCode {
    harness::main(
        TEST,
        pods_rolled_and_scaled_away_under_traffic_lose_no_acknowledged_message,
    )
}

/// The ChatCluster: 3 pods of `image`, the real backends, secrets by reference.
fn cluster(image: &str, redis_url: &str, key_prefix: &str, broker: &BrokerUrls) -> ChatCluster {
    serde_json::from_value(json!({
        "apiVersion": "chatcluster.dev/v1alpha1",
        "kind": "ChatCluster",
        "metadata": {"name": NAME, "namespace": NAMESPACE},
        "spec": {
            "replicas": 3,
            "image": image,
            "gateway": {"timelifeSeconds": TIMELIFE_SECONDS, "heartbeatSeconds": 5,
                        "drainSeconds": DRAIN_SECONDS, "maxConnectionsPerPod": 1000},
            "redis": {"url": redis_url, "keyPrefix": key_prefix},
            "pulsar": {"serviceUrl": broker.service_url, "adminUrl": broker.admin_url,
                       "tenant": "public", "namespace": "chat"},
            "database": {"urlSecretRef": {"name": "chat-db", "key": "url"}},
            "auth": {"jwtSecretRef": {"name": "chat-jwt", "key": "secret"}},
        }
    }))
    .expect("a ChatCluster")
}

/// The broker's two URLs.
struct BrokerUrls {
    service_url: String,
    admin_url: String,
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

/// `name` of each journal entry that starts with `prefix` and names a pod, from `from` on, with
/// repeats of the same pod in a row collapsed.
fn pods_in_order(entries: &[String], from: usize, prefix: &str) -> Vec<String> {
    let mut pods: Vec<String> = Vec::new();
    for entry in &entries[from..] {
        let Some(rest) = entry.strip_prefix(prefix) else {
            continue;
        };
        let pod = rest
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_owned();
        if pods.last() != Some(&pod) {
            pods.push(pod);
        }
    }
    pods
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

/// `pod`, drained at journal entry `drained` and taken away at `gone`, had no connection left in
/// the last `/admin/status` before `gone`, or its drain deadline had passed when the kubelet saw
/// it go.
fn assert_left_in_time(
    entries: &[String],
    pod: &str,
    drained: usize,
    gone: usize,
    kubelet: &Kubelet,
    network: &PodNetwork,
) {
    let left = entries[drained..gone]
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix(&format!("status {pod} connections=")))
        .and_then(|rest| rest.split_whitespace().next()?.parse::<i64>().ok());
    if left == Some(0) {
        return;
    }
    let drains_before = entries[..=drained]
        .iter()
        .filter(|e| e.starts_with(&format!("drain {pod} ")))
        .count();
    let (drained_at, _, deadline) = network
        .drains()
        .into_iter()
        .filter(|(_, p, _)| p == pod)
        .nth(drains_before - 1)
        .expect("the drain reached the gateway");
    let terminating_at = kubelet
        .happenings()
        .into_iter()
        .find(|h| h.pod == pod && h.what == What::Terminating && h.at > drained_at)
        .expect("the kubelet saw the pod go")
        .at;
    assert!(
        terminating_at >= drained_at + Duration::from_secs(deadline),
        "{pod} went with {left:?} connections {:?} after its drain (deadline {deadline} s)",
        terminating_at - drained_at
    );
}

async fn pods_rolled_and_scaled_away_under_traffic_lose_no_acknowledged_message() {
    // The real backends.
    let broker = Broker::start("127.0.0.1:0", "127.0.0.1:0")
        .await
        .expect("start the pulsar test broker");
    let urls = BrokerUrls {
        service_url: broker.service_url().to_owned(),
        admin_url: broker.admin_url().to_owned(),
    };
    let redis_url = chat_tests::redis::server().url();
    let key_prefix = chat_tests::redis::unique_prefix("rollout");
    let database_url = chat_tests::postgres::database("rollout").await;

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
    ] {
        secrets
            .create(&PostParams::default(), &secret(name, key, value))
            .await
            .expect("creating a Secret");
    }
    h.clusters()
        .create(
            &PostParams::default(),
            &cluster("chat-gateway:1", &redis_url, &key_prefix, &urls),
        )
        .await
        .expect("creating the ChatCluster");
    h.wait_within(CLUSTER_WAIT, "3 Ready gateways", |h| h.converged(3), |_| ())
        .await;
    let topics: BTreeSet<String> = broker.topics().into_iter().collect();
    assert_eq!(
        topics,
        (0..3)
            .map(|n| format!("persistent://public/chat/{key_prefix}-pod-demo-gateway-{n}"))
            .collect(),
        "the operator provisioned one inbox per pod, and the gateways consume those"
    );

    // Users chat through the Service.
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
                follows_drain: i % 4 != 3,
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
    traffic(&ledger, 5 * USERS, "before the rollout").await;

    // The rollout, while they chat.
    let old_revision = h
        .cluster()
        .and_then(|c| c.status)
        .and_then(|s| s.update_revision);
    let mark = h.journal.entries().len();
    let rollout_started = Instant::now();
    let before = ledger.lock().unwrap().acknowledged();
    h.patch_spec(json!({"image": "chat-gateway:2"})).await;
    let (mut phases, mut most_out) = (BTreeSet::new(), 0);
    h.wait_within(
        CLUSTER_WAIT,
        "every pod on the new revision, phase Running",
        |h| {
            h.converged(3)
                && h.cluster()
                    .and_then(|c| c.status)
                    .and_then(|s| s.update_revision)
                    != old_revision
        },
        |h| {
            if let Some(status) = h.cluster().and_then(|c| c.status) {
                phases.insert(format!("{:?}", status.phase));
            }
            let serving = h.pods().iter().filter(|p| is_serving(p)).count();
            most_out = most_out.max(3 - serving.min(3));
        },
    )
    .await;
    let rollout_took = rollout_started.elapsed();
    let rolled = ledger.lock().unwrap().acknowledged();
    traffic(&ledger, rolled + 2 * USERS, "after the rollout").await;

    // A scale-down, while they chat: demo-gateway-2 drains, then the StatefulSet shrinks; its
    // topic and Redis keys go once it is gone.
    let scale_mark = h.journal.entries().len();
    h.patch_spec(json!({"replicas": 2})).await;
    let kept: BTreeSet<String> = (0..2)
        .map(|n| format!("persistent://public/chat/{key_prefix}-pod-demo-gateway-{n}"))
        .collect();
    h.wait_within(
        CLUSTER_WAIT,
        "2 gateways, and the topics of those only",
        |h| h.converged(2) && broker.topics().into_iter().collect::<BTreeSet<_>>() == kept,
        |_| (),
    )
    .await;
    let mut redis = chat_tests::redis::client().await;
    let servers_key = format!("{key_prefix}:servers");
    let pod_key = format!("{key_prefix}:pod:demo-gateway-2");
    let cleaning = Instant::now();
    loop {
        let servers: Vec<String> = redis::cmd("ZRANGE")
            .arg(&servers_key)
            .arg(0)
            .arg(-1)
            .query_async(&mut redis)
            .await
            .expect("ZRANGE");
        let pod_left: bool = redis::cmd("EXISTS")
            .arg(&pod_key)
            .query_async(&mut redis)
            .await
            .expect("EXISTS");
        if servers == ["demo-gateway-0", "demo-gateway-1"] && !pod_left {
            break;
        }
        assert!(
            cleaning.elapsed() < CLUSTER_WAIT,
            "Redis still names demo-gateway-2: servers {servers:?}, {pod_key} exists: {pod_left}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let scaled = ledger.lock().unwrap().acknowledged();
    traffic(&ledger, scaled + 2 * USERS, "after the scale-down").await;

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

    // Nothing acknowledged was lost, and the wire kept its promises.
    let ledger = Arc::try_unwrap(ledger)
        .expect("the users are gone")
        .into_inner()
        .unwrap();
    println!(
        "rollout {:.1} s, {} messages during it; {}",
        rollout_took.as_secs_f64(),
        rolled - before,
        ledger.summary()
    );
    assert_eq!(
        ledger.missing(),
        Vec::<String>::new(),
        "acknowledged, never delivered"
    );
    assert_eq!(ledger.problems, Vec::<String>::new());
    assert!(rolled > before, "messages flowed during the rollout");
    assert!(
        ledger.drains > 0 && ledger.moves > 0,
        "clients followed DRAIN: {}",
        ledger.summary()
    );
    assert!(
        ledger
            .lost_connections
            .get(&Some(1012))
            .is_some_and(|n| *n > 0),
        "the drain deadline closed what did not move with 1012: {}",
        ledger.summary()
    );
    assert_eq!(
        kubelet.failures(),
        Vec::<String>::new(),
        "container failures"
    );

    // The rollout: 2, 1, 0; each drained, then deleted after its connections left (or its
    // deadline passed), then replaced and Ready before the next one.
    let entries = h.journal.entries();
    let rollout = &entries[..scale_mark];
    let order = ["demo-gateway-2", "demo-gateway-1", "demo-gateway-0"];
    assert_eq!(
        pods_in_order(rollout, mark, "drain "),
        order,
        "{entries:#?}"
    );
    assert_eq!(pods_in_order(rollout, mark, "DELETE Pod/"), order);
    let mut last = mark;
    for pod in order {
        let drained = h.journal.position(last, &format!("drain {pod}"));
        let deleted = h.journal.position(drained, &format!("DELETE Pod/{pod}"));
        let sigterm = h
            .journal
            .position(deleted, &format!("kubelet SIGTERM {pod}"));
        let exited = h
            .journal
            .position(sigterm, &format!("kubelet exited {pod} code=Some(0)"));
        let started = h.journal.position(exited, &format!("kubelet start {pod}"));
        let ready = h
            .journal
            .position(started, &format!("kubelet {pod} ready=true"));
        assert_left_in_time(&entries, pod, drained, deleted, &kubelet, &network);
        last = ready;
    }
    assert!(phases.contains("RollingOut"), "phases seen: {phases:?}");
    assert_eq!(most_out, 1, "one pod out of service at a time");

    // The scale-down: demo-gateway-2 drained, then the StatefulSet shrunk, no pod deleted by
    // the operator; the gateway stopped cleanly.
    let pod = "demo-gateway-2";
    let drained = h.journal.position(scale_mark, &format!("drain {pod}"));
    let shrunk = h
        .journal
        .position(drained, "PATCH StatefulSet/demo-gateway replicas=2");
    let sigterm = h
        .journal
        .position(shrunk, &format!("kubelet SIGTERM {pod}"));
    h.journal
        .position(sigterm, &format!("kubelet exited {pod} code=Some(0)"));
    assert_left_in_time(&entries, pod, drained, shrunk, &kubelet, &network);
    assert_eq!(
        pods_in_order(&entries, scale_mark, "DELETE Pod/"),
        Vec::<String>::new()
    );
    let status = h.cluster().and_then(|c| c.status).expect("a status");
    assert_eq!(status.phase, Phase::Running);
    assert_eq!(status.current_revision, status.update_revision);

    h.stop().await;
    stop_kubelet.cancel();
    kubelet_task.await.expect("the kubelet stops");
    broker.shutdown().await;
}
