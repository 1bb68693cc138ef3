//! This pod's inbox: its topic consumed with an exclusive subscription into the dispatcher's
//! channel, under a watchdog that rebuilds the consumer whenever its stream ends, fails, or stops
//! answering connection checks.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use pulsar::consumer::InitialPosition;
use pulsar::{Consumer, ConsumerOptions, Pulsar, SubType, TokioExecutor};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{unavailable, Topics};
use crate::bus::BusEvent;
use crate::error::Result;
use crate::model::now_ms;

/// An idle consumer's connection is checked this often.
const WATCHDOG_INTERVAL: Duration = Duration::from_secs(5);
/// How long a connection check may take before the consumer counts as hung.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between attempts to rebuild a failed consumer.
const REBUILD_DELAY: Duration = Duration::from_millis(500);

/// The inbox consumer: this pod's exclusive subscription, from the earliest unacked message.
async fn consumer(
    client: &Pulsar<TokioExecutor>,
    topic: &str,
    pod: &str,
) -> Result<Consumer<Vec<u8>, TokioExecutor>> {
    client
        .consumer()
        .with_topic(topic)
        .with_subscription(Topics::subscription(pod))
        .with_subscription_type(SubType::Exclusive)
        .with_options(ConsumerOptions::default().with_initial_position(InitialPosition::Earliest))
        .build()
        .await
        .map_err(|e| unavailable("consumer", e))
}

/// The events of one consumed message: a batch (a JSON array), or one event alone as pods of
/// earlier builds published them (so a rollout across this change loses nothing).
fn decode(payload: &[u8]) -> serde_json::Result<Vec<BusEvent>> {
    match payload.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'[') => serde_json::from_slice(payload),
        _ => serde_json::from_slice(payload).map(|event| vec![event]),
    }
}

/// Consumes `topic` into `tx` until the receiver is gone, rebuilding the consumer whenever its
/// stream ends, fails, or stops answering connection checks.
pub(super) async fn consume(
    client: Pulsar<TokioExecutor>,
    topic: String,
    pod: String,
    tx: mpsc::Sender<BusEvent>,
    down_since: Arc<AtomicI64>,
) {
    let mut rebuilt = false;
    loop {
        let mut consumer = match consumer(&client, &topic, &pod).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(topic, error = %e, "pulsar consumer not available; retrying");
                tokio::time::sleep(REBUILD_DELAY).await;
                continue;
            }
        };
        down_since.store(0, Ordering::SeqCst);
        tracing::info!(topic, "consuming this pod's inbox");
        if std::mem::replace(&mut rebuilt, true) {
            // What was published while it was down may be gone (a restarted broker keeps
            // nothing): the sessions read it back from the store.
            if tx.send(BusEvent::InboxRestored).await.is_err() {
                down_since.store(now_ms(), Ordering::SeqCst);
                return;
            }
        }
        // The watchdog: one timer, moved only when it fires (a timeout around every `next()`
        // took the runtime's timer lock twice per consumed message).
        let mut last_message = Instant::now();
        let mut idle = std::pin::pin!(tokio::time::sleep(WATCHDOG_INTERVAL));
        loop {
            let next = tokio::select! {
                next = consumer.next() => next,
                () = &mut idle => {
                    let quiet_until = last_message + WATCHDOG_INTERVAL;
                    if quiet_until > Instant::now() {
                        idle.as_mut().reset(quiet_until);
                        continue;
                    }
                    // Idle: make sure the consumer is not silently dead.
                    match tokio::time::timeout(CHECK_TIMEOUT, consumer.check_connection()).await {
                        Ok(Ok(())) => {
                            idle.as_mut().reset(Instant::now() + WATCHDOG_INTERVAL);
                            continue;
                        }
                        _ => {
                            tracing::warn!(
                                topic,
                                "pulsar consumer connection check failed; rebuilding"
                            );
                            break;
                        }
                    }
                }
            };
            let message = match next {
                Some(Ok(m)) => m,
                Some(Err(e)) => {
                    tracing::warn!(topic, error = %e, "pulsar consumer failed; rebuilding");
                    break;
                }
                None => {
                    tracing::warn!(topic, "pulsar consumer stream ended; rebuilding");
                    break;
                }
            };
            last_message = Instant::now();
            match decode(&message.payload.data) {
                Ok(events) => {
                    for event in events {
                        if tx.send(event).await.is_err() {
                            down_since.store(now_ms(), Ordering::SeqCst);
                            return;
                        }
                    }
                }
                Err(e) => tracing::error!(topic, error = %e, "undecodable bus message dropped"),
            }
            if let Err(e) = consumer.ack(&message).await {
                // Redelivered later: a duplicate at most (messages de-duplicate by messageId).
                tracing::debug!(topic, error = %e, "ack failed");
            }
        }
        down_since.store(now_ms(), Ordering::SeqCst);
        let _ = consumer.close().await;
        tokio::time::sleep(REBUILD_DELAY).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chat_protocol::KickReason;

    #[test]
    fn a_message_holds_a_batch_or_one_event_of_an_earlier_build() {
        let kick = |reason| BusEvent::Kick {
            devices: Vec::new(),
            reason,
        };
        let (a, b) = (KickReason::Logout, KickReason::Replaced);
        let batch = serde_json::to_vec(&[kick(a), kick(b)]).unwrap();
        assert_eq!(decode(&batch).unwrap(), vec![kick(a), kick(b)]);
        let single = serde_json::to_vec(&kick(KickReason::Admin)).unwrap();
        assert_eq!(decode(&single).unwrap(), vec![kick(KickReason::Admin)]);
        assert!(decode(b"{\"event\":\"nope\"}").is_err());
        let newer = br#"{"event":"kick","devices":[],"reason":"banned"}"#;
        assert_eq!(decode(newer).unwrap(), vec![kick(KickReason::Admin)]);
    }

    #[test]
    fn a_deliver_carries_the_push_body_and_one_without_it_still_decodes() {
        use crate::model::{StoredMessage, Target};
        let message = StoredMessage {
            message_id: "m1".into(),
            conversation_id: "dm:a:b".into(),
            seq: 1,
            from: "a".into(),
            from_name: "A".into(),
            target: Target::Direct {
                to: "b".into(),
                to_name: "B".into(),
            },
            body: "hi".into(),
            file_type: 0,
            file: None,
            client_msg_id: None,
            created_at: 1,
            request_id: "r".into(),
            recalled: false,
            system: None,
        };
        let body: std::sync::Arc<str> = r#"{"type":2,"status":200,"params":{}}"#.into();
        let event = BusEvent::Deliver {
            message,
            devices: Vec::new(),
            hops: 0,
            push: Some(body),
        };
        let bytes = serde_json::to_vec(&event).unwrap();
        assert_eq!(decode(&bytes).unwrap(), vec![event.clone()]);
        // An earlier build's event has no body: it decodes, and the pod renders it itself.
        let mut older: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        older.as_object_mut().unwrap().remove("push");
        let older = decode(older.to_string().as_bytes()).unwrap();
        assert!(matches!(&older[0], BusEvent::Deliver { push: None, .. }));
    }
}
