//! PRESENCE (26/27), v1.1: who is online, for the connections that asked.
//!
//! Where it comes from: the route table ([`crate::routes`]). A user is online while one of its
//! devices has a route; the pod that registers the first device, or removes the last (or reaps
//! a dead pod's), sees the change there and announces it ([`Presence::announce`]). The
//! change is applied to this pod's watchers at once and queued for the pods that watch the
//! user — the route table counts each pod's interest ([`RouteTable::watch`]) and names them in
//! the same call that saw the change — as one [`BusEvent::Presence`] per pod and batch, on each
//! pod's own inbox ([`forward`]): never broadcast. Each pod keeps its own watchers in an
//! [`index::Index`] (nothing in the connection).
//!
//! Visibility (DESIGN §11): a watcher sees a user as it is only if they share an active
//! conversation and the user does not block it; otherwise always offline with `lastSeen:
//! null`. It is decided when the connection subscribes; BLOCK and UNBLOCK change it at once
//! ([`PresenceEvent::View`]), a conversation started later counts at the next SUBSCRIBE.
//!
//! Presence changes are notifications: never stored, acked or retried; a watcher that missed
//! one (its pod was cut off from the bus) learns the state at its next SUBSCRIBE.

pub mod index;

use std::sync::{Arc, Mutex};

use chat_protocol::UserId;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use std::collections::BTreeMap;

use self::index::{Index, Watcher};
use crate::bus::{Bus, BusEvent};
use crate::error::Result;
use crate::hub::{Hub, Outbound};
use crate::notice::Notice;
use crate::routes::{RouteTable, UserPresence};

/// Changes queued for the other pods before new ones are dropped (counted in
/// `chat_presence_dropped_total`): a reconnect storm of this many users is forwarded in
/// batches, not held without bound.
const QUEUE: usize = 65_536;
/// Most changes one bus event carries.
const BATCH: usize = 1_000;

/// A presence change, as it crosses pods.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum PresenceEvent {
    /// `user_id`'s first device connected (`online`) or its last left.
    #[serde(rename_all = "camelCase")]
    Changed {
        /// Whose presence changed.
        user_id: String,
        /// Online now?
        online: bool,
        /// When its last device left (offline only).
        last_seen: Option<i64>,
        /// When the change happened (ms): a change older than one applied already is dropped.
        stamp: i64,
    },
    /// `viewer` may now see `user_id` as it is (`shown`, with its state now) or not (BLOCK).
    #[serde(rename_all = "camelCase")]
    View {
        /// The watching user.
        viewer: String,
        /// The watched user.
        user_id: String,
        /// The watched user's state, if the viewer may see it now.
        shown: Option<(bool, Option<i64>)>,
    },
}

impl PresenceEvent {
    /// `user`'s first device connected at `now`.
    pub fn online(user: &str, now: i64) -> Self {
        PresenceEvent::Changed {
            user_id: user.to_owned(),
            online: true,
            last_seen: None,
            stamp: now,
        }
    }

    /// `user`'s last device left at `at`.
    pub fn offline(user: &str, at: i64) -> Self {
        PresenceEvent::Changed {
            user_id: user.to_owned(),
            online: false,
            last_seen: Some(at),
            stamp: at,
        }
    }
}

/// Which pods a change is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Targets {
    /// The pods that watch the user ([`RouteTable::watch`]): a change of presence.
    Pods(Vec<String>),
    /// Every live pod: a change of who may see whom (BLOCK, UNBLOCK), rare.
    All,
}

/// Changes queued for other pods.
type Queued = (Targets, Vec<PresenceEvent>);

/// This pod's presence watchers and its queue of changes for the other pods.
pub struct Presence {
    pod: String,
    hub: Arc<Hub>,
    routes: Arc<dyn RouteTable>,
    index: Mutex<Index>,
    queue: mpsc::Sender<Queued>,
    queued: Mutex<Option<mpsc::Receiver<Queued>>>,
}

impl Presence {
    /// Pod `pod`'s presence, pushing to the connections of `hub`, counting its interest in
    /// `routes`.
    pub fn new(pod: String, hub: Arc<Hub>, routes: Arc<dyn RouteTable>) -> Self {
        let (queue, queued) = mpsc::channel(QUEUE);
        Self {
            pod,
            hub,
            routes,
            index: Mutex::new(Index::default()),
            queue,
            queued: Mutex::new(Some(queued)),
        }
    }

    /// Makes `users` (each with whether the connection may see it) the connection's set, and
    /// has the route table count this pod's interest in them.
    pub async fn watch(&self, watcher: &Watcher, users: Vec<(String, bool)>) -> Result<()> {
        let deltas = self
            .index
            .lock()
            .expect("presence lock")
            .replace(watcher, users);
        self.routes.watch(&self.pod, &deltas).await
    }

    /// The connection closed: its set goes.
    pub async fn unwatch(&self, user: &str, device: &str, epoch: u64) {
        let deltas = self
            .index
            .lock()
            .expect("presence lock")
            .remove(user, device, epoch);
        if let Err(e) = self.routes.watch(&self.pod, &deltas).await {
            // The pod stays counted for those users: it is told of them and ignores it.
            tracing::warn!(error = %e, "presence interest not withdrawn");
        }
    }

    /// Changes made on this pod: pushed to the watchers here, and queued for the other pods
    /// in `to`.
    pub fn announce(&self, to: Targets, events: Vec<PresenceEvent>) {
        if events.is_empty() {
            return;
        }
        self.apply(&events);
        let elsewhere = match &to {
            Targets::Pods(pods) => pods.iter().any(|p| *p != self.pod),
            Targets::All => true,
        };
        if elsewhere && self.queue.try_send((to, events)).is_err() {
            metrics::counter!("chat_presence_dropped_total").increment(1);
        }
    }

    /// Changes from any pod: each watcher here that may see them gets PRESENCE (27).
    pub fn apply(&self, events: &[PresenceEvent]) {
        let mut pushes: Vec<(Vec<Watcher>, Notice)> = Vec::new();
        {
            let mut index = self.index.lock().expect("presence lock");
            if index.is_empty() {
                return;
            }
            for event in events {
                let (watchers, user, state) = match event {
                    PresenceEvent::Changed {
                        user_id,
                        online,
                        last_seen,
                        stamp,
                    } => (
                        index.changed(user_id, *stamp),
                        user_id,
                        (*online, *last_seen),
                    ),
                    PresenceEvent::View {
                        viewer,
                        user_id,
                        shown,
                    } => (
                        index.set_view(viewer, user_id, shown.is_some()),
                        user_id,
                        shown.unwrap_or((false, None)),
                    ),
                };
                if let (false, Ok(user_id)) = (watchers.is_empty(), UserId::parse(user.as_str())) {
                    let notice = Notice::Presence {
                        user_id,
                        online: state.0,
                        last_seen: state.1,
                    };
                    pushes.push((watchers, notice));
                }
            }
        }
        for (watchers, notice) in pushes {
            let push = Outbound::Notice(Arc::new(notice.prepare()));
            for w in watchers {
                let conn = self.hub.get(&w.user, &w.device);
                if let Some(conn) = conn.filter(|c| c.epoch == w.epoch) {
                    conn.send(push.clone());
                }
            }
        }
    }
}

/// What a watcher is shown of a user: as it is, or (not visible) offline and never seen.
pub fn shown(visible: bool, state: UserPresence) -> (bool, Option<i64>) {
    if visible {
        (state.online, state.last_seen)
    } else {
        (false, None)
    }
}

/// Carries the changes this pod announces to the other pods' inboxes, until the queue
/// closes: whatever queued meanwhile goes in one event per pod (up to about [`BATCH`]
/// changes), each pod getting only the changes it watches.
pub async fn forward(presence: Arc<Presence>, bus: Arc<dyn Bus>) {
    let Some(mut queued) = presence.queued.lock().expect("presence lock").take() else {
        return;
    };
    while let Some(first) = queued.recv().await {
        let mut batch = vec![first];
        let mut size = batch[0].1.len();
        while size < BATCH {
            match queued.try_recv() {
                Ok(more) => {
                    size += more.1.len();
                    batch.push(more);
                }
                Err(_) => break,
            }
        }
        let by_pod = match by_pod(&presence, batch).await {
            Ok(by_pod) => by_pod,
            Err(e) => {
                tracing::warn!(error = %e, changes = size, "presence changes not forwarded");
                continue;
            }
        };
        for (pod, events) in by_pod {
            if let Err(e) = bus.publish(&pod, BusEvent::Presence { events }).await {
                tracing::warn!(pod, error = %e, "presence changes not forwarded");
            }
        }
    }
}

/// The queued changes grouped by the pod they are for (this pod left out, `All` resolved to
/// the live pods).
async fn by_pod(
    presence: &Presence,
    batch: Vec<Queued>,
) -> Result<BTreeMap<String, Vec<PresenceEvent>>> {
    let mut live = None;
    let mut out: BTreeMap<String, Vec<PresenceEvent>> = BTreeMap::new();
    for (to, events) in batch {
        let pods = match to {
            Targets::Pods(pods) => pods,
            Targets::All => match &live {
                Some(pods) => Vec::clone(pods),
                None => live.insert(presence.routes.pods().await?).clone(),
            },
        };
        for pod in pods.into_iter().filter(|p| *p != presence.pod) {
            out.entry(pod).or_default().extend(events.iter().cloned());
        }
    }
    Ok(out)
}
