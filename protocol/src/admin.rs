//! The bodies of the gateway's admin API (DESIGN §6), which the operator calls during rollouts
//! and scale-downs: `GET /admin/status`, `POST /admin/drain` and, to even out the pods'
//! connections while every pod stays ready, `POST /admin/rebalance`.

use serde::{Deserialize, Serialize};

/// `GET /admin/status`.
pub const STATUS_PATH: &str = "/admin/status";
/// `POST /admin/drain`.
pub const DRAIN_PATH: &str = "/admin/drain";
/// `POST /admin/rebalance`.
pub const REBALANCE_PATH: &str = "/admin/rebalance";

/// The answer to `GET /admin/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The pod's name.
    pub pod: String,
    /// Open WebSocket connections.
    pub connections: u64,
    /// Is it draining?
    pub draining: bool,
    /// Connections told to move by `/admin/rebalance` that are still here (they leave by their
    /// deadline). Absent from gateways that predate rebalancing: read as 0.
    #[serde(default)]
    pub moving: u64,
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

/// The body of `POST /admin/rebalance`: move `connections` of this pod's connections elsewhere
/// while the pod stays ready. Each is sent the drain's DRAIN (22), with its `reconnectAfterMs`
/// spread over the first half of `paceSeconds`, and is closed (1012) at the end of it if still
/// here.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceRequest {
    /// How many connections to move; at least 1. The longest-lived ones not already moving go.
    pub connections: u64,
    /// Seconds the moved connections have to leave; default `--drain-seconds`, 1 to 86400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pace_seconds: Option<u64>,
}

/// The answer to `POST /admin/rebalance` (202).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceStarted {
    /// The pod's name.
    pub pod: String,
    /// How many connections were sent DRAIN now (fewer than asked when fewer are here).
    pub moving: u64,
    /// Open WebSocket connections, those told to move included.
    pub connections: u64,
    /// Seconds the moved connections have to leave.
    pub pace_seconds: u64,
}
