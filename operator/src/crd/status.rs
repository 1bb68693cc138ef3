//! The observed state the operator writes: `status`, its phase and the rollout's progress.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::RebalanceStatus;

/// Observed state, written by the operator only.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ChatClusterStatus {
    /// Gateway pods that exist (the scale subresource's status replicas).
    #[serde(default)]
    pub replicas: i32,
    /// Gateway pods that are Ready.
    #[serde(default)]
    pub ready_replicas: i32,
    /// WebSocket connections summed over the pods' admin status.
    #[serde(default)]
    pub connections: i64,
    /// One-word summary of the cluster.
    #[serde(default)]
    pub phase: Phase,
    /// `metadata.generation` this status was computed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// StatefulSet revision the pods not yet rolled run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_revision: Option<String>,
    /// StatefulSet revision a rollout moves the pods to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub update_revision: Option<String>,
    /// Standard conditions (`Ready`, `Progressing`, …), one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[x_kube(merge_strategy = ListMerge::Map(vec!["type".into()]))]
    pub conditions: Vec<Condition>,
    /// Pulsar inbox topics provisioned for the pods, one per ordinal.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topics: Vec<String>,
    /// The pod a rollout is working on; absent when no rollout is running.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout: Option<RolloutStatus>,
    /// Label selector of the gateway pods, as a string (the scale subresource's
    /// `labelSelectorPath`, which an HPA or KEDA needs to find the pods' metrics).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// The spread of connections across the pods and the last rebalancing step; absent when
    /// rebalancing is disabled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rebalance: Option<RebalanceStatus>,
}

/// One-word summary of a ChatCluster, shown by `kubectl get cc`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Phase {
    /// Not yet reconciled, or pods are still starting for the first time.
    #[default]
    Pending,
    /// Every pod is Ready and on the current revision.
    Running,
    /// Pods are being drained and replaced one by one.
    RollingOut,
    /// Fewer pods are Ready than wanted, outside a rollout.
    Degraded,
}

/// Progress of a pod-by-pod rollout.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RolloutStatus {
    /// The pod being replaced, e.g. `demo-gateway-2`.
    pub pod: String,
    /// Where that pod is in its replacement.
    pub step: RolloutStep,
    /// Pods already on the update revision.
    pub updated: i32,
}

/// The steps of replacing one pod, in order.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum RolloutStep {
    /// Drain requested; waiting for its connections to reach zero or the drain deadline.
    Draining,
    /// Pod deleted; waiting for it to be gone.
    Deleting,
    /// Replacement pod created; waiting for it to become Ready.
    WaitingReady,
}
