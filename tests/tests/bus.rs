//! The Pulsar bus on its own (the real `pulsar` crate against the Pulsar-protocol test broker):
//! many concurrent publishers to one pod lose nothing, keep each publisher's order, and share
//! Pulsar messages (forwarding batches what queues while a send waits for its receipt).

use std::collections::HashMap;
use std::time::Duration;

use chat_gateway::bus::pulsar::{PulsarBus, Topics};
use chat_gateway::bus::{Bus, BusEvent};
use chat_gateway::delivery::DeviceRoute;
use chat_protocol::KickReason;

const PUBLISHERS: usize = 40;
const EACH: usize = 100;

/// An event that says who published it and its number (in its one device's name).
fn event(publisher: usize, n: usize) -> BusEvent {
    let device = DeviceRoute {
        user: publisher.to_string(),
        device: n.to_string(),
        pod: "b".into(),
        epoch: 1,
    };
    BusEvent::Kick {
        devices: vec![device],
        reason: KickReason::Admin,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishers_lose_nothing_keep_their_order_and_share_messages() {
    chat_tests::init_logging();
    let broker = chat_tests::cluster::start_broker("public", "chat").await;
    let topics = Topics {
        tenant: "public".into(),
        namespace: "chat".into(),
        key_prefix: chat_tests::redis::unique_prefix("bus"),
    };
    let connect = || {
        PulsarBus::connect(
            broker.service_url(),
            Some(broker.admin_url()),
            topics.clone(),
        )
    };
    let receiver = connect().await.expect("receiving pod's bus");
    let mut inbox = receiver.subscribe("b").await.expect("subscribe");
    let sender = std::sync::Arc::new(connect().await.expect("sending pod's bus"));

    let mut tasks = Vec::new();
    for p in 0..PUBLISHERS {
        let sender = sender.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..EACH {
                sender
                    .publish("b", event(p, n))
                    .await
                    .unwrap_or_else(|e| panic!("publish {p}/{n}: {e}"));
            }
        }));
    }
    for t in tasks {
        t.await.expect("publisher");
    }

    let mut next: HashMap<usize, usize> = HashMap::new();
    for _ in 0..PUBLISHERS * EACH {
        let got = tokio::time::timeout(Duration::from_secs(20), inbox.recv())
            .await
            .unwrap_or_else(|_| panic!("only {} events arrived", next.values().sum::<usize>()))
            .expect("inbox open");
        let BusEvent::Kick { devices, .. } = got else {
            panic!("unexpected event {got:?}")
        };
        let (p, n): (usize, usize) = (
            devices[0].user.parse().unwrap(),
            devices[0].device.parse().unwrap(),
        );
        let expected = next.entry(p).or_default();
        assert_eq!(n, *expected, "publisher {p}'s events out of order");
        *expected += 1;
    }
    assert!(next.values().all(|&n| n == EACH), "{next:?}");

    let topic = topics.pod_topic("b");
    let stats = broker.topic_stats(&topic).expect("the inbox topic");
    assert!(
        stats.messages < (PUBLISHERS * EACH) as u64,
        "{} events went out as {} Pulsar messages: no batching",
        PUBLISHERS * EACH,
        stats.messages
    );
}
