//! Where the gateway pods run and what they carry besides the operator's settings
//! (`spec.pod`), and how their client Service is exposed (`spec.service`).
//!
//! The operator's own labels, annotations and environment always win: the selector labels and
//! the `chatcluster.dev/` annotations are refused by CEL rules (and dropped by the builders should a
//! spec skip validation), and an extra env var named like one the operator sets is dropped (see
//! [`PodSpecOverrides::env`]).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Affinity, EnvVar, LocalObjectReference, Toleration, TopologySpreadConstraint,
};
use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Label keys the operator sets on every gateway pod: the StatefulSet's selector (immutable) and
/// what the operator's pod watch selects on. A pod label may not use them.
pub const RESERVED_LABELS: [&str; 3] = [
    "app.kubernetes.io/name",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/managed-by",
];

/// Prefix of the annotations the operator keeps on the pod template and the pods (the config and
/// Secret hashes, the drain deadline). A pod annotation may not use it.
pub const RESERVED_ANNOTATION_PREFIX: &str = "chatcluster.dev/";

/// Placement and identity of the gateway pods, applied to the StatefulSet's pod template. Every
/// field is optional; a change rolls the pods through the drain like any template change.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct PodSpecOverrides {
    /// Secrets holding the credentials of a private registry, for `spec.image`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<LocalObjectReference>,
    /// Node labels the pods must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Taints the pods tolerate.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Node and pod (anti-)affinity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Replaces the operator's default spread (at most one pod more per node than on any other,
    /// `ScheduleAnyway`). Give each constraint a `labelSelector`; the gateway pods carry
    /// `app.kubernetes.io/instance: <cc>` and `app.kubernetes.io/name: chat-gateway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology_spread_constraints: Option<Vec<TopologySpreadConstraint>>,
    /// PriorityClass of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    /// Extra pod annotations. Keys under `chatcluster.dev/` are the operator's and are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = Rule::new("self.all(k, !k.startsWith('chatcluster.dev/'))")
        .message("pod annotations under chatcluster.dev/ are the operator's"))]
    pub annotations: BTreeMap<String, String>,
    /// Extra pod labels. `app.kubernetes.io/name`, `instance` and `managed-by` select the pods
    /// and are refused.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[x_kube(validation = Rule::new("self.all(k, !(k in ['app.kubernetes.io/name', 'app.kubernetes.io/instance', 'app.kubernetes.io/managed-by']))")
        .message("pod labels may not set app.kubernetes.io/name, instance or managed-by: they select the gateway pods"))]
    pub labels: BTreeMap<String, String>,
    /// Extra environment variables of the gateway container, after the operator's (so they may
    /// refer to them as `$(NAME)`). One named like a variable the operator sets — in the
    /// container or through the `<cc>-config` ConfigMap — is dropped: the operator's value wins,
    /// and the reconcile logs a warning naming it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<EnvVar>,
}

impl PodSpecOverrides {
    /// Nothing set: a spec written without `pod` reads back without it.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// The client Service `<cc>-gateway` (the headless Service is internal and never changes).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ServiceOverrides {
    /// How the Service is exposed.
    #[serde(default, rename = "type")]
    pub type_: ServiceType,
    /// Annotations of the Service, e.g. a cloud load balancer's settings.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl ServiceOverrides {
    /// Nothing set: a spec written without `service` reads back without it.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// The Service types that make sense for the gateways (`ExternalName` selects no pods).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ServiceType {
    /// In-cluster only, behind an Ingress or an HTTPRoute (the default).
    #[default]
    ClusterIP,
    /// A port on every node.
    NodePort,
    /// A cloud load balancer.
    LoadBalancer,
}

impl ServiceType {
    /// The name Kubernetes spells it with.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClusterIP => "ClusterIP",
            Self::NodePort => "NodePort",
            Self::LoadBalancer => "LoadBalancer",
        }
    }
}
