//! The connections held by this process: (user, device) → the session's inbox.
//!
//! Anything that must reach a local connection (a message, a notice, a kick, a drain) is put into
//! its session's channel; the session owns the socket and does the writing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chat_protocol::{KickReason, PreparedPush};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::model::Prepared;

/// Events buffered for one session before the hub treats it as stuck (it then resyncs from the store).
pub const SESSION_INBOX: usize = 1024;

/// What the rest of the process tells one session.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A stored message (2 or 10), prepared once for every local device: windowed and acked.
    Message(Arc<Prepared>),
    /// A DELIVERED (17) notice or an HTTP push, prepared once: written, never windowed.
    Notice(Arc<PreparedPush>),
    /// Send KICKED (23) with this reason and close 4001.
    Kick(KickReason),
    /// Send DRAIN (22); close 1012 at its deadline. Boxed: it is rare, and every slot of every
    /// session's channel is as large as the largest variant.
    Drain(Box<DrainNotice>),
}

/// A drain as one session is told it: when the pod closes, and when this client should move.
#[derive(Debug, Clone)]
pub struct DrainNotice {
    /// When the pod closes what is left (1012); DRAIN tells the seconds left to it.
    pub deadline: Instant,
    /// How long this client waits before reconnecting elsewhere: its place in the spread over the
    /// window.
    pub reconnect_after: Duration,
}

/// A registered local connection.
#[derive(Clone)]
pub struct Conn {
    /// The connection's epoch: a removal or a kick names it, so a newer connection of the device is
    /// not touched.
    pub epoch: u64,
    /// The session's id (WELCOME's `sessionId`), stamped on every push written to it.
    pub session_id: String,
    tx: mpsc::Sender<Outbound>,
    /// Set when an event could not be queued: the session re-reads its backlog from the store.
    resync: Arc<tokio::sync::Notify>,
}

impl Conn {
    /// A connection's entry, with the session's ends: the channel it reads events from, and the
    /// notify that asks it to resync from the store when an event did not fit.
    pub fn new(
        epoch: u64,
        session_id: String,
    ) -> (Self, mpsc::Receiver<Outbound>, Arc<tokio::sync::Notify>) {
        let (tx, rx) = mpsc::channel(SESSION_INBOX);
        let resync = Arc::new(tokio::sync::Notify::new());
        (
            Self {
                epoch,
                session_id,
                tx,
                resync: resync.clone(),
            },
            rx,
            resync,
        )
    }

    /// Tells the session to re-read its backlog from the store (messages it may have missed).
    pub fn resync(&self) {
        self.resync.notify_one();
    }

    /// Queues an event without waiting. A stored message that does not fit is not lost: the
    /// session is told to resync from the store. A notice for a session that is closing (its
    /// inbox gone, its entry not yet) is dropped and counted like one that did not fit.
    pub fn send(&self, event: Outbound) {
        let event = match self.tx.try_send(event) {
            Ok(()) => return,
            Err(mpsc::error::TrySendError::Full(event)) => event,
            Err(mpsc::error::TrySendError::Closed(event)) => {
                if matches!(event, Outbound::Notice(_)) {
                    metrics::counter!("chat_dropped_notices_total").increment(1);
                }
                return;
            }
        };
        match event {
            Outbound::Message(_) => self.resync.notify_one(),
            Outbound::Kick(_) | Outbound::Drain(_) => {
                // Control events must arrive: wait for room off the caller's path.
                let tx = self.tx.clone();
                tokio::spawn(async move {
                    let _ = tx.send(event).await;
                });
            }
            Outbound::Notice(_) => metrics::counter!("chat_dropped_notices_total").increment(1),
        }
    }
}

/// This process's connections by user and device, counted for `/admin/status` and the gauge.
#[derive(Default)]
pub struct Hub {
    conns: Mutex<HashMap<String, HashMap<String, Conn>>>,
    count: std::sync::atomic::AtomicUsize,
}

impl Hub {
    /// A hub with no connections.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many connections this process holds (`/admin/status`, the drain).
    pub fn len(&self) -> usize {
        self.count.load(Ordering::Relaxed)
    }

    /// Whether this process holds no connection.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Registers a connection; returns the one it replaces on this process, if any.
    pub fn insert(&self, user: &str, device: &str, conn: Conn) -> Option<Conn> {
        let mut conns = self.conns.lock().expect("hub lock");
        let previous = conns
            .entry(user.to_owned())
            .or_default()
            .insert(device.to_owned(), conn);
        if previous.is_none() {
            self.count.fetch_add(1, Ordering::Relaxed);
            metrics::gauge!("chat_connections").increment(1.0);
        }
        previous
    }

    /// Removes the connection if it is still the one with `epoch`.
    pub fn remove(&self, user: &str, device: &str, epoch: u64) -> bool {
        let mut conns = self.conns.lock().expect("hub lock");
        let Some(devices) = conns.get_mut(user) else {
            return false;
        };
        if devices.get(device).is_none_or(|c| c.epoch != epoch) {
            return false;
        }
        devices.remove(device);
        if devices.is_empty() {
            conns.remove(user);
        }
        self.count.fetch_sub(1, Ordering::Relaxed);
        metrics::gauge!("chat_connections").decrement(1.0);
        true
    }

    /// The device's connection on this process, if it has one here.
    pub fn get(&self, user: &str, device: &str) -> Option<Conn> {
        self.conns
            .lock()
            .expect("hub lock")
            .get(user)?
            .get(device)
            .cloned()
    }

    /// A snapshot of `user`'s connections here as (device, conn): the fan-out's local part when
    /// the route table does not answer.
    pub fn of_user(&self, user: &str) -> Vec<(String, Conn)> {
        self.conns
            .lock()
            .expect("hub lock")
            .get(user)
            .map(|devices| {
                devices
                    .iter()
                    .map(|(d, c)| (d.clone(), c.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A snapshot of every local connection as (user, device, conn).
    pub fn all(&self) -> Vec<(String, String, Conn)> {
        let conns = self.conns.lock().expect("hub lock");
        let mut out = Vec::with_capacity(self.len());
        for (user, devices) in conns.iter() {
            for (device, conn) in devices {
                out.push((user.clone(), device.clone(), conn.clone()));
            }
        }
        out
    }
}

/// A per-connection epoch that increases across the cluster: microseconds since the epoch, made
/// strictly increasing within this process. A reconnection always carries a higher epoch than the
/// connection it replaces, even on another pod, as long as clocks are roughly in sync.
pub fn next_epoch() -> u64 {
    static LAST: AtomicU64 = AtomicU64::new(0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0);
    let mut prev = LAST.load(Ordering::Relaxed);
    loop {
        let next = now.max(prev + 1);
        match LAST.compare_exchange_weak(prev, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return next,
            Err(p) => prev = p,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_strictly_increase() {
        let a = next_epoch();
        let b = next_epoch();
        assert!(b > a);
    }

    #[tokio::test]
    async fn remove_checks_epoch() {
        let hub = Hub::new();
        let (c1, _rx1, _) = Conn::new(1, "s1".into());
        let (c2, _rx2, _) = Conn::new(2, "s2".into());
        assert!(hub.insert("u", "d", c1).is_none());
        assert_eq!(hub.insert("u", "d", c2).unwrap().epoch, 1);
        assert!(
            !hub.remove("u", "d", 1),
            "the replaced connection must not remove its successor"
        );
        assert_eq!(hub.len(), 1);
        assert!(hub.remove("u", "d", 2));
        assert!(hub.is_empty());
    }
}
