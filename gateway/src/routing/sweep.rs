//! Failed fan-outs outlive their pod: each one that goes to the retry queue is also recorded in
//! the store ([`super::pending`]), leased by this process while it retries, deleted when the
//! retry goes through; a row whose lease ran out (its pod SIGKILLed, or cut off from the
//! database) is claimed by any pod's sweeper, which pushes the message to the devices it names.
//!
//! Nothing here runs on a send's path: the failure path only notes the row in memory
//! ([`Pending::note`], one JSON serialisation), and one background task per pod writes the
//! notes, renews the leases, sweeps and counts. A fan-out that succeeds costs nothing.
//!
//! Who gets it: a row for a refused pod names the connections the event was for (user, device,
//! epoch); a row for a failed route lookup, every device of its users but the sender's. The
//! sweeper pushes the message itself (not a backlog re-read: a device gets it even when a
//! sibling already acked it) to those devices on whatever connection each holds now, not only
//! the one named: a device that moved meanwhile (a drain, a rebalance, its pod killed) caught up
//! on its new connection from its user's `ackedSeq`, which skips what a sibling had acked
//! (DESIGN §4.4), so without this push it would not get the message live. A device that already
//! has it drops it (its window holds what is in flight or acked), the client de-duplicates by
//! `messageId`.

use std::collections::{BTreeSet, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::pending::{ClaimedPending, NewPending, PendingFanouts};
use super::{hand, Payload, Router};
use crate::bus::BusEvent;
use crate::delivery::{plan_fanout, DeviceRoute};
use crate::model::{now_ms, StoredMessage};

/// How long a lease lasts (ms): a SIGKILLed pod's rows are swept this long after its last renewal.
const LEASE_MS: i64 = 10_000;
/// How often the sweeper looks for rows whose lease ran out, and leases are renewed.
const SWEEP_EVERY: Duration = Duration::from_secs(1);
/// Renew leases after this long (a third of a lease: two renewals may fail before it runs out).
const RENEW_MS: i64 = LEASE_MS / 3;
/// Rows claimed per sweep.
const CLAIM_LIMIT: u32 = 64;
/// A row older than this is given up: its recipients catch up from the store on reconnect or
/// SYNC (the retry queue gives up at the same age).
const GIVE_UP_MS: i64 = 600_000;
/// The most a failed sweep of a row waits before the next (1 s, doubling).
const MAX_SWEEP_BACKOFF_MS: i64 = 4_000;
/// Sweeps between two counts of the table (the `chat_pending_fanouts` gauge).
const COUNT_EVERY: u32 = 10;
/// Notes kept in memory while the database does not take them; past this the oldest go (their
/// retries still run; only the record that would outlive the pod is missing).
const MAX_NOTES: usize = 65_536;
/// The longest one write of notes may take before it is tried again later.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// Who must get a pending message (stored as JSON in the row).
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Recipients {
    /// The users to look up.
    users: Vec<String>,
    /// Only these connections (user, device, epoch: a refused pod's event); empty: every
    /// device of `users` connected before the message was stored.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    devices: Vec<(String, String, u64)>,
    /// The sending device, which has it (a failed route lookup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    skip: Option<(String, String)>,
}

/// (message id, target pod; empty for a failed route lookup): one row of this process.
type Key = (String, String);

/// Rows to write and rows to delete, in the order the failures and successes happened.
#[derive(Default)]
struct Notes {
    new: Vec<NewPending>,
    done: Vec<Key>,
}

/// This process's side of the pending-fan-out record.
pub(super) struct Pending {
    table: Arc<dyn PendingFanouts>,
    /// This process: its pod name and a per-process id (a restarted pod has the same name, and
    /// must not renew the rows of the one that died).
    owner: String,
    notes: Mutex<Notes>,
    wake: Notify,
    /// Fan-outs the retry loop is trying right now: leases are renewed while any, or while
    /// some wait in the queue.
    pub(super) outstanding: AtomicUsize,
}

impl Pending {
    pub(super) fn new(table: Arc<dyn PendingFanouts>, pod: &str) -> Self {
        Self {
            table,
            owner: format!("{pod}/{}", uuid::Uuid::new_v4().simple()),
            notes: Mutex::new(Notes::default()),
            wake: Notify::new(),
            outstanding: AtomicUsize::new(0),
        }
    }

    fn push_new(&self, row: NewPending) {
        let mut notes = self.notes.lock().expect("pending notes lock");
        if notes.new.len() >= MAX_NOTES {
            notes.new.remove(0);
        }
        notes.new.push(row);
        drop(notes);
        self.wake.notify_one();
    }

    /// A fan-out of `message` failed and goes to the retry queue: record it (for `target`, the
    /// pod that refused it, or "" when the route lookup failed).
    fn note(&self, message: &StoredMessage, target: &str, recipients: &Recipients) {
        let (Ok(json), Ok(who)) = (
            serde_json::to_string(message),
            serde_json::to_string(recipients),
        ) else {
            return;
        };
        self.push_new(NewPending {
            message_id: message.message_id.clone(),
            target: target.to_owned(),
            message: json,
            recipients: who,
        });
    }

    /// The retry of this row went through.
    fn done(&self, key: Key) {
        self.notes
            .lock()
            .expect("pending notes lock")
            .done
            .push(key);
        self.wake.notify_one();
    }

    /// Writes the notes: rows whose retry already went through are never written.
    async fn write_notes(&self) {
        let Notes { mut new, done } = std::mem::take(&mut *self.notes.lock().expect("notes"));
        if new.is_empty() && done.is_empty() {
            return;
        }
        if !done.is_empty() {
            let gone: HashSet<(&str, &str)> =
                done.iter().map(|(m, t)| (m.as_str(), t.as_str())).collect();
            new.retain(|r| !gone.contains(&(r.message_id.as_str(), r.target.as_str())));
        }
        let now = now_ms();
        let recorded = new.is_empty()
            || match tokio::time::timeout(
                WRITE_TIMEOUT,
                self.table.record(&new, &self.owner, now, now + LEASE_MS),
            )
            .await
            {
                Ok(Ok(())) => {
                    metrics::counter!("chat_pending_fanouts_recorded_total")
                        .increment(new.len() as u64);
                    true
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, rows = new.len(), "recording failed fan-outs failed; trying again");
                    false
                }
                Err(_) => {
                    tracing::warn!(
                        rows = new.len(),
                        "recording failed fan-outs timed out; trying again"
                    );
                    false
                }
            };
        let removed = done.is_empty()
            || matches!(
                tokio::time::timeout(WRITE_TIMEOUT, self.table.remove(&self.owner, &done)).await,
                Ok(Ok(()))
            );
        if recorded && removed {
            return;
        }
        let mut notes = self.notes.lock().expect("pending notes lock");
        if !recorded {
            new.append(&mut notes.new);
            notes.new = new;
        }
        if !removed {
            let mut done = done;
            done.append(&mut notes.done);
            notes.done = done;
        }
    }
}

impl Router {
    /// Records failed fan-outs in `table` from now on, so that any pod can finish them when
    /// this one dies ([`Router::run_pending`] must run).
    pub fn record_failed_fanouts(&mut self, table: Arc<dyn PendingFanouts>) {
        self.pending = Some(Pending::new(table, &self.pod));
    }

    /// A refused event goes to the retry queue: a stored message's is recorded.
    pub(super) fn note_refused(&self, pod: &str, event: &BusEvent) {
        if let (
            Some(p),
            BusEvent::Deliver {
                message, devices, ..
            },
        ) = (&self.pending, event)
        {
            let users: BTreeSet<&str> = devices.iter().map(|d| d.user.as_str()).collect();
            let recipients = Recipients {
                users: users.into_iter().map(str::to_owned).collect(),
                devices: devices
                    .iter()
                    .map(|d| (d.user.clone(), d.device.clone(), d.epoch))
                    .collect(),
                skip: None,
            };
            p.note(message, pod, &recipients);
        }
    }

    /// A fan-out whose route lookup failed goes to the retry queue: a stored message's is
    /// recorded.
    pub(super) fn note_unrouted(
        &self,
        payload: &Payload,
        users: &[String],
        skip: Option<(&str, &str)>,
    ) {
        if let (Some(p), Payload::Message(m)) = (&self.pending, payload) {
            let recipients = Recipients {
                users: users.to_vec(),
                devices: Vec::new(),
                skip: skip.map(|(u, d)| (u.to_owned(), d.to_owned())),
            };
            p.note(&m.message, "", &recipients);
        }
    }

    /// The retry of a recorded fan-out went through: its row goes.
    pub(super) fn note_done(&self, message_id: &str, target: &str) {
        if let Some(p) = &self.pending {
            p.done((message_id.to_owned(), target.to_owned()));
        }
    }

    /// Writes notes of failed fan-outs, renews this process's leases while it retries, and
    /// sweeps rows whose lease ran out, until `stop`.
    pub async fn run_pending(&self, stop: CancellationToken) {
        let Some(p) = &self.pending else { return };
        let mut tick = tokio::time::interval(SWEEP_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let (mut sweeps, mut renewed) = (0u32, 0i64);
        loop {
            let swept = tokio::select! {
                _ = tick.tick() => true,
                () = p.wake.notified() => false,
                () = stop.cancelled() => return,
            };
            p.write_notes().await;
            if !swept {
                continue;
            }
            let now = now_ms();
            let retrying = p.outstanding.load(Ordering::Relaxed) > 0 || self.retries.len() > 0;
            if retrying && now - renewed >= RENEW_MS {
                match p.table.renew(&p.owner, now + LEASE_MS).await {
                    Ok(()) => renewed = now,
                    Err(e) => tracing::warn!(error = %e, "renewing fan-out leases failed"),
                }
            }
            self.sweep(p).await;
            sweeps += 1;
            if sweeps % COUNT_EVERY == 1 {
                if let Ok(n) = p.table.count().await {
                    metrics::gauge!("chat_pending_fanouts").set(n as f64);
                }
            }
        }
    }

    /// A graceful stop: what waits is recorded and released, so another pod finishes it at once.
    pub async fn hand_over_pending(&self) {
        let Some(p) = &self.pending else { return };
        p.write_notes().await;
        let release = p.table.release(&p.owner);
        match tokio::time::timeout(WRITE_TIMEOUT, release).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "releasing fan-out leases failed"),
            Err(_) => tracing::warn!("releasing fan-out leases timed out"),
        }
    }

    /// Claims the rows whose lease ran out and pushes each.
    async fn sweep(&self, p: &Pending) {
        let now = now_ms();
        match p.table.any_due(now).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::debug!(error = %e, "looking for pending fan-outs failed");
                return;
            }
        }
        let rows = match p
            .table
            .claim(&p.owner, now, now + LEASE_MS, CLAIM_LIMIT)
            .await
        {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "claiming pending fan-outs failed");
                return;
            }
        };
        for row in rows {
            let done = self.push_pending(&row).await;
            let result = if done {
                p.table.finish(&row).await
            } else {
                let wait = (1_000i64 << row.attempts.clamp(0, 8)).min(MAX_SWEEP_BACKOFF_MS);
                p.table.reschedule(&row, now_ms() + wait).await
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, message = row.message_id, "updating a pending fan-out failed");
            }
        }
    }

    /// Pushes a claimed row's message to the devices it names, wherever they are now; false
    /// when some of them could not be reached (tried again later).
    async fn push_pending(&self, row: &ClaimedPending) -> bool {
        if now_ms() - row.created_at > GIVE_UP_MS {
            metrics::counter!("chat_pending_fanouts_given_up_total").increment(1);
            return true;
        }
        let parsed = serde_json::from_str::<StoredMessage>(&row.message)
            .and_then(|m| serde_json::from_str::<Recipients>(&row.recipients).map(|r| (m, r)));
        let (message, who) = match parsed {
            Ok(parsed) => parsed,
            Err(e) => {
                tracing::error!(error = %e, message = row.message_id, "unreadable pending fan-out dropped");
                return true;
            }
        };
        let routes = match self.routes.lookup(&who.users).await {
            Ok(routes) => routes,
            Err(_) => return false,
        };
        // The devices that missed it, on whatever connection they hold now: one that moved
        // since (a drain, a rebalance, its pod killed) caught up on its new connection from
        // its user's `ackedSeq`, which skips what a sibling had acked (DESIGN §4.4), so only
        // this push brings it. One whose catch-up had it drops the copy (§4.3).
        let wanted: HashSet<(&str, &str)> = who
            .devices
            .iter()
            .map(|(u, d, _)| (u.as_str(), d.as_str()))
            .collect();
        let routes: Vec<DeviceRoute> = routes
            .into_iter()
            .filter(|r| wanted.is_empty() || wanted.contains(&(r.user.as_str(), r.device.as_str())))
            .collect();
        let skip = who.skip.as_ref().map(|(u, d)| (u.as_str(), d.as_str()));
        let plan = plan_fanout(&self.pod, routes, skip);
        let payload = Payload::message(message);
        if !plan.local.is_empty() {
            let outbound = payload.outbound();
            for r in &plan.local {
                if let Some(conn) = self.hub.get(&r.user, &r.device) {
                    hand(&conn, &outbound);
                }
            }
        }
        let mut all = true;
        for (pod, devices) in plan.remote {
            if let Err(e) = self.bus.publish(&pod, payload.event(devices, 0)).await {
                tracing::debug!(pod, error = %e, "pushing a pending fan-out failed; trying again");
                all = false;
            }
        }
        if all {
            metrics::counter!("chat_pending_fanouts_swept_total").increment(1);
        }
        all
    }
}
