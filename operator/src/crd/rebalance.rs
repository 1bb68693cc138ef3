//! `spec.rebalance` and `status.rebalance`: evening out the pods' connections after a rollout or
//! a scale-up (see [`crate::rebalance`]).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// How the operator evens out connections across the pods: the busiest pods send DRAIN (22) to a
/// paced share of their connections, staying ready, until every pod is within
/// `tolerancePercent` of the mean. Never during a rollout, a scale-down or a drain.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceSpec {
    /// Whether the operator rebalances at all.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
    /// Balanced when every pod is within this percentage of the mean connections per pod.
    #[serde(default = "default_tolerance_percent")]
    #[schemars(range(min = 1, max = 100))]
    pub tolerance_percent: i32,
    /// Most a pod is asked to move in one step, in percent of its connections.
    #[serde(default = "default_max_share_percent")]
    #[schemars(range(min = 1, max = 100))]
    pub max_share_percent: i32,
    /// Least time between two steps. Each step's clients move within `gateway.drainSeconds`, and
    /// no step starts while the last one's are still moving.
    #[serde(default = "default_interval_seconds")]
    #[schemars(range(min = 1))]
    pub interval_seconds: i32,
    /// No rebalancing while the cluster holds fewer connections than this per pod on average.
    #[serde(default = "default_min_connections_per_pod")]
    #[schemars(range(min = 1))]
    pub min_connections_per_pod: i32,
}

fn default_enabled() -> bool {
    true
}

/// The "within 20 % of the mean".
fn default_tolerance_percent() -> i32 {
    20
}

/// A tenth per step: the reconnections of one step are a small ramp for the other pods.
fn default_max_share_percent() -> i32 {
    10
}

/// Half a minute: the default drain window, so one step's moves are over before the next.
fn default_interval_seconds() -> i32 {
    30
}

/// Ten: below that, a few connections more or less on a pod are not worth a reconnect.
fn default_min_connections_per_pod() -> i32 {
    10
}

impl Default for RebalanceSpec {
    fn default() -> Self {
        Self {
            enabled: default_enabled(),
            tolerance_percent: default_tolerance_percent(),
            max_share_percent: default_max_share_percent(),
            interval_seconds: default_interval_seconds(),
            min_connections_per_pod: default_min_connections_per_pod(),
        }
    }
}

impl RebalanceSpec {
    /// Whether every field has its default (then `spec.rebalance` is left out when serialized).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// Where rebalancing stands.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RebalancePhase {
    /// Every pod is within the tolerance of the mean, or too few connections to bother.
    Balanced,
    /// Pods are being asked, step by step, to move connections.
    Rebalancing,
    /// Not now: a rollout, a scale or a drain is running, or a pod is not serving.
    Paused,
}

/// One pod's connections, as last read.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PodConnections {
    /// Pod name.
    pub pod: String,
    /// Open connections.
    pub connections: i64,
}

/// The spread of connections across the pods and the last rebalancing step.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceStatus {
    /// Where rebalancing stands.
    pub phase: RebalancePhase,
    /// The farthest pod's distance from the mean connections per pod, in percent of the mean.
    pub spread_percent: i64,
    /// Each serving pod's connections. Always written, empty too: the status is a merge patch,
    /// which would keep an old list that an absent field does not replace.
    #[serde(default)]
    pub pods: Vec<PodConnections>,
    /// What the last step asked, e.g. `asked demo-gateway-0 to move 15 of 150 connections`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step: Option<String>,
    /// When the last step was taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_step_time: Option<Time>,
}
