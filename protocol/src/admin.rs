//! The bodies of the gateway's admin API (DESIGN §6), which the operator calls during rollouts
//! and scale-downs: `GET /admin/status` and `POST /admin/drain`.

use serde::{Deserialize, Serialize};

/// `GET /admin/status`.
pub const STATUS_PATH: &str = "/admin/status";
/// `POST /admin/drain`.
pub const DRAIN_PATH: &str = "/admin/drain";

/// The answer to `GET /admin/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The pod's name.
    pub pod: String,
    /// Open WebSocket connections.
    pub connections: u64,
    /// Is it draining?
    pub draining: bool,
}

/// The body of `POST /admin/drain` (optional: the default deadline is `--drain-seconds`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainRequest {
    /// Seconds until the connections left are closed (1012); at most 86400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deadline_seconds: Option<u64>,
}

/// The answer to `POST /admin/drain` (202).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DrainStarted {
    /// The pod's name.
    pub pod: String,
    /// Always true.
    pub draining: bool,
    /// How many connections were sent DRAIN.
    pub connections: u64,
    /// Seconds left on the deadline in force.
    pub deadline_seconds: u64,
}

/// The longest drain deadline `/admin/drain` accepts.
pub const MAX_DRAIN_SECONDS: u64 = 86_400;
