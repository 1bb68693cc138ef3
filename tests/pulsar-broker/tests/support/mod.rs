//! Helpers shared by the test binaries that drive the broker with the real `pulsar` client.
// each test binary uses a different subset of these helpers
#![allow(dead_code)]

use std::time::Duration;

use futures_util::StreamExt;
use pulsar::{
    consumer::{InitialPosition, Message},
    Consumer, ConsumerOptions, OperationRetryOptions, Pulsar, SubType, TokioExecutor,
};
use pulsar_test_broker::{Broker, BrokerHandle};

/// Upper bound for anything that should happen "soon" (reconnects included).
pub const SOON: Duration = Duration::from_secs(20);

/// How long to watch for something that must not happen.
pub const QUIET: Duration = Duration::from_millis(700);

/// Pause between attempts to build a consumer again, as a watchdog would.
pub const REBUILD_BACKOFF: Duration = Duration::from_millis(100);

pub type Client = Pulsar<TokioExecutor>;
pub type TestConsumer = Consumer<Vec<u8>, TokioExecutor>;

pub async fn broker() -> BrokerHandle {
    Broker::start("127.0.0.1:0", "127.0.0.1:0")
        .await
        .expect("broker starts")
}

/// A client with the crate's default options: the behaviour the gateway gets.
pub async fn client(broker: &BrokerHandle) -> Client {
    Pulsar::builder(broker.service_url(), TokioExecutor)
        .build()
        .await
        .expect("client connects")
}

/// A client that retries failed operations every `retry_delay`, at most `max_retries` times.
pub async fn client_with_retries(
    broker: &BrokerHandle,
    retry_delay: Duration,
    max_retries: Option<u32>,
) -> Client {
    let retries = OperationRetryOptions {
        retry_delay,
        max_retries,
        ..Default::default()
    };
    Pulsar::builder(broker.service_url(), TokioExecutor)
        .with_operation_retry_options(retries)
        .build()
        .await
        .expect("client connects")
}

/// A consumer reading from the start of the topic.
pub async fn subscribe(
    client: &Client,
    topic: &str,
    subscription: &str,
    sub_type: SubType,
) -> Result<TestConsumer, pulsar::Error> {
    client
        .consumer()
        .with_topic(topic)
        .with_subscription(subscription)
        .with_subscription_type(sub_type)
        .with_options(ConsumerOptions::default().with_initial_position(InitialPosition::Earliest))
        .build()
        .await
}

/// An exclusive consumer, built the way a watchdog must after a connection drop: retrying,
/// because right after a drop the client's pool can still hand out the dead connection and
/// `build()` fails with `Disconnected` until that connection's reader has noticed. Returns the
/// consumer and how many attempts failed.
pub async fn subscribe_retrying(
    client: &Client,
    topic: &str,
    subscription: &str,
) -> (TestConsumer, u32) {
    let give_up = tokio::time::Instant::now() + SOON;
    let mut failures = 0;
    loop {
        match subscribe(client, topic, subscription, SubType::Exclusive).await {
            Ok(consumer) => return (consumer, failures),
            Err(error) if tokio::time::Instant::now() < give_up => {
                failures += 1;
                eprintln!("subscribe attempt {failures} failed: {error:?}");
                tokio::time::sleep(REBUILD_BACKOFF).await;
            }
            Err(error) => panic!("could not subscribe again: {error:?}"),
        }
    }
}

/// Publishes and waits for each receipt.
pub async fn publish(client: &Client, topic: &str, payloads: impl IntoIterator<Item = String>) {
    let mut producer = client
        .producer()
        .with_topic(topic)
        .build()
        .await
        .expect("producer");
    for payload in payloads {
        producer
            .send_non_blocking(payload.into_bytes())
            .await
            .expect("send")
            .await
            .expect("receipt");
    }
}

/// The next message; fails the test if none comes soon or the stream ends.
pub async fn next(consumer: &mut TestConsumer) -> Message<Vec<u8>> {
    tokio::time::timeout(SOON, consumer.next())
        .await
        .expect("a message in time")
        .expect("stream open")
        .expect("no consumer error")
}

pub fn text(message: &Message<Vec<u8>>) -> String {
    String::from_utf8(message.payload.data.clone()).expect("utf-8 payload")
}

pub fn numbered(prefix: &str, count: usize) -> Vec<String> {
    (0..count).map(|i| format!("{prefix}-{i}")).collect()
}

/// Polls the broker's counters until `check` holds; fails the test if it does not soon.
pub async fn until(broker: &BrokerHandle, what: &str, check: impl Fn(&BrokerHandle) -> bool) {
    let waited = tokio::time::timeout(SOON, async {
        while !check(broker) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "timed out waiting for: {what}");
}

/// Unacked entries of a subscription, if it exists.
pub fn backlog(broker: &BrokerHandle, topic: &str, subscription: &str) -> Option<u64> {
    let stats = broker.topic_stats(topic)?;
    Some(stats.subscriptions.get(subscription)?.backlog)
}

/// Consumers attached to a subscription (0 if it does not exist).
pub fn consumers(broker: &BrokerHandle, topic: &str, subscription: &str) -> usize {
    broker
        .topic_stats(topic)
        .and_then(|stats| stats.subscriptions.get(subscription).map(|s| s.consumers))
        .unwrap_or(0)
}
