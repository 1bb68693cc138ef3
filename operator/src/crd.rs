//! The `ChatCluster` custom resource (`chatcluster.dev/v1alpha1`, short name `cc`): its spec, its
//! status, and the CRD generated from them.
//!
//! These types are the single source of the CRD: `chat-operator crd` prints [`crd_yaml`], the
//! checked-in `crds/chatcluster.yaml` is that output, and a test fails when the two drift. The
//! apiserver enforces everything expressible in the schema — minimums, defaults, and the CEL rules
//! (`x-kubernetes-validations`) on [`GatewaySpec`], [`RedisSpec`], [`PulsarSpec`], [`DatabaseSpec`]
//! and [`PodSpecOverrides`], the transition rules (`oldSelf`) that keep the identity included — so the
//! reconciler never sees a spec that breaks them.

// kube's `KubeSchema` derive copies each struct it derives for (`pub` included, only
// `#[allow(missing_docs)]` added) into a function body to generate its schema; the copy is
// unreachable and the lint points at our `pub`. An item attribute would be stripped from the copy.
#![expect(
    unreachable_pub,
    reason = "KubeSchema's private copies of GatewaySpec, RedisSpec, PulsarSpec, DatabaseSpec, ObjectStoreSpec, PodSpecOverrides, ChatClusterStatus"
)]

use k8s_openapi::api::core::v1::ResourceRequirements;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod backends;
mod files;
mod monitoring;
mod placement;
mod rebalance;
mod route;
mod security;
mod status;
pub use backends::{AuthSpec, DatabaseSpec, PulsarSpec, RedisSpec, SecretKeyRef};
pub use files::{FilesSpec, ObjectStoreSpec};
pub use monitoring::{MonitoringSpec, PodMonitorSpec};
pub use placement::{
    PodSpecOverrides, ServiceOverrides, ServiceType, RESERVED_ANNOTATION_PREFIX, RESERVED_LABELS,
};
pub use rebalance::{PodConnections, RebalancePhase, RebalanceSpec, RebalanceStatus};
pub use route::{HttpRouteSpec, IngressSpec, ParentReference};
pub use security::{NetworkPolicySpec, PeerSpec};
pub use status::{ChatClusterStatus, Phase, RolloutStatus, RolloutStep};

/// Desired state of a chat cluster: a StatefulSet of `chat-gateway` pods in cluster mode, sharing
/// Redis (routes), Pulsar (one inbox topic per pod) and PostgreSQL (messages).
#[derive(CustomResource, Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[expect(
    clippy::duplicated_attributes,
    reason = "several printer columns share `type_ = \"integer\"`; they are not duplicates"
)]
#[kube(
    group = "chatcluster.dev",
    version = "v1alpha1",
    kind = "ChatCluster",
    shortname = "cc",
    namespaced,
    doc = "A WebSocket chat cluster: gateways in cluster mode, managed by chat-operator.",
    status = "ChatClusterStatus",
    derive = "PartialEq",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(
        name = "Connections",
        type_ = "integer",
        json_path = ".status.connections"
    ),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ChatClusterSpec {
    /// Number of gateway pods. Also the scale subresource: `kubectl scale cc/NAME --replicas=5`.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0))]
    pub replicas: i32,
    /// Container image of `chat-gateway`; changing it starts a pod-by-pod drained rollout.
    pub image: String,
    /// Session timing, limits and pod resources of the gateways.
    #[serde(default)]
    pub gateway: GatewaySpec,
    /// Redis holding the cluster-wide route table (device → pod) and the recent-message cache.
    pub redis: RedisSpec,
    /// Pulsar carrying messages between pods, one inbox topic per pod.
    pub pulsar: PulsarSpec,
    /// PostgreSQL, the durable message store shared by all pods.
    pub database: DatabaseSpec,
    /// Where the gateways get the secret that signs and checks client tokens.
    pub auth: AuthSpec,
    /// Ingress exposing the WebSocket port; none is created when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,
    /// Uploads: their size limit and the S3-compatible store that keeps them.
    #[serde(default, skip_serializing_if = "FilesSpec::is_default")]
    pub files: FilesSpec,
    /// The offline-push webhook (`message.offline` events for recipients with no online
    /// device); off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offline_webhook: Option<OfflineWebhookSpec>,
    /// A NetworkPolicy on the gateway pods (off unless `enabled`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_policy: Option<NetworkPolicySpec>,
    /// Placement and identity of the gateway pods: pull secrets, node selection, tolerations,
    /// affinity, spread, priority, extra labels, annotations and env.
    #[serde(default, skip_serializing_if = "PodSpecOverrides::is_default")]
    pub pod: PodSpecOverrides,
    /// Type and annotations of the client Service `<cc>-gateway`.
    #[serde(default, skip_serializing_if = "ServiceOverrides::is_default")]
    pub service: ServiceOverrides,
    /// A Gateway API `HTTPRoute` to the public port; none when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub http_route: Option<HttpRouteSpec>,
    /// Prometheus scraping of the gateways (a PodMonitor; off unless enabled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<MonitoringSpec>,
    /// Evening out connections across the pods after a rollout or a scale-up (on by default).
    #[serde(default, skip_serializing_if = "RebalanceSpec::is_default")]
    pub rebalance: RebalanceSpec,
}

/// Three pods: one can drain while another fails and the cluster still serves.
fn default_replicas() -> i32 {
    3
}

/// Gateway tuning, passed to every pod as `chat-gateway serve` flags.
///
/// `drainSeconds` may not exceed `timelifeSeconds`: a drain tells each client a shortened
/// timelife (the seconds left to the deadline), so a drain longer than the normal timelife would
/// lengthen sessions instead of ending them.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("self.drainSeconds <= self.timelifeSeconds")
    .message("drainSeconds must not be greater than timelifeSeconds"))]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    /// Seconds a session lives before the client must renew it on a new connection.
    #[serde(default = "default_timelife_seconds")]
    #[schemars(range(min = 1))]
    pub timelife_seconds: i32,
    /// Seconds between heartbeats; a connection missing them is closed.
    #[serde(default = "default_heartbeat_seconds")]
    #[schemars(range(min = 1))]
    pub heartbeat_seconds: i32,
    /// Seconds a draining pod gives its clients to move before it closes what is left.
    #[serde(default = "default_drain_seconds")]
    #[schemars(range(min = 1))]
    pub drain_seconds: i32,
    /// Connections one pod accepts before it refuses new upgrades.
    #[serde(default = "default_max_connections_per_pod")]
    #[schemars(range(min = 1))]
    pub max_connections_per_pod: i32,
    /// Seconds after sending during which a sender may recall (RECALL, 32) a message.
    #[serde(
        default = "default_recall_seconds",
        skip_serializing_if = "is_default_recall_seconds"
    )]
    #[schemars(range(min = 0))]
    pub recall_seconds: i32,
    /// CPU and memory requests and limits of the gateway container.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
}

/// Half an hour: renewals (a reconnect each) stay rare.
fn default_timelife_seconds() -> i32 {
    1800
}

/// Below the 60 s idle timeout of common load balancers and ingress proxies.
fn default_heartbeat_seconds() -> i32 {
    30
}

/// Kubernetes' default `terminationGracePeriodSeconds`.
fn default_drain_seconds() -> i32 {
    30
}

/// Two minutes, the gateway's `--recall-seconds` default (DESIGN §11).
fn default_recall_seconds() -> i32 {
    120
}

/// A spec written without `recallSeconds` (v1's) reads back without it.
fn is_default_recall_seconds(seconds: &i32) -> bool {
    *seconds == default_recall_seconds()
}

/// DESIGN §8's default; each connection is a socket, so the pod's open-file limit must exceed it.
fn default_max_connections_per_pod() -> i32 {
    50_000
}

impl Default for GatewaySpec {
    fn default() -> Self {
        Self {
            timelife_seconds: default_timelife_seconds(),
            heartbeat_seconds: default_heartbeat_seconds(),
            drain_seconds: default_drain_seconds(),
            max_connections_per_pod: default_max_connections_per_pod(),
            recall_seconds: default_recall_seconds(),
            resources: None,
        }
    }
}
/// The offline-push webhook: where events go, the key they are signed with, how long each is
/// retried.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct OfflineWebhookSpec {
    /// URL the gateways POST `message.offline` events to.
    pub url: String,
    /// Secret key holding the HMAC-SHA256 key of the `X-Chat-Signature` header.
    pub secret_ref: SecretKeyRef,
    /// Secret key holding a PEM CA to trust, besides the public roots, for an `https://`
    /// receiver with a private CA; mounted in the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// How long a delivery is retried (with backoff) before it is given up.
    #[serde(default = "default_webhook_retry_seconds")]
    #[schemars(range(min = 1, max = 604_800))]
    pub retry_seconds: i32,
}

/// The gateway's `--offline-webhook-retry-seconds` default: an hour.
fn default_webhook_retry_seconds() -> i32 {
    3600
}

/// The CRD as YAML, exactly as `chat-operator crd` prints it and `crds/chatcluster.yaml` holds it.
pub fn crd_yaml() -> crate::Result<String> {
    Ok(serde_saphyr::to_string(&ChatCluster::crd())?)
}
