//! Faults, and what the real `pulsar` client (6.9.1) does about them — the behaviour the
//! gateway's consumer watchdog (DESIGN.md §10) has to cover:
//!
//! - connections cut: the producer re-creates itself and resends; the consumer *usually*
//!   re-subscribes by itself, but sometimes its stream ends instead (see
//!   [`after_a_drop_a_consumer_recovers_or_its_stream_ends_it_never_hangs`]);
//! - broker away: the consumer stream ends;
//! - delivery stalls: the stream goes quiet without an error.

#![allow(
    missing_docs,
    unreachable_pub,
    reason = "test support and tools, not a library API: the workspace lints are for the libraries"
)]

mod support;

use std::{
    collections::BTreeSet,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use futures_util::StreamExt;
use pulsar::{Pulsar, SubType, TokioExecutor};
use pulsar_test_broker::{Broker, BrokerConfig};
use support::*;

/// Cut every connection while a producer publishes and a consumer acks: nothing is lost. The
/// producer re-creates itself on its next send (after a fixed 100 ms pause) and resends what had
/// no receipt. The consumer is read the way the gateway must read it: when its stream ends, a
/// new one is built (with retries). Unacked messages can come twice (same message id), so count
/// distinct payloads.
#[tokio::test]
async fn dropped_connections_mid_stream_lose_nothing_with_a_rebuilding_consumer() {
    const TOTAL: usize = 60;
    let broker = broker().await;
    let topic = "persistent://public/default/reconnect";
    let consumer_client = client(&broker).await;
    let consumer = subscribe(&consumer_client, topic, "pod-a", SubType::Exclusive)
        .await
        .unwrap();
    let rebuilds = Arc::new(AtomicUsize::new(0));
    let (received_tx, mut received) = tokio::sync::mpsc::unbounded_channel();
    let reader = tokio::spawn({
        let rebuilds = rebuilds.clone();
        async move {
            let mut consumer = consumer;
            loop {
                match consumer.next().await {
                    Some(message) => {
                        let message = message.expect("no consumer error");
                        consumer.ack(&message).await.expect("ack");
                        if received_tx.send(text(&message)).is_err() {
                            return;
                        }
                    }
                    None => {
                        rebuilds.fetch_add(1, Ordering::Relaxed);
                        consumer = subscribe_retrying(&consumer_client, topic, "pod-a").await.0;
                    }
                }
            }
        }
    });

    let producer_client = client(&broker).await;
    let mut producer = producer_client
        .producer()
        .with_topic(topic)
        .build()
        .await
        .unwrap();
    let mut distinct = BTreeSet::new();
    let mut dropped_at = None;
    for (i, payload) in numbered("r", TOTAL).into_iter().enumerate() {
        if i == TOTAL / 2 {
            assert_eq!(broker.drop_all_connections(), 2);
            dropped_at = Some(tokio::time::Instant::now());
        }
        producer
            .send_non_blocking(payload.into_bytes())
            .await
            .expect("send after reconnect")
            .await
            .expect("receipt after reconnect");
        while let Ok(payload) = received.try_recv() {
            distinct.insert(payload);
        }
    }
    let all = tokio::time::timeout(SOON, async {
        while distinct.len() < TOTAL {
            distinct.insert(received.recv().await.expect("reader running"));
        }
    })
    .await;
    assert!(all.is_ok(), "only {} of {TOTAL} arrived", distinct.len());
    eprintln!(
        "all {TOTAL} arrived {:?} after the drop; consumer rebuilt {} times",
        dropped_at.unwrap().elapsed(),
        rebuilds.load(Ordering::Relaxed)
    );
    reader.abort();
}

/// How a consumer on an otherwise idle connection comes out of a drop, over many rounds. Either
/// its engine re-subscribes by itself within milliseconds, or its stream ends (`None`) at once,
/// although the broker is up: when the connection's writer notices the dead socket before its
/// reader does, the engine takes the connection's error (`Connection::error()` clears it), the
/// pool hands out the dead connection as valid again, the engine's re-lookup fails with
/// `Disconnected`, and the engine stops. A rebuilt consumer works (its first `build()` may fail
/// with `Disconnected` for the same reason). What never happens is a silent hang.
#[tokio::test]
async fn after_a_drop_a_consumer_recovers_or_its_stream_ends_it_never_hangs() {
    const ROUNDS: usize = 20;
    #[derive(Debug)]
    enum Outcome {
        Resubscribed,
        Ended,
    }
    let broker = broker().await;
    let (mut resubscribed, mut ended, mut failed_builds) = (0, 0, 0);
    for round in 0..ROUNDS {
        let topic = format!("idle-drop-{round}");
        // a fresh client each round: the drop then meets its connection's first writes
        let client = client(&broker).await;
        let (mut consumer, failures) = subscribe_retrying(&client, &topic, "pod-a").await;
        failed_builds += failures;
        broker.drop_all_connections();
        assert_eq!(consumers(&broker, &topic, "pod-a"), 0);

        let outcome = tokio::time::timeout(SOON, async {
            tokio::select! {
                _ = async {
                    while consumers(&broker, &topic, "pod-a") == 0 {
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                } => Outcome::Resubscribed,
                end = consumer.next() => match end {
                    None => Outcome::Ended,
                    Some(_) => panic!("nothing was published, yet a message came"),
                },
            }
        })
        .await
        .expect("the consumer neither re-subscribed nor ended its stream: it hangs");
        match outcome {
            Outcome::Resubscribed => resubscribed += 1,
            Outcome::Ended => {
                ended += 1;
                let (rebuilt, failures) = subscribe_retrying(&client, &topic, "pod-a").await;
                failed_builds += failures;
                consumer = rebuilt;
            }
        }

        let publisher = support::client(&broker).await;
        publish(&publisher, &topic, [format!("round {round}")]).await;
        assert_eq!(text(&next(&mut consumer).await), format!("round {round}"));
    }
    eprintln!(
        "{ROUNDS} drops: re-subscribed by itself {resubscribed}, stream ended {ended}, \
         failed build() attempts {failed_builds}"
    );
}

/// When the broker stays away, the consumer stream ends: at once (as above), or once the
/// engine's connection retries are spent (defaults: 12 retries, backoff doubling from 10 ms up
/// to 30 s — about 41 s in all; shortened here). The client never rebuilds it: the gateway's
/// watchdog must, once the broker is back.
#[tokio::test]
async fn consumer_stream_ends_when_the_broker_stays_away_and_a_rebuilt_one_works() {
    let broker = broker().await;
    let service_addr = broker.service_addr();
    let retries = pulsar::ConnectionRetryOptions {
        max_retries: 2,
        min_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        ..Default::default()
    };
    let client = Pulsar::builder(broker.service_url(), TokioExecutor)
        .with_connection_retry_options(retries)
        .build()
        .await
        .unwrap();
    let mut consumer = subscribe(&client, "away", "pod-a", SubType::Exclusive)
        .await
        .unwrap();

    broker.shutdown().await;
    let ended = tokio::time::timeout(SOON, consumer.next()).await;
    assert!(
        matches!(ended, Ok(None)),
        "expected the stream to end, got {ended:?}"
    );

    // the broker comes back on the same port (empty: it keeps topics in memory)
    let broker = Broker::start(service_addr, "127.0.0.1:0")
        .await
        .expect("the old port is free again");
    let (mut rebuilt, _) = subscribe_retrying(&client, "away", "pod-a").await;
    publish(&client, "away", ["back".to_owned()]).await;
    assert_eq!(text(&next(&mut rebuilt).await), "back");
    drop(broker);
}

/// When the broker keeps the connection but stops pushing, the stream neither ends nor errors:
/// it just goes quiet while the backlog grows. Only a watchdog that compares progress (e.g.
/// messages it published to itself) can tell this from an idle topic.
#[tokio::test]
async fn paused_delivery_stalls_the_stream_silently_until_resumed() {
    let broker = broker().await;
    let client = client(&broker).await;
    let mut consumer = subscribe(&client, "stall", "pod-a", SubType::Exclusive)
        .await
        .unwrap();

    broker.pause_delivery(true);
    publish(&client, "stall", numbered("p", 3)).await;
    let quiet = tokio::time::timeout(QUIET, consumer.next()).await;
    assert!(
        quiet.is_err(),
        "nothing should arrive while paused: {quiet:?}"
    );
    assert_eq!(backlog(&broker, "stall", "pod-a"), Some(3));

    broker.pause_delivery(false);
    for expected in numbered("p", 3) {
        assert_eq!(text(&next(&mut consumer).await), expected);
    }
}

/// The broker PINGs: the client answers, so an idle connection survives many intervals.
#[tokio::test]
async fn idle_client_answers_broker_pings_and_stays_connected() {
    let config = BrokerConfig {
        keepalive_interval: Duration::from_millis(250),
        ..Default::default()
    };
    let broker = Broker::start_with(config, "127.0.0.1:0", "127.0.0.1:0")
        .await
        .unwrap();
    let client = client(&broker).await;
    let mut consumer = subscribe(&client, "idle", "s", SubType::Exclusive)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(broker.connection_count(), 1, "no reconnect happened");
    publish(&client, "idle", ["still here".to_owned()]).await;
    assert_eq!(text(&next(&mut consumer).await), "still here");
}
