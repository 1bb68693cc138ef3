//! `chat-operator`: the Kubernetes side of chatcluster.
//!
//! [`crd`] owns the `ChatCluster` resource types and the CRD generated from them. The binary in
//! `main.rs` is a thin command line over this library.

pub mod crd;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The CRD could not be rendered as YAML.
    #[error("rendering the CRD as YAML: {0}")]
    CrdYaml(#[from] serde_saphyr::SerializeError),
}

/// This crate's result, with [`Error`] by default.
pub type Result<T, E = Error> = std::result::Result<T, E>;
