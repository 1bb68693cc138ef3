//! The offline-push webhook against a real HTTP receiver that fails, hangs and accepts at random:
//! every offline recipient's delivery arrives (at least once, signed), across a restart and from
//! another pod on PostgreSQL; a device that leaves a message unacked gets one after the retry; a
//! recipient online and acking gets none.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chat_tests::fixtures::{wait_until, TempDir};
use chat_tests::webhook::{configure, delivery, Mode, Receiver};
use chat_tests::{Client, TestGateway};
use serde_json::{json, Value};

fn id(reply: &Value) -> String {
    reply["params"]["messageId"]
        .as_str()
        .unwrap_or_else(|| panic!("no messageId in {reply}"))
        .to_owned()
}

/// `to` gets the push of kind `kind` and acks it.
async fn receive_and_ack(to: &mut Client, kind: u64) -> Value {
    let env = to.push(kind).await;
    to.ack(&env).await;
    env
}

#[tokio::test]
async fn offline_recipients_get_signed_pushes_through_a_flaky_receiver() {
    let rx = Receiver::start(Mode::Flaky {
        fail: 0.3,
        hang: 0.15,
    })
    .await;
    let gw = TestGateway::start_with(|c| configure(c, &rx.url)).await;
    let mut alice = gw.connect("alice", "phone").await;
    let mut erin = gw.connect("erin", "phone").await;
    let group = alice.create_group("g", &["bob", "carol", "erin"]).await;
    // erin's first group push is the group's creation event: acked, as every later one.
    receive_and_ack(&mut erin, 10).await;

    let mut expected = BTreeSet::new();
    for i in 0..10 {
        let reply = alice.send_to("bob", &format!("direct {i}"), None).await;
        expected.insert(delivery(&id(&reply), "bob"));
    }
    for i in 0..5 {
        let reply = alice
            .send_to_group(&group, &format!("group {i}"), None)
            .await;
        expected.insert(delivery(&id(&reply), "bob"));
        expected.insert(delivery(&id(&reply), "carol"));
        receive_and_ack(&mut erin, 10).await;
    }
    alice.send_to("erin", "online and acking", None).await;
    receive_and_ack(&mut erin, 2).await;
    let long = "é".repeat(150);
    let reply = alice.send_to("carol", &long, None).await;
    let long_id = delivery(&id(&reply), "carol");
    expected.insert(long_id.clone());

    rx.wait_for(&expected, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        rx.delivered(),
        expected,
        "exactly one delivery per offline recipient, none for erin"
    );
    assert_eq!(rx.bad_signatures(), 0);

    let body = &rx.bodies(&long_id)[0];
    let (message_id, _) = long_id.split_once(':').unwrap();
    assert_eq!(body["event"], "message.offline");
    assert_eq!(body["userId"], "carol");
    assert_eq!(body["messageId"], message_id);
    assert_eq!(body["fromUser"], "alice");
    assert_eq!(body["preview"].as_str().unwrap(), "é".repeat(100));
    assert_eq!(
        (body["seq"].as_i64(), body["fileType"].as_i64()),
        (Some(1), Some(0))
    );
    assert!(body["conversationId"].is_string(), "{body}");
    assert!(body["ts"].as_i64().unwrap() > 1_700_000_000_000, "{body}");
}

#[tokio::test]
async fn pending_deliveries_survive_a_restart() {
    let rx = Receiver::start(Mode::Fail).await;
    let dir = Arc::new(TempDir::new("webhook-restart"));
    let mut gw = TestGateway::start_in(dir.clone(), |c| configure(c, &rx.url)).await;
    let mut alice = gw.connect("alice", "phone").await;
    let reply = alice
        .send_to("bob", "while the receiver is down", None)
        .await;
    let expected = BTreeSet::from([delivery(&id(&reply), "bob")]);
    let tried = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(20),
        async || rx.requests() >= 2,
    )
    .await;
    assert!(
        tried,
        "the gateway never retried ({} requests)",
        rx.requests()
    );
    drop(alice);
    gw.stop().await;

    rx.set_mode(Mode::Accept);
    let _gw = TestGateway::start_in(dir, |c| configure(c, &rx.url)).await;
    rx.wait_for(&expected, Duration::from_secs(40)).await;
}

#[tokio::test]
async fn a_device_that_leaves_a_message_unacked_gets_a_push_after_the_retry() {
    let rx = Receiver::start(Mode::Accept).await;
    let gw = TestGateway::start_with(|c| {
        configure(c, &rx.url);
        c.ack_timeout_ms = 200;
    })
    .await;
    let mut alice = gw.connect("alice", "phone").await;
    let mut bob = gw.connect("bob", "suspended").await;
    let mut carol = gw.connect("carol", "phone").await;

    let to_bob = id(&alice.send_to("bob", "are you there?", None).await);
    let first = bob.push(2).await;
    let retry = bob.push(2).await;
    assert_eq!(
        (first["retry"].as_bool(), retry["retry"].as_bool()),
        (Some(false), Some(true))
    );
    assert!(
        rx.delivered().is_empty(),
        "no push before the retry ran out"
    );
    alice.send_to("carol", "acked at once", None).await;
    receive_and_ack(&mut carol, 2).await;

    let expected = BTreeSet::from([delivery(&to_bob, "bob")]);
    rx.wait_for(&expected, Duration::from_secs(10)).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(rx.delivered(), expected, "carol acked: no push for her");
}

/// The metric line `name value` of the gateway's `/metrics`.
async fn metric(gw: &TestGateway, name: &str) -> f64 {
    let text = reqwest::get(gw.admin_url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_delivery_past_its_retry_window_is_counted_failed() {
    let rx = Receiver::start(Mode::Fail).await;
    let gw = TestGateway::start_with(|c| {
        configure(c, &rx.url);
        c.webhook.offline_webhook_retry_seconds = 1;
    })
    .await;
    let mut alice = gw.connect("alice", "phone").await;
    alice.send_to("bob", "never taken", None).await;
    let failed = wait_until(
        Duration::from_secs(15),
        Duration::from_millis(100),
        async || metric(&gw, "chat_webhook_failed_total").await >= 1.0,
    )
    .await;
    assert!(
        failed,
        "chat_webhook_failed_total never counted the delivery"
    );
    assert!(metric(&gw, "chat_webhook_retried_total").await >= 1.0);
    let settled = rx.requests();
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        rx.requests(),
        settled,
        "a failed delivery is not tried again"
    );
}

#[tokio::test]
async fn postgres_another_pod_finishes_what_a_stopped_pod_left_pending() {
    let url = chat_tests::postgres::database("webhook").await;
    let rx = Receiver::start(Mode::Fail).await;
    let on = |pod: &'static str| {
        let (url, hook) = (url.clone(), rx.url.clone());
        move |c: &mut chat_gateway::config::ServeConfig| {
            configure(c, &hook);
            c.store.database_url = Some(url);
            c.pod_name = Some(pod.to_owned());
        }
    };
    let mut a = TestGateway::start_with(on("pod-a")).await;
    let mut alice = a.connect("alice", "phone").await;
    let group = alice.create_group("g", &["bob", "carol"]).await;
    let mut expected = BTreeSet::new();
    for i in 0..5 {
        let to_bob = alice.send_to("bob", &format!("direct {i}"), None).await;
        expected.insert(delivery(&id(&to_bob), "bob"));
        let to_group = alice
            .send_to_group(&group, &format!("group {i}"), None)
            .await;
        expected.insert(delivery(&id(&to_group), "bob"));
        expected.insert(delivery(&id(&to_group), "carol"));
    }
    let tried = wait_until(
        Duration::from_secs(10),
        Duration::from_millis(20),
        async || rx.requests() >= expected.len(),
    )
    .await;
    assert!(tried, "pod-a did not try ({} requests)", rx.requests());
    drop(alice);
    a.stop().await;

    rx.set_mode(Mode::Flaky {
        fail: 0.3,
        hang: 0.1,
    });
    let _b = TestGateway::start_with(on("pod-b")).await;
    rx.wait_for(&expected, Duration::from_secs(60)).await;
    assert_eq!(rx.delivered(), expected);
    assert_eq!(rx.bad_signatures(), 0);
    let body = &rx.bodies(expected.first().unwrap())[0];
    assert_eq!(body["event"], json!("message.offline"));
}

/// An https:// receiver whose certificate a CA made by the test signed: trusted through
/// `--offline-webhook-ca-file`, the push arrives signed; without that file the same receiver
/// is refused at the TLS handshake (no request reaches it), and the delivery waits to be retried.
#[tokio::test]
async fn https_receiver_is_reached_with_its_ca_file_and_refused_without() {
    let ca = chat_tests::tls::TestCa::new("webhook");
    let rx = Receiver::start_tls(Mode::Accept, ca.server_tls()).await;
    assert!(rx.url.starts_with("https://"), "{}", rx.url);

    let untrusting = TestGateway::start_with(|c| configure(c, &rx.url)).await;
    let mut alice = untrusting.connect("alice", "phone").await;
    alice.send_to("bob", "over https, untrusted", None).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        rx.requests(),
        0,
        "no request past a handshake with an unknown CA"
    );
    assert!(
        metric(&untrusting, "chat_webhook_retried_total").await >= 1.0,
        "the refused attempts are retried"
    );
    drop(alice);
    drop(untrusting);

    let gw = TestGateway::start_with(|c| {
        configure(c, &rx.url);
        c.webhook.offline_webhook_ca_file = Some(ca.ca_file());
    })
    .await;
    let mut alice = gw.connect("alice", "phone").await;
    let reply = alice.send_to("bob", "over https", None).await;
    let expected = BTreeSet::from([delivery(&id(&reply), "bob")]);
    rx.wait_for(&expected, Duration::from_secs(10)).await;
    assert_eq!(rx.bad_signatures(), 0);
}
