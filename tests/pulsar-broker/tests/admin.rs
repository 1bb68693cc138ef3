//! The admin REST API over HTTP, as the operator calls it: tenants, namespaces and topics with
//! Pulsar's statuses (204 created/deleted, 404 missing parent, 409 duplicate, 412 in use).

#![allow(
    missing_docs,
    unreachable_pub,
    reason = "test support and tools, not a library API: the workspace lints are for the libraries"
)]

use futures_util::StreamExt;
use pulsar::{Pulsar, SubType, TokioExecutor};
use pulsar_test_broker::{Broker, BrokerHandle};
use reqwest::StatusCode;

struct Admin {
    http: reqwest::Client,
    base: String,
}

impl Admin {
    fn new(broker: &BrokerHandle) -> Self {
        Admin {
            http: reqwest::Client::new(),
            base: format!("{}/admin/v2", broker.admin_url()),
        }
    }

    async fn put(&self, path: &str) -> StatusCode {
        self.http
            .put(format!("{}/{path}", self.base))
            .json(&serde_json::json!({ "allowedClusters": ["standalone"] }))
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn delete(&self, path: &str) -> StatusCode {
        self.http
            .delete(format!("{}/{path}", self.base))
            .send()
            .await
            .unwrap()
            .status()
    }

    async fn list(&self, path: &str) -> (StatusCode, serde_json::Value) {
        let response = self
            .http
            .get(format!("{}/{path}", self.base))
            .send()
            .await
            .unwrap();
        (response.status(), response.json().await.unwrap())
    }
}

#[tokio::test]
async fn create_list_delete_with_conflicts_and_missing_parents() {
    let broker = Broker::start("127.0.0.1:0", "127.0.0.1:0").await.unwrap();
    let admin = Admin::new(&broker);

    assert_eq!(
        admin.put("namespaces/acme/chat").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        admin.list("clusters").await,
        (StatusCode::OK, serde_json::json!(["standalone"]))
    );
    assert_eq!(admin.put("tenants/acme").await, StatusCode::NO_CONTENT);
    assert_eq!(admin.put("tenants/acme").await, StatusCode::CONFLICT);
    assert_eq!(
        admin.list("tenants").await,
        (StatusCode::OK, serde_json::json!(["acme", "public"]))
    );

    assert_eq!(
        admin.put("persistent/acme/chat/cc-pod-0").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        admin.put("namespaces/acme/chat").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        admin.put("namespaces/acme/chat").await,
        StatusCode::CONFLICT
    );
    assert_eq!(
        admin.list("namespaces/acme").await,
        (StatusCode::OK, serde_json::json!(["acme/chat"]))
    );

    assert_eq!(
        admin.put("persistent/acme/chat/cc-pod-0").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        admin.put("persistent/acme/chat/cc-pod-1").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        admin.put("persistent/acme/chat/cc-pod-0").await,
        StatusCode::CONFLICT
    );
    assert_eq!(
        admin.list("persistent/acme/chat").await,
        (
            StatusCode::OK,
            serde_json::json!([
                "persistent://acme/chat/cc-pod-0",
                "persistent://acme/chat/cc-pod-1"
            ])
        )
    );

    assert_eq!(
        admin.delete("persistent/acme/chat/cc-pod-0").await,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        admin.delete("persistent/acme/chat/cc-pod-0").await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        admin.list("persistent/acme/chat").await.1,
        serde_json::json!(["persistent://acme/chat/cc-pod-1"])
    );

    let (status, body) = admin.list("persistent/acme/missing").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body["reason"].as_str().unwrap().contains("acme/missing"));
}

#[tokio::test]
async fn topics_created_by_clients_are_listed() {
    let broker = Broker::start("127.0.0.1:0", "127.0.0.1:0").await.unwrap();
    let admin = Admin::new(&broker);
    let client = Pulsar::builder(broker.service_url(), TokioExecutor)
        .build()
        .await
        .unwrap();
    client
        .producer()
        .with_topic("persistent://public/default/auto")
        .build()
        .await
        .unwrap();
    assert_eq!(
        admin.list("persistent/public/default").await.1,
        serde_json::json!(["persistent://public/default/auto"])
    );
    assert_eq!(
        admin.put("persistent/public/default/auto").await,
        StatusCode::CONFLICT
    );
}

/// Deleting a topic in use needs `?force=true`, which closes its consumers; the client then
/// re-subscribes by itself, re-creating the topic (as Pulsar's auto-creation would).
#[tokio::test]
async fn deleting_a_topic_in_use_needs_force_and_the_consumer_comes_back() {
    let broker = Broker::start("127.0.0.1:0", "127.0.0.1:0").await.unwrap();
    let admin = Admin::new(&broker);
    assert_eq!(
        admin.put("persistent/public/default/busy").await,
        StatusCode::NO_CONTENT
    );
    let client = Pulsar::builder(broker.service_url(), TokioExecutor)
        .build()
        .await
        .unwrap();
    let mut consumer: pulsar::Consumer<Vec<u8>, _> = client
        .consumer()
        .with_topic("persistent://public/default/busy")
        .with_subscription("pod-0")
        .with_subscription_type(SubType::Exclusive)
        .build()
        .await
        .unwrap();

    assert_eq!(
        admin.delete("persistent/public/default/busy").await,
        StatusCode::PRECONDITION_FAILED
    );
    assert_eq!(
        admin
            .delete("persistent/public/default/busy?force=true")
            .await,
        StatusCode::NO_CONTENT
    );

    let resubscribed = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let subscribed = broker
                .topic_stats("persistent://public/default/busy")
                .is_some_and(|stats| {
                    stats
                        .subscriptions
                        .get("pod-0")
                        .is_some_and(|s| s.consumers == 1)
                });
            if subscribed {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(resubscribed.is_ok(), "the consumer did not re-subscribe");
    let mut producer = client
        .producer()
        .with_topic("persistent://public/default/busy")
        .build()
        .await
        .unwrap();
    producer
        .send_non_blocking(b"after delete".to_vec())
        .await
        .unwrap()
        .await
        .unwrap();
    let message = tokio::time::timeout(std::time::Duration::from_secs(10), consumer.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(message.payload.data, b"after delete");
}
