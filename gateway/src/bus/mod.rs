//! The bus: one inbox per pod. To reach a device on pod Q, publish one event to Q's inbox.
//!
//! Two implementations: [`memory`] (in-process) and [`pulsar`] (cluster mode: one topic per pod,
//! consumed by that pod with an exclusive subscription).

pub mod memory;
pub mod pulsar;

use std::sync::Arc;

use async_trait::async_trait;
use chat_protocol::KickReason;
use serde::{Deserialize, Deserializer, Serialize};
use tokio::sync::mpsc;

use crate::delivery::DeviceRoute;
use crate::error::{Error, Result};
use crate::model::{DeliveredNotice, HttpPush, StoredMessage};
use crate::notice::Notice;
use crate::presence::PresenceEvent;

/// What pods send each other. Every event names the devices it is for on the receiving pod
/// (one event per target pod, never one per member).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "event", rename_all = "camelCase")]
pub enum BusEvent {
    /// A stored message (2 or 10) for these devices.
    Deliver {
        /// The message as stored, whole: the receiving pod windows it without a store read, and
        /// renders its push from it when `push` is absent.
        message: StoredMessage,
        /// The devices on the receiving pod it is for, each with the epoch it was routed at.
        devices: Vec<DeviceRoute>,
        /// Times the event was already passed on because its device had moved to another pod (at
        /// most [`MAX_HOPS`]).
        hops: u8,
        /// The push's `msg` body as the sending pod serialised it, so the receiving pod writes
        /// it as it is instead of serialising it again. Absent in events from earlier builds
        /// (they render `message` themselves), which also ignore it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        push: Option<Arc<str>>,
    },
    /// A DELIVERED (17) notice for the sender's devices.
    Delivered {
        /// Which message was delivered, and to whom.
        notice: DeliveredNotice,
        /// The sender's devices on the receiving pod, each with the epoch it was routed at.
        devices: Vec<DeviceRoute>,
        /// Times the event was already passed on because its device had moved to another pod (at
        /// most [`MAX_HOPS`]).
        hops: u8,
    },
    /// An HTTP `/message/send` notification for these devices.
    Push {
        /// The posted notification.
        push: HttpPush,
        /// The devices on the receiving pod it is for, each with the epoch it was routed at.
        devices: Vec<DeviceRoute>,
        /// Times the event was already passed on because its device had moved to another pod (at
        /// most [`MAX_HOPS`]).
        hops: u8,
    },
    /// A v1.1 notification (READ, TYPING) for these devices. Pods of earlier builds cannot read
    /// it and drop it: a notification is never stored or retried, and what a READ announces
    /// is also in SYNC's conversation list.
    Notice {
        /// The notification.
        notice: Notice,
        /// The devices on the receiving pod it is for, each with the epoch it was routed at.
        devices: Vec<DeviceRoute>,
        /// Times the event was already passed on because its device had moved to another pod (at
        /// most [`MAX_HOPS`]).
        hops: u8,
    },
    /// Presence changes (v1.1), for whichever connections of the receiving pod watch them
    /// ([`crate::presence`]); every live pod gets each batch. Pods of earlier builds drop it.
    Presence {
        /// The changes, oldest first.
        events: Vec<PresenceEvent>,
    },
    /// An HTTP `/message/send` with `sendToAll`: every device on the receiving pod.
    PushAll {
        /// The posted notification.
        push: HttpPush,
    },
    /// These devices re-read their backlog from the store: a message they may lack was stored
    /// (a resent `clientMsgId` whose first fan-out may have died with its pod). Pods of earlier
    /// builds drop it; their devices catch up at their next reconnect, as before.
    Resync {
        /// The devices on the receiving pod, each with the epoch it was routed at.
        devices: Vec<DeviceRoute>,
        /// Times the event was already passed on because its device had moved to another pod (at
        /// most [`MAX_HOPS`]).
        hops: u8,
    },
    /// Never on the wire: this pod's inbox consumer was rebuilt after a failure, so events sent
    /// to it meanwhile may be gone (a restarted broker): every local session re-reads its
    /// backlog.
    #[serde(skip)]
    InboxRestored,
    /// Close these connections (only the exact epochs named) with KICKED (23).
    Kick {
        /// The connections to close; a device's newer connection (another epoch) stays.
        devices: Vec<DeviceRoute>,
        /// Why, as KICKED tells the client; one this version does not know reads as `admin`.
        #[serde(deserialize_with = "kick_reason")]
        reason: KickReason,
    },
}

/// A kick's reason; one this version does not know (from a newer pod) counts as `admin`.
fn kick_reason<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<KickReason, D::Error> {
    let reason = String::deserialize(d)?;
    Ok(KickReason::parse(&reason).unwrap_or(KickReason::Admin))
}

/// An event the bus did not accept, and why.
#[derive(Debug)]
pub struct Unsent {
    /// Why it was not accepted.
    pub error: Error,
    /// The event, to try again (`None`: lost inside the bus, e.g. its forwarder died).
    pub event: Option<BusEvent>,
}

impl std::fmt::Display for Unsent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl From<Unsent> for Error {
    fn from(unsent: Unsent) -> Self {
        unsent.error
    }
}

/// How many times an event may be re-routed to another pod after its device moved.
pub const MAX_HOPS: u8 = 2;

/// The seam between pods: each pod consumes its own inbox and publishes to the others'. Implemented
/// by [`memory::MemoryBus`] (one process) and [`pulsar::PulsarBus`] (cluster).
#[async_trait]
pub trait Bus: Send + Sync + 'static {
    /// Publishes `event` to `pod`'s inbox. Resolves once the bus accepted it; when it did not,
    /// the event comes back with the error (a retry keeps it without having copied it first).
    async fn publish(&self, pod: &str, event: BusEvent) -> std::result::Result<(), Unsent>;

    /// Starts consuming `pod`'s inbox; events arrive on the returned channel until the bus stops.
    async fn subscribe(&self, pod: &str) -> Result<mpsc::Receiver<BusEvent>>;

    /// Is this pod's inbox being consumed? (readiness)
    async fn ping(&self) -> Result<()>;

    /// Since when (ms since the epoch) this pod's inbox consumer has been down; `None` while it
    /// consumes (or for a bus without a consumer to lose).
    fn down_since(&self) -> Option<i64> {
        None
    }
}
