//! The bus on Pulsar (cluster mode): pod `P` consumes `persistent://{tenant}/{namespace}/{p}-pod-{P}`
//! with an exclusive subscription named after `P`; anything for a device on pod `Q` is published
//! to `Q`'s topic as one JSON event.
//!
//! Producers are cached per topic and dropped on error (the next publish rebuilds them). The
//! consumer runs under a watchdog: when its stream ends, errors, or the connection check fails
//! while idle, it is rebuilt, and readiness reports the bus down until it is.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures_util::StreamExt;
use pulsar::consumer::InitialPosition;
use pulsar::{
    Consumer, ConsumerOptions, Producer, ProducerOptions, Pulsar, SubType, TokioExecutor,
};
use tokio::sync::{mpsc, Mutex};

use super::{Bus, BusEvent};
use crate::error::{Error, Result};

/// Frames queued per broker connection before a publish waits for room (the crate's default is
/// 100; every session of a busy pod may be forwarding at once).
const OUTBOUND_QUEUE: usize = 4096;
/// Events buffered between the consumer and the pod's dispatcher.
const INBOX_CAPACITY: usize = 65_536;
/// An idle consumer's connection is checked this often.
const WATCHDOG_INTERVAL: Duration = Duration::from_secs(5);
/// How long a connection check may take before the consumer counts as hung.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between attempts to rebuild a failed consumer.
const REBUILD_DELAY: Duration = Duration::from_millis(500);

/// Where the pods' topics live.
#[derive(Debug, Clone)]
pub struct Topics {
    pub tenant: String,
    pub namespace: String,
    pub key_prefix: String,
}

impl Topics {
    /// The full topic name of `pod`'s inbox.
    pub fn of(&self, pod: &str) -> String {
        format!(
            "persistent://{}/{}/{}",
            self.tenant,
            self.namespace,
            self.local_name(pod)
        )
    }

    /// The topic's name inside its namespace (what the admin REST API takes).
    pub fn local_name(&self, pod: &str) -> String {
        format!("{}-pod-{pod}", self.key_prefix)
    }
}

pub struct PulsarBus {
    /// Producers' connection. Kept apart from the consumer's: pulsar-rs does not set
    /// `TCP_NODELAY`, so on a shared connection a SEND written after an ACK (which the broker
    /// answers with nothing) waited for the broker's delayed TCP ack — tens of milliseconds per
    /// forwarded message. Alone, every SEND is answered by a receipt that carries the TCP ack.
    client: Pulsar<TokioExecutor>,
    /// The inbox consumer's connection (acks and flow permits only go out on it).
    consumer_client: Pulsar<TokioExecutor>,
    topics: Topics,
    admin_url: Option<String>,
    producers: Mutex<HashMap<String, Arc<Mutex<Producer<TokioExecutor>>>>>,
    consuming: Arc<AtomicBool>,
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Unavailable(format!("pulsar {what}: {e}"))
}

impl PulsarBus {
    pub async fn connect(
        service_url: &str,
        admin_url: Option<&str>,
        topics: Topics,
    ) -> Result<Self> {
        let connect = || async {
            Pulsar::builder(service_url, TokioExecutor)
                .with_outbound_channel_size(OUTBOUND_QUEUE)
                .build()
                .await
                .map_err(|e| unavailable("connect", e))
        };
        Ok(Self {
            client: connect().await?,
            consumer_client: connect().await?,
            topics,
            admin_url: admin_url.map(|u| u.trim_end_matches('/').to_owned()),
            producers: Mutex::new(HashMap::new()),
            consuming: Arc::new(AtomicBool::new(false)),
        })
    }

    async fn producer(&self, topic: &str) -> Result<Arc<Mutex<Producer<TokioExecutor>>>> {
        let mut producers = self.producers.lock().await;
        if let Some(p) = producers.get(topic) {
            return Ok(p.clone());
        }
        let producer = self
            .client
            .producer()
            .with_topic(topic)
            .with_options(ProducerOptions {
                // A full send queue is backpressure, not a failure: without this the client
                // answers `SlowDown` and the event would be dropped (seen at saturation).
                block_queue_if_full: true,
                ..ProducerOptions::default()
            })
            .build()
            .await
            .map_err(|e| unavailable("producer", e))?;
        let producer = Arc::new(Mutex::new(producer));
        producers.insert(topic.to_owned(), producer.clone());
        Ok(producer)
    }

    /// Creates this pod's topic through the admin REST API when the operator has not (409: exists).
    async fn ensure_topic(&self, pod: &str) -> Result<()> {
        let Some(admin) = &self.admin_url else {
            return Ok(());
        };
        let url = format!(
            "{admin}/admin/v2/persistent/{}/{}/{}",
            self.topics.tenant,
            self.topics.namespace,
            self.topics.local_name(pod)
        );
        let resp = reqwest::Client::new()
            .put(&url)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| unavailable("admin", e))?;
        match resp.status().as_u16() {
            200..=299 | 409 => Ok(()),
            s => Err(unavailable("admin", format!("PUT {url} answered {s}"))),
        }
    }

    async fn consumer(
        client: &Pulsar<TokioExecutor>,
        topic: &str,
        pod: &str,
    ) -> Result<Consumer<Vec<u8>, TokioExecutor>> {
        client
            .consumer()
            .with_topic(topic)
            .with_subscription(pod)
            .with_subscription_type(SubType::Exclusive)
            .with_options(
                ConsumerOptions::default().with_initial_position(InitialPosition::Earliest),
            )
            .build()
            .await
            .map_err(|e| unavailable("consumer", e))
    }
}

/// Consumes `topic` into `tx` until the receiver is gone, rebuilding the consumer whenever its
/// stream ends, fails, or stops answering connection checks.
async fn consume(
    client: Pulsar<TokioExecutor>,
    topic: String,
    pod: String,
    tx: mpsc::Sender<BusEvent>,
    consuming: Arc<AtomicBool>,
) {
    loop {
        let mut consumer = match PulsarBus::consumer(&client, &topic, &pod).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(topic, error = %e, "pulsar consumer not available; retrying");
                tokio::time::sleep(REBUILD_DELAY).await;
                continue;
            }
        };
        consuming.store(true, Ordering::SeqCst);
        tracing::info!(topic, "consuming this pod's inbox");
        loop {
            let next = tokio::time::timeout(WATCHDOG_INTERVAL, consumer.next()).await;
            let message = match next {
                Ok(Some(Ok(m))) => m,
                Ok(Some(Err(e))) => {
                    tracing::warn!(topic, error = %e, "pulsar consumer failed; rebuilding");
                    break;
                }
                Ok(None) => {
                    tracing::warn!(topic, "pulsar consumer stream ended; rebuilding");
                    break;
                }
                Err(_) => {
                    // Idle: make sure the consumer is not silently dead.
                    match tokio::time::timeout(CHECK_TIMEOUT, consumer.check_connection()).await {
                        Ok(Ok(())) => continue,
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
            match serde_json::from_slice::<BusEvent>(&message.payload.data) {
                Ok(event) => {
                    if tx.send(event).await.is_err() {
                        consuming.store(false, Ordering::SeqCst);
                        return;
                    }
                }
                Err(e) => tracing::error!(topic, error = %e, "undecodable bus event dropped"),
            }
            if let Err(e) = consumer.ack(&message).await {
                // Redelivered later: a duplicate at most (messages de-duplicate by messageId).
                tracing::debug!(topic, error = %e, "ack failed");
            }
        }
        consuming.store(false, Ordering::SeqCst);
        let _ = consumer.close().await;
        tokio::time::sleep(REBUILD_DELAY).await;
    }
}

#[async_trait]
impl Bus for PulsarBus {
    async fn publish(&self, pod: &str, event: BusEvent) -> Result<()> {
        let topic = self.topics.of(pod);
        let payload = serde_json::to_vec(&event)
            .map_err(|e| Error::Internal(format!("encoding bus event: {e}")))?;
        let producer = self.producer(&topic).await?;
        let receipt = {
            let mut p = producer.lock().await;
            p.send_non_blocking(payload).await
        };
        let result = match receipt {
            Ok(receipt) => receipt
                .await
                .map(|_| ())
                .map_err(|e| unavailable("send", e)),
            Err(e) => Err(unavailable("send", e)),
        };
        if result.is_err() {
            // A broken producer is rebuilt by the next publish.
            self.producers.lock().await.remove(&topic);
        }
        result
    }

    async fn subscribe(&self, pod: &str) -> Result<mpsc::Receiver<BusEvent>> {
        if let Err(e) = self.ensure_topic(pod).await {
            // The operator provisions topics; brokers with auto-creation create it on first use.
            tracing::warn!(pod, error = %e, "could not create this pod's topic; consuming anyway");
        }
        let (tx, rx) = mpsc::channel(INBOX_CAPACITY);
        tokio::spawn(consume(
            self.consumer_client.clone(),
            self.topics.of(pod),
            pod.to_owned(),
            tx,
            self.consuming.clone(),
        ));
        Ok(rx)
    }

    async fn ping(&self) -> Result<()> {
        if self.consuming.load(Ordering::SeqCst) {
            Ok(())
        } else {
            Err(Error::Unavailable(
                "this pod's pulsar consumer is down".into(),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_follow_the_design() {
        let t = Topics {
            tenant: "public".into(),
            namespace: "chat".into(),
            key_prefix: "demo".into(),
        };
        assert_eq!(
            t.of("demo-gateway-2"),
            "persistent://public/chat/demo-pod-demo-gateway-2"
        );
        assert_eq!(t.local_name("p0"), "demo-pod-p0");
    }
}
