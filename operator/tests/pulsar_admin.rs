//! `HttpPulsarAdmin` against the Pulsar test broker's admin REST API (`pulsar-test-broker`, which
//! answers with Pulsar's paths, statuses and `{"reason": …}` bodies): provisioning is idempotent,
//! the topics it creates are the broker's (listed by its admin API, consumable with the real
//! `pulsar` client), a forced delete removes a topic a gone pod left a subscription on, and an
//! unreachable broker is a clear `Error::Pulsar`. Then the real controller (on the in-process fake
//! API server) provisions and removes topics on the broker through the same adapter.

#![allow(
    missing_docs,
    unreachable_pub,
    reason = "test support and tools, not a library API: the workspace lints are for the libraries"
)]

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chat_operator::pulsar::{AdminEndpoint, HttpPulsarAdmin, PulsarAdmin};
use chat_operator::Error;
use chat_tests::fixtures::free_port;
use futures_util::StreamExt;
use kube::api::PostParams;
use pulsar::{Pulsar, SubType, TokioExecutor};
use pulsar_test_broker::{Broker, BrokerHandle};
use serde_json::{json, Value};
use support::backends::JournaledPulsar;
use support::{topic, Harness};

/// The inbox topic of `ordinal` in a cluster with key prefix `demo`, in `tenant/namespace`.
fn inbox(tenant: &str, namespace: &str, ordinal: i32) -> String {
    format!("persistent://{tenant}/{namespace}/demo-pod-demo-gateway-{ordinal}")
}

/// `GET {admin}/admin/v2/{path}` on the broker: status and JSON body.
async fn admin_get(broker: &BrokerHandle, path: &str) -> (u16, Value) {
    let response = reqwest::get(format!("{}/admin/v2/{path}", broker.admin_url()))
        .await
        .expect("the broker's admin API answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// The topics of `tenant/namespace` as the broker's admin API lists them.
async fn listed(broker: &BrokerHandle, tenant: &str, namespace: &str) -> BTreeSet<String> {
    let (status, body) = admin_get(broker, &format!("persistent/{tenant}/{namespace}")).await;
    assert_eq!(status, 200, "listing {tenant}/{namespace}: {body}");
    serde_json::from_value(body).expect("a list of topic names")
}

async fn broker() -> BrokerHandle {
    Broker::start("127.0.0.1:0", "127.0.0.1:0")
        .await
        .expect("start the pulsar test broker")
}

#[tokio::test]
async fn provisioning_twice_creates_the_namespace_and_topics_once() {
    let broker = broker().await;
    let url = &AdminEndpoint::plain(broker.admin_url());
    let admin = HttpPulsarAdmin::new().unwrap();

    // An existing tenant (public) and a new one (acme, created with the broker's cluster).
    for (tenant, namespace) in [("public", "chat"), ("acme", "chat")] {
        admin
            .ensure_namespace(url, tenant, namespace)
            .await
            .unwrap();
        admin
            .ensure_namespace(url, tenant, namespace)
            .await
            .unwrap();
        let (status, namespaces) = admin_get(&broker, &format!("namespaces/{tenant}")).await;
        assert_eq!(status, 200);
        assert!(
            namespaces
                .as_array()
                .unwrap()
                .contains(&json!(format!("{tenant}/{namespace}"))),
            "{namespaces}"
        );
    }
    let (_, tenants) = admin_get(&broker, "tenants").await;
    assert_eq!(tenants, json!(["acme", "public"]));

    let wanted: BTreeSet<String> = (0..3).map(|n| inbox("acme", "chat", n)).collect();
    for _ in 0..2 {
        for topic in &wanted {
            admin.create_topic(url, topic).await.unwrap();
        }
    }
    assert_eq!(listed(&broker, "acme", "chat").await, wanted);
    assert!(listed(&broker, "public", "chat").await.is_empty());

    // A real consumer subscribes to a provisioned topic, as a gateway pod does, and gets what a
    // producer sends there.
    let client = Pulsar::builder(broker.service_url(), TokioExecutor)
        .build()
        .await
        .unwrap();
    let topic = inbox("acme", "chat", 1);
    let mut consumer: pulsar::Consumer<Vec<u8>, _> = client
        .consumer()
        .with_topic(&topic)
        .with_subscription("demo-gateway-1")
        .with_subscription_type(SubType::Exclusive)
        .build()
        .await
        .unwrap();
    let mut producer = client.producer().with_topic(&topic).build().await.unwrap();
    producer
        .send_non_blocking(b"hello".to_vec())
        .await
        .unwrap()
        .await
        .unwrap();
    let message = tokio::time::timeout(Duration::from_secs(10), consumer.next())
        .await
        .expect("a message within 10 s")
        .expect("the stream is open")
        .unwrap();
    assert_eq!(message.payload.data, b"hello");
    consumer.ack(&message).await.unwrap();
    assert_eq!(
        listed(&broker, "acme", "chat").await,
        wanted,
        "using a provisioned topic creates no other"
    );
}

#[tokio::test]
async fn a_forced_delete_removes_a_topic_with_a_subscription_and_a_missing_one_is_done() {
    let broker = broker().await;
    let url = &AdminEndpoint::plain(broker.admin_url());
    let admin = HttpPulsarAdmin::new().unwrap();
    admin.ensure_namespace(url, "public", "chat").await.unwrap();
    let (doomed, kept) = (inbox("public", "chat", 2), inbox("public", "chat", 0));
    for topic in [&doomed, &kept] {
        admin.create_topic(url, topic).await.unwrap();
    }

    // The pod of ordinal 2 subscribes with its consumer still attached: only a forced delete
    // goes through (a plain one is 412 on this broker, as on Pulsar).
    let client = Pulsar::builder(broker.service_url(), TokioExecutor)
        .build()
        .await
        .unwrap();
    let consumer: pulsar::Consumer<Vec<u8>, _> = client
        .consumer()
        .with_topic(&doomed)
        .with_subscription("demo-gateway-2")
        .with_subscription_type(SubType::Exclusive)
        .build()
        .await
        .unwrap();
    let plain = reqwest::Client::new()
        .delete(format!(
            "{}/admin/v2/persistent/public/chat/demo-pod-demo-gateway-2",
            url.url
        ))
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(
        plain.as_u16(),
        412,
        "an attached consumer blocks a plain delete"
    );
    // The pod goes away; its durable subscription stays on the topic, with no consumer.
    let mut consumer = consumer;
    consumer.close().await.unwrap();
    let subscriptions = broker
        .topic_stats(&doomed)
        .expect("the topic exists")
        .subscriptions;
    assert_eq!(
        subscriptions.get("demo-gateway-2").map(|s| s.consumers),
        Some(0),
        "{subscriptions:?}"
    );

    admin.delete_topic(url, &doomed).await.unwrap();
    assert_eq!(
        listed(&broker, "public", "chat").await,
        BTreeSet::from([kept.clone()])
    );
    admin.delete_topic(url, &doomed).await.unwrap();
    admin
        .delete_topic(url, &inbox("public", "chat", 7))
        .await
        .unwrap();
    assert_eq!(
        listed(&broker, "public", "chat").await,
        BTreeSet::from([kept])
    );
}

#[tokio::test]
async fn broker_refusals_and_an_unreachable_broker_are_pulsar_errors_naming_the_url() {
    let broker = broker().await;
    let admin = HttpPulsarAdmin::new().unwrap();

    // A namespace that was never provisioned: the broker's 404 and reason come through.
    let err = admin
        .create_topic(
            &AdminEndpoint::plain(broker.admin_url()),
            &inbox("public", "nowhere", 0),
        )
        .await
        .unwrap_err();
    let Error::Pulsar { url, reason } = &err else {
        panic!("not a Pulsar error: {err:?}");
    };
    assert!(url.ends_with("/admin/v2/persistent/public/nowhere/demo-pod-demo-gateway-0"));
    assert!(
        reason.starts_with("404") && reason.contains("public/nowhere"),
        "{reason}"
    );

    // Nothing listens: every call fails fast with the URL it tried.
    let down = format!("http://127.0.0.1:{}", free_port());
    let endpoint = AdminEndpoint::plain(&down);
    let started = std::time::Instant::now();
    let failures = [
        admin.ensure_namespace(&endpoint, "public", "chat").await,
        admin
            .create_topic(&endpoint, &inbox("public", "chat", 0))
            .await,
        admin
            .delete_topic(&endpoint, &inbox("public", "chat", 0))
            .await,
    ];
    for failure in failures {
        match failure {
            Err(Error::Pulsar { url, reason }) => {
                assert!(url.starts_with(&down), "{url}");
                assert!(!reason.is_empty());
            }
            other => panic!("expected Error::Pulsar, got {other:?}"),
        }
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// The real controller with the real `HttpPulsarAdmin` against the broker (the gateways and
/// Redis are the support fakes): topics appear on the broker before the pods, the topic of a
/// removed ordinal goes after its pod, and deleting the ChatCluster deletes the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_controller_provisions_and_removes_topics_on_the_broker() {
    let broker = broker().await;
    let mut h = Harness::new();
    h.pulsar_admin = Arc::new(JournaledPulsar::new(
        Arc::new(HttpPulsarAdmin::new().unwrap()),
        h.journal.clone(),
    ));
    h.operator = Some(h.spawn_controller());
    let mut cc = support::sample(3, "chat-gateway:1");
    cc.spec.pulsar.admin_url = broker.admin_url().to_owned();
    h.clusters()
        .create(&PostParams::default(), &cc)
        .await
        .expect("creating the ChatCluster");
    let on_broker = |_: &Harness| broker.topics().into_iter().collect::<BTreeSet<_>>();
    h.wait_until("3 pods", |h| h.converged(3)).await;
    assert_eq!(on_broker(&h), (0..3).map(topic).collect());
    assert_eq!(listed(&broker, "public", "chat").await.len(), 3);
    let entries = h.journal.entries();
    let created = h
        .journal
        .position(0, &format!("pulsar create {}", topic(2)));
    let scaled = h
        .journal
        .position(0, "PATCH StatefulSet/demo-gateway replicas=3");
    assert!(created < scaled, "topics before pods: {entries:#?}");

    h.patch_spec(json!({"replicas": 2})).await;
    h.wait_until("2 pods and 2 topics on the broker", |h| {
        h.converged(2) && on_broker(h) == (0..2).map(topic).collect()
    })
    .await;
    let entries = h.journal.entries();
    let shrunk = h
        .journal
        .position(0, "PATCH StatefulSet/demo-gateway replicas=2");
    let deleted = h
        .journal
        .position(0, &format!("pulsar delete {}", topic(2)));
    assert!(
        shrunk < deleted,
        "the topic goes after its pod: {entries:#?}"
    );

    h.delete_cluster().await;
    assert!(listed(&broker, "public", "chat").await.is_empty());
    h.stop().await;
}

/// A broker on `https://` with a private CA and token authentication: the operator gets in with
/// the ChatCluster's token and CA (`adminTokenSecretRef`, `caSecretRef`), and is refused without
/// either, with the reason in the error.
#[tokio::test]
async fn the_admin_api_over_https_wants_the_ca_and_the_token() {
    let ca = chat_tests::tls::TestCa::new("operator");
    let config = pulsar_test_broker::BrokerConfig {
        tls: Some(ca.server_tls()),
        auth_token: Some("operator-token".into()),
        ..Default::default()
    };
    let broker = Broker::start_with(config, "127.0.0.1:0", "127.0.0.1:0")
        .await
        .unwrap();
    assert!(broker.admin_url().starts_with("https://"));
    let admin = HttpPulsarAdmin::new().unwrap();
    let topic = inbox("public", "chat", 0);
    let endpoint = AdminEndpoint {
        url: broker.admin_url().to_owned(),
        token: Some("operator-token".into()),
        ca_pem: Some(ca.ca_pem.clone().into_bytes()),
    };

    let no_ca = AdminEndpoint {
        ca_pem: None,
        ..endpoint.clone()
    };
    let err = admin.ensure_namespace(&no_ca, "public", "chat").await;
    let Err(Error::Pulsar { reason, .. }) = err else {
        panic!("an unknown CA must be refused: {err:?}");
    };
    assert!(!reason.is_empty());
    let no_token = AdminEndpoint {
        token: None,
        ..endpoint.clone()
    };
    let err = admin.ensure_namespace(&no_token, "public", "chat").await;
    let Err(Error::Pulsar { reason, .. }) = err else {
        panic!("no token must be refused: {err:?}");
    };
    assert!(reason.contains("401"), "{reason}");

    admin
        .ensure_namespace(&endpoint, "public", "chat")
        .await
        .unwrap();
    admin.create_topic(&endpoint, &topic).await.unwrap();
    assert!(broker.topics().contains(&topic), "{:?}", broker.topics());
    admin.delete_topic(&endpoint, &topic).await.unwrap();
    assert!(!broker.topics().contains(&topic));
}
