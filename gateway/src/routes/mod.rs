//! The route table: which pod holds each (user, device) connection, fenced by a per-connection epoch.
//!
//! Two implementations: [`memory`] (one process, or several in-process pods in tests) and
//! [`redis`] (cluster mode). The epoch fences stale entries: a device that reconnects to pod B while pod A
//! still closes its old socket keeps its new route, because A's removal is a compare-and-delete.

pub mod memory;
pub mod redis;

use async_trait::async_trait;

use crate::delivery::DeviceRoute;
use crate::error::Result;

/// The seam that says where a device is connected: written by the connection's pod, read by whoever
/// delivers to it. Implemented by [`memory::MemoryRoutes`] (one process) and [`redis::RedisRoutes`]
/// (cluster).
#[async_trait]
pub trait RouteTable: Send + Sync + 'static {
    /// Records `route` as the device's current connection and returns the route it replaced
    /// (another epoch, possibly on another pod), if any.
    async fn register(&self, route: &DeviceRoute) -> Result<Option<DeviceRoute>>;

    /// Removes the device's route only if it still carries `route.epoch`. True if removed.
    async fn unregister(&self, route: &DeviceRoute) -> Result<bool>;

    /// Extends the route's lifetime (heartbeat, renew). Re-creates it if it expired meanwhile.
    async fn refresh(&self, route: &DeviceRoute) -> Result<()>;

    /// Every connected device of `users`.
    async fn lookup(&self, users: &[String]) -> Result<Vec<DeviceRoute>>;

    /// The pods that announced themselves recently (for `sendToAll`).
    async fn pods(&self) -> Result<Vec<String>>;

    /// Announces `pod` as alive (every few seconds). True when the table did not know the pod:
    /// its first beat, or the table lost its state (a Redis restarted or flushed) — then the pod
    /// registers its connections again ([`crate::server::App::reannounce`]).
    async fn heartbeat(&self, pod: &str) -> Result<bool>;

    /// Is the table reachable? (readiness)
    async fn ping(&self) -> Result<()>;
}
