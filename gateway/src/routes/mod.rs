//! The route table: which pod holds each (user, device) connection, fenced by a per-connection epoch.
//!
//! Two implementations: [`memory`] (one process, or several in-process pods in tests) and
//! [`redis`] (cluster mode). The table is also where presence comes from: a user is online
//! while one of its devices has a route; registering the first device and removing the last
//! are the changes PRESENCE (27) announces, and the time the last one left is the user's
//! `lastSeen`. The table also counts which pods watch whose presence ([`RouteTable::watch`]),
//! so a change is sent only to them, never broadcast. The epoch fences stale entries: a device that reconnects to pod B while pod A
//! still closes its old socket keeps its new route, because A's removal is a compare-and-delete.

pub mod memory;
pub mod redis;

use async_trait::async_trait;

use crate::delivery::DeviceRoute;
use crate::error::Result;

/// What [`RouteTable::register`] changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The device's route it replaced (another epoch, possibly on another pod), if any.
    pub replaced: Option<DeviceRoute>,
    /// Whether the user had no online device before: its presence turns online.
    pub first: bool,
    /// When `first`: the pods with a connection watching the user's presence.
    pub watchers: Vec<String>,
}

/// What [`RouteTable::unregister`] changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removed {
    /// Whether the route was removed (false: a newer connection of the device holds it).
    pub removed: bool,
    /// The user's `lastSeen` (ms), when this was its last online device: it turns offline.
    pub last_seen: Option<i64>,
    /// With `last_seen`: the pods with a connection watching the user's presence.
    pub watchers: Vec<String>,
}

/// A user whose last device went with a reaped pod ([`RouteTable::reap`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Departed {
    /// The user.
    pub user: String,
    /// Its `lastSeen` now (ms).
    pub last_seen: i64,
    /// The pods with a connection watching the user's presence.
    pub watchers: Vec<String>,
}

/// One user's presence as the route table knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserPresence {
    /// Whether a device of the user is in the table.
    pub online: bool,
    /// When its last device left (ms since the epoch); `None` while online or never seen.
    pub last_seen: Option<i64>,
}

/// What [`RouteTable::refresh`] did.
#[derive(Debug, Default, PartialEq)]
pub struct Refreshed {
    /// The route was missing and is registered again: deliveries meanwhile did not find the
    /// device, so its session should re-read its backlog.
    pub created: bool,
    /// The device is the user's only online one again: the pods watching the user.
    pub back_online: Option<Vec<String>>,
}

/// The seam that says where a device is connected: written by the connection's pod, read by whoever
/// delivers to it. Implemented by [`memory::MemoryRoutes`] (one process) and [`redis::RedisRoutes`]
/// (cluster).
#[async_trait]
pub trait RouteTable: Send + Sync + 'static {
    /// Records `route` as the device's current connection: what it replaced (another epoch,
    /// possibly on another pod), and whether it is the user's first online device.
    async fn register(&self, route: &DeviceRoute) -> Result<Registered>;

    /// Removes the device's route only if it still carries `route.epoch` (or is gone): whether
    /// it did, and the user's `lastSeen` (now) when that was its last online device.
    async fn unregister(&self, route: &DeviceRoute) -> Result<Removed>;

    /// Extends the route's lifetime (heartbeat, renew). Re-creates it if it expired meanwhile;
    /// when that made the device the user's only online one (the user came back online), the
    /// pods watching the user.
    async fn refresh(&self, route: &DeviceRoute) -> Result<Refreshed>;

    /// Counts `pod`'s interest in users' presence: each `(user, delta)` adds +1 when a
    /// connection there starts watching the user where none did, -1 when the last one stops.
    /// Changes of a user's presence are sent only to the pods counted for it. Deltas of one pod
    /// may arrive out of order: a count is never left below what the pod's calls add up to
    /// (at worst a pod is told of a user it no longer watches, and ignores it).
    async fn watch(&self, pod: &str, deltas: &[(String, i64)]) -> Result<()>;

    /// Each user's presence, in `users`' order: online when a device of it is in the table;
    /// else the time its last device left, if the table knows it.
    async fn presence(&self, users: &[String]) -> Result<Vec<UserPresence>>;

    /// Pods whose last heartbeat is older than `before_ms` (ms since the epoch): dead, or cut
    /// off from the table.
    async fn silent_pods(&self, before_ms: i64) -> Result<Vec<String>>;

    /// Removes every route `pod` still holds (a dead pod's, or this pod's from before a
    /// restart), and its interest in users' presence, and returns the users whose last online
    /// device went with it. With `silent_before`, the pod is also forgotten as a server
    /// if its last heartbeat is still older than that (a pod that comes back registers again,
    /// [`RouteTable::heartbeat`]). Several pods may reap one pod at once: each route is
    /// removed, and each user reported, once.
    async fn reap(&self, pod: &str, silent_before: Option<i64>) -> Result<Vec<Departed>>;

    /// Every connected device of `users`.
    async fn lookup(&self, users: &[String]) -> Result<Vec<DeviceRoute>>;

    /// The pods that announced themselves recently (for `sendToAll`).
    async fn pods(&self) -> Result<Vec<String>>;

    /// Announces `pod` as alive (every few seconds). True when the table did not know the pod:
    /// its first beat, or the table lost its state (a Redis restarted or flushed) — then the pod
    /// registers its connections again ([`crate::server::App::reannounce`]).
    async fn heartbeat(&self, pod: &str) -> Result<bool>;

    /// Records, at each heartbeat, whether `pod`'s inbox consumer works, so that a pod whose
    /// consumer is down can tell its own fault from a broker outage every pod shares. One
    /// process has no peers: nothing to record.
    async fn inbox_health(&self, _pod: &str, _consuming: bool) -> Result<()> {
        Ok(())
    }

    /// How many pods but `pod` reported a working inbox consumer at or after `since_ms`.
    async fn consuming_peers(&self, _pod: &str, _since_ms: i64) -> Result<usize> {
        Ok(0)
    }

    /// Is the table reachable? (readiness)
    async fn ping(&self) -> Result<()>;
}
