//! The test broker against the real `pulsar` client crate (6.9, tokio runtime): what the gateway
//! relies on — produce/consume, exclusive subscriptions, acks and redelivery, batching and
//! compression. Faults (dropped connections, broker away, stalls) are in `faults.rs`.

#![allow(
    missing_docs,
    unreachable_pub,
    reason = "test support and tools, not a library API: the workspace lints are for the libraries"
)]

mod support;

use std::{collections::BTreeSet, time::Duration};

use futures_util::StreamExt;
use pulsar::{
    compression::Compression, error::ConnectionError, proto::ServerError, ProducerOptions, SubType,
};
use support::*;

#[tokio::test]
async fn round_trip_on_a_persistent_topic_with_an_exclusive_subscription() {
    let broker = broker().await;
    let client = client(&broker).await;
    let topic = "persistent://public/default/round-trip";
    let mut consumer = subscribe(&client, topic, "pod-a", SubType::Exclusive)
        .await
        .unwrap();

    let mut producer = client.producer().with_topic(topic).build().await.unwrap();
    let mut entry_ids = Vec::new();
    for payload in numbered("m", 10) {
        let receipt = producer
            .send_non_blocking(payload.into_bytes())
            .await
            .unwrap()
            .await
            .unwrap();
        entry_ids.push(receipt.message_id.unwrap().entry_id);
    }
    assert_eq!(entry_ids, (0..10).collect::<Vec<u64>>());

    for expected in numbered("m", 10) {
        let message = next(&mut consumer).await;
        assert_eq!(text(&message), expected);
        consumer.ack(&message).await.unwrap();
    }
    until(&broker, "all acked", |b| {
        backlog(b, topic, "pod-a") == Some(0)
    })
    .await;
    let stats = broker.topic_stats(topic).unwrap();
    assert_eq!((stats.entries, stats.messages), (10, 10));
    assert_eq!(stats.subscriptions["pod-a"].sub_type, SubType::Exclusive);
}

#[tokio::test]
async fn second_exclusive_consumer_is_rejected_with_consumer_busy() {
    let broker = broker().await;
    let first = client(&broker).await;
    let _holder = subscribe(&first, "exclusive", "pod-a", SubType::Exclusive)
        .await
        .unwrap();

    // without retries the client hands the broker's ConsumerBusy to the caller
    let second = client_with_retries(&broker, Duration::from_millis(50), Some(0)).await;
    let error = subscribe(&second, "exclusive", "pod-a", SubType::Exclusive)
        .await
        .err()
        .expect("second exclusive consumer rejected");
    assert!(
        matches!(
            error,
            pulsar::Error::Connection(ConnectionError::PulsarError(
                Some(ServerError::ConsumerBusy),
                _
            ))
        ),
        "{error:?}"
    );
    // a shared consumer cannot join an exclusive subscription either
    let error = subscribe(&second, "exclusive", "pod-a", SubType::Shared).await;
    assert!(error.is_err());
    assert_eq!(consumers(&broker, "exclusive", "pod-a"), 1);
}

/// With the default `max_retries: None` the client retries ConsumerBusy every `retry_delay`
/// (5 s by default) forever: `build()` does not fail, it waits until the holder leaves. A pod
/// restarting while its old connection lingers waits like this.
#[tokio::test]
async fn with_unbounded_retries_a_second_exclusive_consumer_waits_for_the_first() {
    let broker = broker().await;
    let first = client(&broker).await;
    let mut holder = subscribe(&first, "takeover", "pod-a", SubType::Exclusive)
        .await
        .unwrap();

    let second = client_with_retries(&broker, Duration::from_millis(100), None).await;
    let waiting = tokio::spawn(async move {
        let consumer = subscribe(&second, "takeover", "pod-a", SubType::Exclusive).await;
        (consumer, second)
    });
    tokio::time::sleep(QUIET).await;
    assert!(
        !waiting.is_finished(),
        "second consumer should still be retrying"
    );

    holder.close().await.unwrap();
    let (consumer, _second) = tokio::time::timeout(SOON, waiting).await.unwrap().unwrap();
    let mut consumer = consumer.expect("takes over once the first left");
    publish(&first, "takeover", ["after".to_owned()]).await;
    assert_eq!(text(&next(&mut consumer).await), "after");
}

#[tokio::test]
async fn acked_messages_are_not_redelivered() {
    let broker = broker().await;
    let client = client(&broker).await;
    let topic = "acked";
    let mut consumer = subscribe(&client, topic, "s", SubType::Exclusive)
        .await
        .unwrap();
    publish(&client, topic, numbered("a", 5)).await;
    for _ in 0..5 {
        let message = next(&mut consumer).await;
        consumer.ack(&message).await.unwrap();
    }
    until(&broker, "acks applied", |b| {
        backlog(b, topic, "s") == Some(0)
    })
    .await;
    consumer.close().await.unwrap();
    drop(consumer);

    let mut again = subscribe(&client, topic, "s", SubType::Exclusive)
        .await
        .unwrap();
    let nothing = tokio::time::timeout(QUIET, again.next()).await;
    assert!(nothing.is_err(), "acked messages came back: {nothing:?}");
    publish(&client, topic, ["fresh".to_owned()]).await;
    assert_eq!(text(&next(&mut again).await), "fresh");
}

#[tokio::test]
async fn cumulative_ack_acks_everything_before() {
    let broker = broker().await;
    let client = client(&broker).await;
    let mut consumer = subscribe(&client, "cumulative", "s", SubType::Exclusive)
        .await
        .unwrap();
    publish(&client, "cumulative", numbered("c", 4)).await;
    let mut last = None;
    for _ in 0..4 {
        last = Some(next(&mut consumer).await);
    }
    consumer.cumulative_ack(&last.unwrap()).await.unwrap();
    until(&broker, "cumulative ack", |b| {
        backlog(b, "cumulative", "s") == Some(0)
    })
    .await;
}

/// A batching producer stores one entry per batch; the consumer gets the messages one by one and
/// the entry counts as acked once every message in it is.
#[tokio::test]
async fn batched_messages_arrive_one_by_one_and_are_acked_per_message() {
    let broker = broker().await;
    let client = client(&broker).await;
    let mut consumer = subscribe(&client, "batched", "s", SubType::Exclusive)
        .await
        .unwrap();
    let options = ProducerOptions {
        batch_size: Some(5),
        ..Default::default()
    };
    let mut producer = client
        .producer()
        .with_topic("batched")
        .with_options(options)
        .build()
        .await
        .unwrap();
    let mut receipts = Vec::new();
    for payload in numbered("b", 5) {
        receipts.push(
            producer
                .send_non_blocking(payload.into_bytes())
                .await
                .unwrap(),
        );
    }
    for receipt in receipts {
        receipt.await.unwrap();
    }
    let stats = broker.topic_stats("batched").unwrap();
    assert_eq!((stats.entries, stats.messages), (1, 5));

    for expected in numbered("b", 5) {
        let message = next(&mut consumer).await;
        assert_eq!(text(&message), expected);
        consumer.ack(&message).await.unwrap();
    }
    until(&broker, "whole batch acked", |b| {
        backlog(b, "batched", "s") == Some(0)
    })
    .await;
}

/// Compressed payloads pass through untouched; the consumer decompresses them.
#[tokio::test]
async fn compressed_messages_round_trip() {
    let broker = broker().await;
    let client = client(&broker).await;
    let mut consumer = subscribe(&client, "compressed", "s", SubType::Exclusive)
        .await
        .unwrap();
    for compression in [
        Compression::Lz4(Default::default()),
        Compression::Zlib(Default::default()),
        Compression::Zstd(Default::default()),
        Compression::Snappy(Default::default()),
    ] {
        let options = ProducerOptions {
            compression: Some(compression),
            ..Default::default()
        };
        let mut producer = client
            .producer()
            .with_topic("compressed")
            .with_options(options)
            .build()
            .await
            .unwrap();
        let payload = "squeeze ".repeat(100);
        producer
            .send_non_blocking(payload.clone().into_bytes())
            .await
            .unwrap()
            .await
            .unwrap();
        assert_eq!(text(&next(&mut consumer).await), payload);
    }
}

/// The consumer goes away without acking: the next consumer on the subscription gets the same
/// messages, flagged as redelivered.
#[tokio::test]
async fn unacked_messages_go_to_the_next_consumer() {
    let broker = broker().await;
    let topic = "unacked";
    let first = client(&broker).await;
    let mut consumer = subscribe(&first, topic, "pod-a", SubType::Exclusive)
        .await
        .unwrap();
    publish(&first, topic, numbered("u", 5)).await;
    for expected in numbered("u", 5) {
        assert_eq!(text(&next(&mut consumer).await), expected);
    }
    drop(consumer);
    drop(first);
    until(&broker, "first consumer gone", |b| {
        consumers(b, topic, "pod-a") == 0
    })
    .await;
    assert_eq!(
        broker.topic_stats(topic).unwrap().subscriptions["pod-a"].to_redeliver,
        5
    );

    let second = client(&broker).await;
    let mut consumer = subscribe(&second, topic, "pod-a", SubType::Exclusive)
        .await
        .unwrap();
    for expected in numbered("u", 5) {
        let message = next(&mut consumer).await;
        assert_eq!(text(&message), expected);
        consumer.ack(&message).await.unwrap();
    }
    until(&broker, "acked by the second", |b| {
        backlog(b, topic, "pod-a") == Some(0)
    })
    .await;
}

/// `nack` sends REDELIVER_UNACKNOWLEDGED_MESSAGES at once (DESIGN.md §10).
#[tokio::test]
async fn nack_redelivers_at_once() {
    let broker = broker().await;
    let client = client(&broker).await;
    let mut consumer = subscribe(&client, "nack", "s", SubType::Exclusive)
        .await
        .unwrap();
    publish(&client, "nack", ["once".to_owned()]).await;
    let message = next(&mut consumer).await;
    consumer.nack(&message).await.unwrap();
    let again = next(&mut consumer).await;
    assert_eq!(text(&again), "once");
    assert_eq!(again.message_id(), message.message_id());
}

#[tokio::test]
async fn shared_subscription_spreads_messages_over_consumers() {
    let broker = broker().await;
    let client = client(&broker).await;
    let mut a = subscribe(&client, "shared", "workers", SubType::Shared)
        .await
        .unwrap();
    let mut b = subscribe(&client, "shared", "workers", SubType::Shared)
        .await
        .unwrap();
    publish(&client, "shared", numbered("s", 6)).await;
    let mut seen = BTreeSet::new();
    for _ in 0..3 {
        seen.insert(text(&next(&mut a).await));
        seen.insert(text(&next(&mut b).await));
    }
    assert_eq!(seen, numbered("s", 6).into_iter().collect());
}

#[tokio::test]
async fn unsubscribe_deletes_the_subscription() {
    let broker = broker().await;
    let client = client(&broker).await;
    let mut consumer = subscribe(&client, "unsub", "gone", SubType::Exclusive)
        .await
        .unwrap();
    consumer.unsubscribe().await.unwrap();
    assert!(broker
        .topic_stats("unsub")
        .unwrap()
        .subscriptions
        .is_empty());
}
