//! Uploads: the size limit of `POST /api/files` and the S3-compatible store that keeps them.

use kube::KubeSchema;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::SecretKeyRef;

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
