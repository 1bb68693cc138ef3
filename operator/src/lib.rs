//! `chat-operator`: the Kubernetes side of chatcluster.
//!
//! The crate is a pure core with the Kubernetes I/O around it (STYLE: "pure core, async edges"):
//!
//! - [`crd`]: the `ChatCluster` resource types and the CRD generated from them.
//! - [`builders`]: a ChatCluster turned into the objects that run it (ConfigMap, Services,
//!   StatefulSet, PodDisruptionBudget, Ingress, NetworkPolicy, HTTPRoute) and the names derived
//!   from it (pods, topics, admin URLs), with the user's pod placement laid under the operator's
//!   own values and the hash of the Secret data the pods read.
//! - [`observed`]: the live StatefulSet, pods and gateway `/admin/status` answers, reduced to the
//!   facts the decisions need.
//! - [`rollout`]: the rollout / scaling state machine, one pure function from observed state to the
//!   next step.
//! - [`status`]: `ChatCluster.status` and its conditions, computed from the same observations.
//!
//! Around it, the edges:
//!
//! - [`reconcile`]: the reconciler `kube::runtime::Controller` calls, with its finalizer;
//!   [`context`] is what reconciles share.
//! - [`pulsar`], [`keys`], [`gateway`]: the side effects outside Kubernetes, one small trait each
//!   (Pulsar admin REST, Redis, the gateways' admin API) with its real implementation.
//! - [`operator`]: the controller wiring, leader election and shutdown; [`http`] and [`metrics`]:
//!   the operator's own `/metrics`, `/healthz` and `/readyz`; [`monitoring`]: the gateways'
//!   PodMonitor (`spec.monitoring`), applied where the Prometheus Operator's CRD exists.
//!
//! A reconcile reads the cluster, builds [`observed`] values, applies [`builders`] output that
//! changed, executes the one [`rollout::Action`] that [`rollout::plan`] returns, and writes the
//! status from [`status::compute`]. The binary in `main.rs` is a thin command line over this
//! library.

// For the library only; the root Cargo.toml says why this is not in [workspace.lints].

pub mod admin_token;
pub mod builders;
pub mod context;
pub mod crd;
pub mod gateway;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod monitoring;
pub mod observed;
pub mod operator;
pub mod pulsar;
pub mod rebalance;
pub mod reconcile;
pub mod rollout;
pub mod secrets;
pub mod status;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The CRD could not be rendered as YAML.
    #[error("rendering the CRD as YAML: {0}")]
    CrdYaml(#[from] serde_saphyr::SerializeError),
    /// A ChatCluster lacks metadata every stored object has (objects are built from stored ones).
    #[error("the ChatCluster has no metadata.{0}")]
    MissingMetadata(&'static str),
    /// A Kubernetes API call failed.
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    /// The finalizer could not be added or removed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
    /// A Pulsar admin call failed.
    #[error("Pulsar admin {url}: {reason}")]
    Pulsar {
        /// The URL called.
        url: String,
        /// The status and body, or the transport error.
        reason: String,
    },
    /// A Redis command failed.
    #[error("Redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// The ChatCluster's Redis URL could not be found (its `urlSecretRef` Secret or key is missing).
    #[error("no Redis URL for ChatCluster {cluster}: the urlSecretRef Secret or key is missing")]
    RedisUrl {
        /// The ChatCluster.
        cluster: String,
    },
    /// A Secret key the ChatCluster names for the operator's own use is missing.
    #[error(
        "ChatCluster {cluster}: {field} names key {key:?} of Secret {secret:?}, which is missing"
    )]
    SecretMissing {
        /// The ChatCluster.
        cluster: String,
        /// The spec field naming it.
        field: String,
        /// The Secret.
        secret: String,
        /// The key.
        key: String,
    },
    /// A gateway's admin API call failed.
    #[error("gateway admin {url}: {reason}")]
    Gateway {
        /// The URL called.
        url: String,
        /// The status or transport error.
        reason: String,
    },
    /// A value did not serialize as JSON.
    #[error("JSON: {0}")]
    Json(#[from] serde_json::Error),
    /// The cleanup of a deleted ChatCluster waits for its gateway pods to stop. Not a failure: the
    /// reconcile is retried soon, without backoff.
    #[error("waiting for {pods} gateway pods to stop before deleting topics and Redis keys")]
    CleanupWaiting {
        /// Pods still there.
        pods: usize,
    },
    /// Leader election failed.
    #[error("leader election: {0}")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),
    /// The operator's HTTP listener failed.
    #[error("metrics listener: {0}")]
    Io(#[from] std::io::Error),
}

impl Error {
    /// A short label for the failure metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::CrdYaml(_) | Self::Json(_) => "serialization",
            Self::MissingMetadata(_) => "metadata",
            Self::Kube(_) => "kubernetes",
            Self::Finalizer(_) => "finalizer",
            Self::Pulsar { .. } => "pulsar",
            Self::SecretMissing { .. } => "secret",
            Self::Redis(_) | Self::RedisUrl { .. } => "redis",
            Self::Gateway { .. } => "gateway",
            Self::CleanupWaiting { .. } => "cleanup_waiting",
            Self::Lease(_) => "lease",
            Self::Io(_) => "io",
        }
    }
}

/// This crate's result, with [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;
