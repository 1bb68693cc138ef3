//! The offline-push webhook (DESIGN §11): a stored message whose recipient has no online device
//! — or whose devices left it unacked after the retry — is POSTed to `--offline-webhook-url` as a
//! signed `message.offline` event, at least once.
//!
//! The delivery path only records what to post ([`Webhook::offline`]: one row per (message, user)
//! in the store's database, [`queue`]); a dispatcher task on every pod claims due rows under a
//! lease, posts them, and deletes them on a 2xx — or reschedules them with exponential backoff
//! and jitter on errors, timeouts and 5xx, until the retry window ends ([`event::backoff`]). So a
//! delivery survives a restart, and the pod that recorded it need not be the one that finishes it.
//! Receivers de-duplicate by `X-Chat-Delivery`.

pub mod event;
pub mod queue;

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::config::WebhookArgs;
use crate::error::{Error, Result};
use crate::model::{now_ms, StoredMessage};
use event::{backoff, delivery_id, signature, OfflineEvent, DELIVERY_HEADER, SIGNATURE_HEADER};
use queue::{Claimed, NewDelivery, Queue};

/// Deliveries one dispatcher claims and posts at once.
const BATCH: u32 = 32;
/// How often an idle dispatcher looks for due rows (retries come due, other pods' leases run
/// out); a delivery recorded on this pod wakes it at once.
const POLL: Duration = Duration::from_secs(1);
/// A claim's lease beyond the POST's own timeout: the time to record the outcome.
const LEASE_MARGIN: Duration = Duration::from_secs(5);

/// The webhook of one gateway process: records deliveries and runs their dispatcher.
pub struct Webhook {
    url: String,
    secret: Vec<u8>,
    retry: Duration,
    timeout: Duration,
    backoff: Duration,
    queue: Arc<dyn Queue>,
    http: reqwest::Client,
    /// This process's lease owner name: the pod and a per-process id, so a restarted pod of the
    /// same name does not mistake an earlier run's leases for its own.
    owner: String,
    wake: Notify,
}

impl Webhook {
    /// The webhook `args` configure (none without `--offline-webhook-url`), over `queue`.
    pub fn from_args(args: &WebhookArgs, pod: &str, queue: Arc<dyn Queue>) -> Result<Option<Self>> {
        let Some(url) = args.offline_webhook_url.clone() else {
            return Ok(None);
        };
        match reqwest::Url::parse(&url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") => {}
            _ => {
                return Err(Error::BadRequest(format!(
                    "--offline-webhook-url must be an http:// or https:// URL, not {url:?}"
                )))
            }
        }
        let secret = args
            .offline_webhook_secret
            .clone()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| {
                Error::BadRequest(
                    "--offline-webhook-url needs --offline-webhook-secret (CHAT_OFFLINE_WEBHOOK_SECRET)"
                        .into(),
                )
            })?;
        let timeout = Duration::from_millis(args.offline_webhook_timeout_ms);
        let http = crate::tls::http_client(
            "--offline-webhook-ca-file",
            args.offline_webhook_ca_file.as_deref(),
            timeout,
        )?;
        Ok(Some(Self {
            url,
            secret: secret.into_bytes(),
            retry: Duration::from_secs(args.offline_webhook_retry_seconds),
            timeout,
            backoff: Duration::from_millis(args.offline_webhook_backoff_ms),
            queue,
            http,
            owner: format!("{pod}-{}", crate::model::new_id()),
            wake: Notify::new(),
        }))
    }

    /// Records one delivery of `message` per user of `users`, and wakes the dispatcher. Runs
    /// after the message committed, off the sender's reply; a failure is logged (the message is
    /// stored, the users catch up when they connect).
    pub async fn offline(&self, message: &StoredMessage, users: &[String]) {
        let now = now_ms();
        let deadline = now + self.retry.as_millis() as i64;
        let deliveries: Vec<NewDelivery> = users
            .iter()
            .filter(|u| **u != message.from)
            .map(|user| NewDelivery {
                message_id: message.message_id.clone(),
                user_id: user.clone(),
                body: OfflineEvent::new(message, user).body(),
                deadline,
            })
            .collect();
        if deliveries.is_empty() {
            return;
        }
        match self.queue.enqueue(&deliveries, now).await {
            Ok(()) => self.wake.notify_one(),
            Err(e) => {
                tracing::warn!(error = %e, message.id = %message.message_id, "recording offline pushes failed")
            }
        }
    }

    /// Runs the dispatcher until `stop`; then releases this process's leases.
    pub fn spawn(self: Arc<Self>, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            self.dispatch(&stop).await;
            if let Err(e) = self.queue.release(&self.owner).await {
                tracing::warn!(error = %e, "releasing webhook leases failed; they run out");
            }
        })
    }

    async fn dispatch(&self, stop: &CancellationToken) {
        let lease = self.timeout + LEASE_MARGIN;
        while !stop.is_cancelled() {
            let now = now_ms();
            let until = now + lease.as_millis() as i64;
            match self.queue.claim(&self.owner, now, until, BATCH).await {
                Ok(batch) if !batch.is_empty() => {
                    join_all(batch.into_iter().map(|c| self.attempt(c))).await;
                    continue;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "claiming webhook deliveries failed"),
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(POLL) => {}
                _ = stop.cancelled() => {}
            }
        }
    }

    /// One attempt of a claimed delivery, and its outcome recorded.
    async fn attempt(&self, c: Claimed) {
        let outcome = self.post(&c).await;
        let now = now_ms();
        let recorded = match outcome {
            Outcome::Delivered => {
                metrics::counter!("chat_webhook_sent_total").increment(1);
                self.queue.finish(&c.message_id, &c.user_id).await
            }
            Outcome::Retry(why) => {
                let attempts = u32::try_from(c.attempts + 1).unwrap_or(u32::MAX);
                let next = now + backoff(self.backoff, attempts, rand::random()).as_millis() as i64;
                if next > c.deadline {
                    self.give_up(&c, &why).await
                } else {
                    tracing::debug!(delivery = %delivery_id(&c.message_id, &c.user_id), why, "webhook attempt failed; retrying");
                    metrics::counter!("chat_webhook_retried_total").increment(1);
                    self.queue.reschedule(&c.message_id, &c.user_id, next).await
                }
            }
            Outcome::Refused(why) => self.give_up(&c, &why).await,
        };
        if let Err(e) = recorded {
            // The lease runs out and the delivery is made again: at least once.
            tracing::warn!(error = %e, "recording a webhook attempt failed");
        }
    }

    async fn give_up(&self, c: &Claimed, why: &str) -> Result<()> {
        tracing::warn!(delivery = %delivery_id(&c.message_id, &c.user_id), attempts = c.attempts + 1, why, "webhook delivery failed for good");
        metrics::counter!("chat_webhook_failed_total").increment(1);
        self.queue.finish(&c.message_id, &c.user_id).await
    }

    async fn post(&self, c: &Claimed) -> Outcome {
        let sent = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature(&self.secret, c.body.as_bytes()))
            .header(DELIVERY_HEADER, delivery_id(&c.message_id, &c.user_id))
            .body(c.body.clone())
            .send()
            .await;
        match sent {
            Ok(r) if r.status().is_success() => Outcome::Delivered,
            // Timeouts and throttling are worth another try; other 4xx say the receiver will
            // never take this body.
            Ok(r) if r.status().is_server_error() || matches!(r.status().as_u16(), 408 | 429) => {
                Outcome::Retry(format!("HTTP {}", r.status()))
            }
            Ok(r) => Outcome::Refused(format!("HTTP {}", r.status())),
            Err(e) => Outcome::Retry(e.to_string()),
        }
    }
}

/// How one POST went.
enum Outcome {
    Delivered,
    Retry(String),
    Refused(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(url: Option<&str>, secret: Option<&str>) -> WebhookArgs {
        WebhookArgs {
            offline_webhook_url: url.map(Into::into),
            offline_webhook_secret: secret.map(Into::into),
            offline_webhook_retry_seconds: 3600,
            offline_webhook_ca_file: None,
            offline_webhook_timeout_ms: 10_000,
            offline_webhook_backoff_ms: 1_000,
        }
    }

    fn queue() -> Arc<dyn Queue> {
        let pool = sqlx::sqlite::SqlitePoolOptions::new()
            .connect_lazy("sqlite::memory:")
            .unwrap();
        Arc::new(queue::SqlQueue::new(pool))
    }

    #[tokio::test]
    async fn off_without_a_url_and_refused_without_a_secret_or_an_http_url() {
        assert!(Webhook::from_args(&args(None, None), "p", queue())
            .unwrap()
            .is_none());
        for url in ["http://push:8080/x", "https://push.example/x"] {
            let ok = Webhook::from_args(&args(Some(url), Some("k")), "p", queue());
            assert!(ok.unwrap().is_some(), "{url}");
        }
        for (url, secret) in [
            ("http://push:8080/x", None),
            ("http://push:8080/x", Some("")),
            ("ftp://push.example/x", Some("k")),
            ("not a url", Some("k")),
        ] {
            let refused = Webhook::from_args(&args(Some(url), secret), "p", queue());
            assert_eq!(
                refused.err().map(|e| e.status()),
                Some(400),
                "{url} {secret:?}"
            );
        }
    }
}
