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

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ResourceRequirements;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

mod monitoring;
mod placement;
mod route;
mod security;
pub use monitoring::{MonitoringSpec, PodMonitorSpec};
pub use placement::{
    PodSpecOverrides, ServiceOverrides, ServiceType, RESERVED_ANNOTATION_PREFIX, RESERVED_LABELS,
};
pub use route::{HttpRouteSpec, ParentReference};
pub use security::{NetworkPolicySpec, PeerSpec};

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

/// A key in a Secret in the ChatCluster's namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
pub struct SecretKeyRef {
    /// Name of the Secret.
    pub name: String,
    /// Key within the Secret's data.
    pub key: String,
}

/// Redis connection; exactly one of `url` and `urlSecretRef`. `keyPrefix` is immutable: the
/// live pods' routes are under the old prefix, so a new one would split the route table.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.url) != has(self.urlSecretRef)")
    .message("set exactly one of url and urlSecretRef"))]
#[x_kube(validation = Rule::new("(has(self.keyPrefix) ? self.keyPrefix : '') == (has(oldSelf.keyPrefix) ? oldSelf.keyPrefix : '')")
    .message("redis.keyPrefix is immutable: the pods' routes live under it; create a new ChatCluster to change it"))]
#[serde(rename_all = "camelCase")]
pub struct RedisSpec {
    /// Redis URL in plain text, e.g. `redis://redis:6379`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Secret key holding the Redis URL, for URLs with a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_secret_ref: Option<SecretKeyRef>,
    /// Secret key holding the Redis ACL user name (`CHAT_REDIS_USERNAME`); replaces a user in
    /// the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_secret_ref: Option<SecretKeyRef>,
    /// Secret key holding the Redis password (`CHAT_REDIS_PASSWORD`); replaces one in the URL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<SecretKeyRef>,
    /// Secret key holding the PEM CA that signed a `rediss://` server's certificate, for a
    /// private CA (the public roots are trusted without it). Mounted in the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// Prefix of every Redis key of this cluster, so clusters can share one Redis. When absent the
    /// ChatCluster's name is used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_prefix: Option<String>,
}

/// Pulsar connection and the tenant/namespace holding the pods' inbox topics. `tenant` and
/// `namespace` are immutable: the live pods consume their inboxes there, and pods on the new
/// names would not reach them.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("self.tenant == oldSelf.tenant")
    .message("pulsar.tenant is immutable: the pods' inbox topics live in it; create a new ChatCluster to change it"))]
// `namespace` is a CEL reserved word: Kubernetes exposes the property as `__namespace__`.
#[x_kube(validation = Rule::new("self.__namespace__ == oldSelf.__namespace__")
    .message("pulsar.namespace is immutable: the pods' inbox topics live in it; create a new ChatCluster to change it"))]
#[serde(rename_all = "camelCase")]
pub struct PulsarSpec {
    /// Binary-protocol URL the gateways connect to, e.g. `pulsar://pulsar:6650`, or
    /// `pulsar+ssl://pulsar:6651` for TLS.
    pub service_url: String,
    /// Admin REST URL the operator creates and deletes topics through, e.g. `http://pulsar:8080`
    /// or `https://pulsar:8443`.
    pub admin_url: String,
    /// Secret key holding the token (a JWT) the gateways authenticate with, to the broker and
    /// to the admin API (`CHAT_PULSAR_TOKEN`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_secret_ref: Option<SecretKeyRef>,
    /// Secret key holding the token the operator sends to the admin API (it creates and deletes
    /// topics, which the gateways' role may not). Default: `tokenSecretRef`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token_secret_ref: Option<SecretKeyRef>,
    /// Secret key holding a PEM CA to trust, besides the public roots, for `pulsar+ssl://` and
    /// an `https://` admin API; mounted in the pods and read by the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
    /// Pulsar tenant of the topics.
    #[serde(default = "default_pulsar_tenant")]
    pub tenant: String,
    /// Pulsar namespace of the topics, inside the tenant.
    #[serde(default = "default_pulsar_namespace")]
    pub namespace: String,
}

/// Pulsar's built-in tenant, present on every broker.
fn default_pulsar_tenant() -> String {
    "public".to_owned()
}

/// Pulsar's built-in namespace, present on every broker.
fn default_pulsar_namespace() -> String {
    "default".to_owned()
}

/// PostgreSQL connection; exactly one of `url` and `urlSecretRef`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[x_kube(validation = Rule::new("has(self.url) != has(self.urlSecretRef)")
    .message("set exactly one of url and urlSecretRef"))]
#[serde(rename_all = "camelCase")]
pub struct DatabaseSpec {
    /// PostgreSQL URL in plain text, e.g. `postgres://chat@postgres/chat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Secret key holding the PostgreSQL URL, for URLs with a password. TLS is set in the URL:
    /// `?sslmode=require`, or `verify-full` to check the server's certificate and name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_secret_ref: Option<SecretKeyRef>,
    /// Secret key holding the PEM CA of `sslmode=verify-ca|verify-full` (a private or cloud
    /// CA): mounted in the pods and named by `PGSSLROOTCERT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_secret_ref: Option<SecretKeyRef>,
}

/// Client authentication.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// Secret key holding the HS256 secret; every pod must share it, so it cannot be generated
    /// per pod as in embedded mode.
    pub jwt_secret_ref: SecretKeyRef,
    /// Secret key holding the bearer token of the gateways' admin port (`CHAT_ADMIN_TOKEN`),
    /// which the operator also sends on its drain and status calls. When absent the operator
    /// creates the Secret `<cc>-admin-token` (key `token`, random, owned by the ChatCluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token_secret_ref: Option<SecretKeyRef>,
    /// Origins browsers may open WebSockets from (`CHAT_ALLOWED_ORIGINS`, `scheme://host[:port]`).
    /// When absent: the ingress host (`https://host` with `tlsSecretName`, else `http://host`),
    /// or every origin without an ingress. An empty list allows every origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_origins: Option<Vec<String>>,
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

/// Ingress for the WebSocket port (the admin port is never exposed).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// Host name clients connect to.
    pub host: String,
    /// IngressClass to use; the cluster's default class when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// Secret with the TLS certificate for `host`; plain HTTP when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
    /// Annotations of the Ingress, for the controller of `className`. The ingress-nginx
    /// annotations the operator sets win, except that a `proxy-read-timeout` or
    /// `proxy-send-timeout` of more (whole) seconds than the operator's is kept: a WebSocket must
    /// outlive its session's timelife.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

/// Uploads (`POST /api/files`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct FilesSpec {
    /// Largest upload in bytes; the Ingress accepts request bodies up to it too.
    #[serde(default = "default_max_file_bytes")]
    #[schemars(range(min = 1))]
    pub max_file_bytes: i64,
    /// S3-compatible store shared by every pod; without it each pod keeps files on its own
    /// (emptyDir) disk, which only suits a single replica.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub object_store: Option<ObjectStoreSpec>,
}

/// The gateway's default, 20 MiB.
fn default_max_file_bytes() -> i64 {
    20 * 1024 * 1024
}

impl FilesSpec {
    /// All defaults: a spec written without `files` reads back without it.
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl Default for FilesSpec {
    fn default() -> Self {
        Self {
            max_file_bytes: default_max_file_bytes(),
            object_store: None,
        }
    }
}

/// An S3-compatible bucket (AWS S3, MinIO, Ceph, …); files are served by presigned URLs, so the
/// endpoint must be reachable by clients. Credentials come from Secrets, both or neither (then
/// the pod's own AWS credentials, e.g. a service-account role, are used).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("has(self.accessKeyIdSecretRef) == has(self.secretAccessKeySecretRef)")
    .message("set both or neither of accessKeyIdSecretRef and secretAccessKeySecretRef"))]
#[serde(rename_all = "camelCase")]
pub struct ObjectStoreSpec {
    /// `s3://bucket/prefix`.
    #[schemars(regex(pattern = r"^s3://[^/]+(/.*)?$"))]
    pub url: String,
    /// Endpoint of a non-AWS store, e.g. `https://minio.example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Region (most S3-compatible stores accept the gateway's default, `us-east-1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Secret key holding the access key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_key_id_secret_ref: Option<SecretKeyRef>,
    /// Secret key holding the secret access key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_access_key_secret_ref: Option<SecretKeyRef>,
}

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

/// The CRD as YAML, exactly as `chat-operator crd` prints it and `crds/chatcluster.yaml` holds it.
pub fn crd_yaml() -> crate::Result<String> {
    Ok(serde_saphyr::to_string(&ChatCluster::crd())?)
}
