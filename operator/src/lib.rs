//! `chat-operator`: the Kubernetes side of chatcluster.
//!
//! The crate is a pure core with the Kubernetes I/O around it (STYLE: "pure core, async edges"):
//!
//! - [`crd`]: the `ChatCluster` resource types and the CRD generated from them.
//! - [`builders`]: a ChatCluster turned into the objects that run it (ConfigMap, Services,
//!   StatefulSet, PodDisruptionBudget, Ingress) and the names derived from it (pods, topics,
//!   admin URLs).
//! - [`observed`]: the live StatefulSet, pods and gateway `/admin/status` answers, reduced to the
//!   facts the decisions need.
//! - [`rollout`]: the rollout / scaling state machine, one pure function from observed state to the
//!   next step.
//! - [`status`]: `ChatCluster.status` and its conditions, computed from the same observations.
//!
//! A reconcile reads the cluster, builds [`observed`] values, applies [`builders`] output that
//! changed, executes the one [`rollout::Action`] that [`rollout::plan`] returns, and writes the
//! status from [`status::compute`]. The binary in `main.rs` is a thin command line over this
//! library.

pub mod builders;
pub mod crd;
pub mod observed;
pub mod rollout;
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
}

/// This crate's result, with [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;
