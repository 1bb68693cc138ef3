//! The bus on Pulsar (cluster mode): pod `P` consumes `persistent://{tenant}/{namespace}/{p}-pod-{P}`
//! with an exclusive subscription named after `P`; anything for a device on pod `Q` is published
//! to `Q`'s topic as one JSON event.
//!
//! Publishing goes through one forwarder task per target pod: events queue in order, and
//! whatever queued while the previous send waited for its receipt goes out as one Pulsar message
//! (a JSON array of events). An idle pod's event leaves at once; a busy pod's events share the
//! per-message cost (frames, receipts, acks, the broker's dispatch) — batching that grows with
//! the load and adds no timer. Each publisher learns the outcome of the send that carried its
//! event. A forwarder's producer is rebuilt after an error.
//!
//! The consumer runs under a watchdog: when its stream ends, errors, or the connection check fails
//! while idle, it is rebuilt, and readiness reports the bus down until it is.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pulsar::{Authentication, Producer, ProducerOptions, Pulsar, TokioExecutor};
use tokio::sync::{mpsc, oneshot};

pub use chat_protocol::names::Topics;

use super::{Bus, BusEvent, Unsent};
use crate::error::{Error, Result};
use crate::model::now_ms;
use crate::tls::PulsarAccess;

mod inbox;

/// Frames queued on the producers' broker connection before a send waits for room (producers
/// block when it is full, `block_queue_if_full`; the crate's default is 100). Each slot is a
/// whole `pulsar::message::Message` — about 4.9 KB, because prost's `BaseCommand` holds every
/// command kind inline — and the crate writes every slot when it connects. So the queue's size is
/// memory every pod holds, allocated again at each reconnect: at 4,096 slots that was 20 MB per
/// connection, and the chaos soak saw pods' RSS step up 20–35 MB at broker faults and stay there
/// (docs/reliability.md). 256 slots: 1.2 MB, still frames enough for a batch of forwards while
/// the socket drains.
const OUTBOUND_QUEUE: usize = 256;
/// The same for the consumer's connection, which sends only control frames (flow, acks: an
/// unbounded queue of their own), never data: the smallest queue the crate allows would do.
const CONSUMER_OUTBOUND_QUEUE: usize = 8;
/// Events waiting for one target pod before `publish` waits for room.
const FORWARD_QUEUE: usize = 16_384;
/// Most events in one Pulsar message: 64 events of the largest chat message (64 KiB) stay under
/// Pulsar's default 5 MB message limit.
const MAX_BATCH: usize = 64;
/// Events buffered between the consumer and the pod's dispatcher.
const INBOX_CAPACITY: usize = 65_536;
/// How long one admin API call may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The cluster bus: each pod's inbox is a Pulsar topic it consumes with an exclusive subscription;
/// events for another pod go through one forwarder per target topic, which batches them.
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
    /// The admin API's client (the CA of `access`) and the token it sends.
    admin_http: reqwest::Client,
    access: PulsarAccess,
    /// The forwarder of each target pod's topic.
    forwarders: std::sync::Mutex<HashMap<String, mpsc::Sender<Queued>>>,
    /// 0 while the inbox consumer works; else since when (ms) it has been down.
    down_since: Arc<AtomicI64>,
}

/// An event waiting in a forwarder, with the way to tell its publisher how the send went.
/// A failed send gives the event back.
type Queued = (
    BusEvent,
    oneshot::Sender<std::result::Result<(), (String, BusEvent)>>,
);

fn unavailable(what: &str, e: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Error {
    Error::unavailable(format!("pulsar {what}"), e)
}

impl PulsarBus {
    /// Connects to `service_url` (twice: see `client`). With `admin_url` the pod creates its own
    /// inbox topic when the operator has not; `topics` names the topics.
    pub async fn connect(
        service_url: &str,
        admin_url: Option<&str>,
        topics: Topics,
    ) -> Result<Self> {
        Self::connect_with(service_url, admin_url, topics, PulsarAccess::default()).await
    }

    /// [`PulsarBus::connect`] with a token and a CA (`pulsar+ssl://`, an `https://` admin API).
    pub async fn connect_with(
        service_url: &str,
        admin_url: Option<&str>,
        topics: Topics,
        access: PulsarAccess,
    ) -> Result<Self> {
        let access = &access;
        let connect = |queue| async move {
            let mut builder =
                Pulsar::builder(service_url, TokioExecutor).with_outbound_channel_size(queue);
            if let Some(ca) = &access.ca_pem {
                builder = builder.with_certificate_chain(ca.clone());
            }
            if let Some(token) = &access.token {
                builder = builder.with_auth(Authentication {
                    name: "token".into(),
                    data: token.clone().into_bytes(),
                });
            }
            builder.build().await.map_err(|e| match e {
                // pulsar-rs logs the cause of a refused connection (`InvalidCertificate(
                // UnknownIssuer)`, `AuthenticationError`) and returns only "fatal error": say
                // where to look.
                pulsar::Error::Connection(_) => unavailable(
                    "connect (refused: check --pulsar-ca-file and --pulsar-token; the TLS \
                     handshake's or the broker's reason is logged just before)",
                    e,
                ),
                e => unavailable("connect", e),
            })
        };
        Ok(Self {
            client: connect(OUTBOUND_QUEUE).await?,
            consumer_client: connect(CONSUMER_OUTBOUND_QUEUE).await?,
            topics,
            admin_url: admin_url.map(|u| u.trim_end_matches('/').to_owned()),
            admin_http: access.admin_client(ADMIN_TIMEOUT)?,
            access: access.clone(),
            forwarders: std::sync::Mutex::new(HashMap::new()),
            down_since: Arc::new(AtomicI64::new(now_ms())),
        })
    }

    /// The queue of `topic`'s forwarder, started on first use.
    fn forwarder(&self, topic: &str) -> mpsc::Sender<Queued> {
        let mut forwarders = self.forwarders.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(tx) = forwarders.get(topic).filter(|tx| !tx.is_closed()) {
            return tx.clone();
        }
        let (tx, rx) = mpsc::channel(FORWARD_QUEUE);
        tokio::spawn(forward(self.client.clone(), topic.to_owned(), rx));
        forwarders.insert(topic.to_owned(), tx.clone());
        tx
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
        let resp = self
            .access
            .authorize(self.admin_http.put(&url))
            .send()
            .await
            .map_err(|e| unavailable("admin", e))?;
        match resp.status().as_u16() {
            200..=299 | 409 => Ok(()),
            s => Err(unavailable("admin", format!("PUT {url} answered {s}"))),
        }
    }
}

/// Sends what queues for `topic` until every sender is gone: each time, everything queued (up to
/// [`MAX_BATCH`]) as one message, then waits for its receipt before the next.
async fn forward(client: Pulsar<TokioExecutor>, topic: String, mut rx: mpsc::Receiver<Queued>) {
    let mut producer = None;
    let mut queued = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut queued, MAX_BATCH).await > 0 {
        let (events, publishers): (Vec<BusEvent>, Vec<_>) = queued.drain(..).unzip();
        let result = send_batch(&client, &topic, &mut producer, &events).await;
        if result.is_err() {
            // A broken producer is rebuilt for the next batch.
            producer = None;
        }
        metrics::histogram!("chat_bus_batch_events").record(events.len() as f64);
        for (publisher, event) in publishers.into_iter().zip(events) {
            let _ = publisher.send(result.clone().map_err(|e| (e, event)));
        }
    }
}

/// Sends `events` as one message on `producer` (built first when there is none).
async fn send_batch(
    client: &Pulsar<TokioExecutor>,
    topic: &str,
    producer: &mut Option<Producer<TokioExecutor>>,
    events: &[BusEvent],
) -> std::result::Result<(), String> {
    let payload = serde_json::to_vec(events).map_err(|e| format!("encoding bus events: {e}"))?;
    let producer = match producer {
        Some(p) => p,
        None => producer.insert(
            client
                .producer()
                .with_topic(topic)
                .with_options(ProducerOptions {
                    // A full send queue is backpressure, not a failure: without this the client
                    // answers `SlowDown` and the events would be dropped (seen at saturation).
                    block_queue_if_full: true,
                    ..ProducerOptions::default()
                })
                .build()
                .await
                .map_err(|e| format!("producer: {e}"))?,
        ),
    };
    let receipt = producer
        .send_non_blocking(payload)
        .await
        .map_err(|e| format!("send: {e}"))?;
    receipt.await.map(|_| ()).map_err(|e| format!("send: {e}"))
}

#[async_trait]
impl Bus for PulsarBus {
    async fn publish(&self, pod: &str, event: BusEvent) -> std::result::Result<(), Unsent> {
        let stopped = |event| Unsent {
            error: unavailable("forwarder", "stopped"),
            event,
        };
        let (sent, outcome) = oneshot::channel();
        if let Err(refused) = self
            .forwarder(&self.topics.pod_topic(pod))
            .send((event, sent))
            .await
        {
            return Err(stopped(Some(refused.0 .0)));
        }
        match outcome.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err((e, event))) => Err(Unsent {
                error: unavailable("publish", e),
                event: Some(event),
            }),
            Err(_) => Err(stopped(None)),
        }
    }

    async fn subscribe(&self, pod: &str) -> Result<mpsc::Receiver<BusEvent>> {
        if let Err(e) = self.ensure_topic(pod).await {
            // The operator provisions topics; brokers with auto-creation create it on first use.
            tracing::warn!(pod, error = %e, "could not create this pod's topic; consuming anyway");
        }
        let (tx, rx) = mpsc::channel(INBOX_CAPACITY);
        tokio::spawn(inbox::consume(
            self.consumer_client.clone(),
            self.topics.pod_topic(pod),
            pod.to_owned(),
            tx,
            self.down_since.clone(),
        ));
        Ok(rx)
    }

    async fn ping(&self) -> Result<()> {
        if self.down_since.load(Ordering::SeqCst) == 0 {
            Ok(())
        } else {
            Err(Error::Unavailable(
                "this pod's pulsar consumer is down".into(),
            ))
        }
    }

    fn down_since(&self) -> Option<i64> {
        match self.down_since.load(Ordering::SeqCst) {
            0 => None,
            since => Some(since),
        }
    }
}

#[cfg(test)]
mod tests {
    /// Every pod holds both queues whole (the crate writes each slot when it connects), and
    /// allocates them again at each reconnect.
    #[test]
    fn the_broker_queues_cost_little_memory() {
        let slot = std::mem::size_of::<pulsar::message::Message>();
        let bytes = (super::OUTBOUND_QUEUE + super::CONSUMER_OUTBOUND_QUEUE) * slot;
        println!("{slot} bytes a slot, {bytes} bytes in all");
        assert!(
            bytes <= 2 << 20,
            "{bytes} bytes of broker queues ({slot} a slot)"
        );
    }
}
