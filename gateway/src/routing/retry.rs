//! Fan-outs that failed after their message was committed, tried again until they go through.
//!
//! A message that got reply 0 is stored, but its live delivery can still fail: the route table
//! does not answer (Redis restarting, or this pod cut off from it), or the bus refuses a target
//! pod's event (the broker restarting). Recipients that stay online would then see it only at
//! their next reconnect. Instead the fan-out waits here, in order, and is tried again every
//! [`FIRST_BACKOFF`]…[`MAX_BACKOFF`] until it goes through; the devices de-duplicate by
//! `messageId` what reaches them twice (their window drops what is in flight or acked).
//!
//! Bounded: past [`CAPACITY`] the oldest is dropped, and one older than [`MAX_AGE`] is given up
//! (its recipients catch up from the store when they reconnect or SYNC). Both are counted
//! (`chat_fanout_retries_dropped_total`).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use tokio_util::sync::CancellationToken;

use super::{Payload, Router};
use crate::bus::BusEvent;

/// Fan-outs kept waiting at most.
const CAPACITY: usize = 65_536;
/// A fan-out still failing after this long is given up: its recipients catch up from the store.
const MAX_AGE: Duration = Duration::from_secs(600);
/// Wait after a failure before the first new attempt.
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// Longest wait between attempts while the backend stays down.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// One fan-out to try again.
pub(super) enum Retry {
    /// Look the users' devices up and hand them the payload (the route lookup failed).
    Route {
        payload: Payload,
        users: Vec<String>,
        /// The sending device, which has the message already.
        skip: Option<(String, String)>,
    },
    /// Publish this event to `pod`'s inbox (the bus refused it).
    Publish { pod: String, event: Box<BusEvent> },
}

/// The waiting fan-outs, oldest first.
#[derive(Default)]
pub(super) struct Retries {
    queue: Mutex<VecDeque<(Instant, Retry)>>,
    wake: Notify,
}

impl Retries {
    /// Keeps `retry` for the retry loop.
    pub(super) fn push(&self, retry: Retry) {
        let mut queue = self.queue.lock().expect("retry queue lock");
        if queue.len() >= CAPACITY {
            queue.pop_front();
            metrics::counter!("chat_fanout_retries_dropped_total").increment(1);
        }
        queue.push_back((Instant::now(), retry));
        metrics::gauge!("chat_fanout_retries_waiting").set(queue.len() as f64);
        drop(queue);
        metrics::counter!("chat_fanout_retries_total").increment(1);
        self.wake.notify_one();
    }

    /// How many fan-outs wait.
    pub(super) fn len(&self) -> usize {
        self.queue.lock().expect("retry queue lock").len()
    }

    /// Waits until something is queued.
    pub(super) async fn wait(&self) {
        loop {
            let notified = self.wake.notified();
            if !self.queue.lock().expect("retry queue lock").is_empty() {
                return;
            }
            notified.await;
        }
    }

    /// Takes everything queued, dropping what is too old.
    pub(super) fn take(&self) -> Vec<(Instant, Retry)> {
        let mut queue = self.queue.lock().expect("retry queue lock");
        let now = Instant::now();
        let mut out = Vec::with_capacity(queue.len());
        for (at, retry) in queue.drain(..) {
            if now.saturating_duration_since(at) > MAX_AGE {
                metrics::counter!("chat_fanout_retries_dropped_total").increment(1);
            } else {
                out.push((at, retry));
            }
        }
        metrics::gauge!("chat_fanout_retries_waiting").set(0.0);
        out
    }

    /// Puts back what still failed, ahead of anything queued since, keeping the order.
    pub(super) fn put_back(&self, failed: Vec<(Instant, Retry)>) {
        if failed.is_empty() {
            return;
        }
        let mut queue = self.queue.lock().expect("retry queue lock");
        for entry in failed.into_iter().rev() {
            queue.push_front(entry);
        }
        while queue.len() > CAPACITY {
            queue.pop_front();
            metrics::counter!("chat_fanout_retries_dropped_total").increment(1);
        }
        metrics::gauge!("chat_fanout_retries_waiting").set(queue.len() as f64);
    }
}

impl Router {
    /// Tries failed fan-outs again, in order, until `stop`: after a failure it waits
    /// [`FIRST_BACKOFF`], doubling up to [`MAX_BACKOFF`] while the backend stays down.
    pub async fn run_retries(&self, stop: CancellationToken) {
        let mut backoff = FIRST_BACKOFF;
        loop {
            tokio::select! {
                () = self.retries.wait() => {}
                () = stop.cancelled() => return,
            }
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                () = stop.cancelled() => return,
            }
            let taken = self.retries.take();
            self.set_in_flight(taken.len());
            let mut pending = taken.into_iter();
            let mut failed = Vec::new();
            for (at, retry) in pending.by_ref() {
                if let Err(retry) = self.try_again(retry).await {
                    failed.push((at, retry));
                    break;
                }
            }
            failed.extend(pending);
            backoff = if failed.is_empty() {
                FIRST_BACKOFF
            } else {
                (backoff * 2).min(MAX_BACKOFF)
            };
            self.retries.put_back(failed);
            self.set_in_flight(0);
        }
    }

    /// The id of a stored message whose fan-out may have a row (when rows are kept).
    fn recorded_id(&self, payload: &Payload) -> Option<String> {
        match (&self.pending, payload) {
            (Some(_), Payload::Message(m)) => Some(m.message.message_id.clone()),
            _ => None,
        }
    }

    /// How many fan-outs the loop is trying right now (leases stay renewed meanwhile).
    fn set_in_flight(&self, n: usize) {
        if let Some(p) = &self.pending {
            p.outstanding.store(n, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// One attempt at a failed fan-out; gives it back when it fails again.
    async fn try_again(&self, retry: Retry) -> std::result::Result<(), Retry> {
        match retry {
            Retry::Route {
                payload,
                users,
                skip,
            } => match self.routes.lookup(&users).await {
                Ok(routes) => {
                    self.set_routes_down(false);
                    let recorded = self.recorded_id(&payload);
                    let skip = skip.as_ref().map(|(u, d)| (u.as_str(), d.as_str()));
                    // Pods that refuse it now get rows of their own before this one goes.
                    self.dispatch(payload, routes, skip, 0).await;
                    if let Some(id) = recorded {
                        self.note_done(&id, "");
                    }
                    Ok(())
                }
                Err(_) => Err(Retry::Route {
                    payload,
                    users,
                    skip,
                }),
            },
            Retry::Publish { pod, event } => {
                let recorded = match (&self.pending, &*event) {
                    (Some(_), BusEvent::Deliver { message, .. }) => {
                        Some(message.message_id.clone())
                    }
                    _ => None,
                };
                match self.bus.publish(&pod, *event).await {
                    Ok(()) => {
                        if let Some(id) = recorded {
                            self.note_done(&id, &pod);
                        }
                        Ok(())
                    }
                    Err(unsent) => match unsent.event {
                        Some(event) => Err(Retry::Publish {
                            pod,
                            event: Box::new(event),
                        }),
                        None => {
                            // Its row (if any) stays: swept once this pod stops renewing it.
                            tracing::warn!(pod, error = %unsent, "a retried event was lost in the bus");
                            Ok(())
                        }
                    },
                }
            }
        }
    }
}
