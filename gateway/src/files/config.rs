//! `serve`'s file flags: the size limit, where the bytes go (the data dir, or S3 with
//! `--object-store-url`), how signed URLs are addressed, and when unsent uploads go.

use clap::Args;

/// `--max-file-bytes`' default: 20 MiB, a phone photo or a short video clip.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 20 * 1024 * 1024;
/// `--unsent-file-seconds`' default: an upload no message carries after 24 h is deleted.
pub const DEFAULT_UNSENT_FILE_SECONDS: u64 = 24 * 3600;

/// Uploads (`POST /api/files`), their storage and their signed URLs.
#[derive(Debug, Clone, Args)]
pub struct FileArgs {
    /// Largest upload accepted, in bytes; a larger one gets HTTP 413 (checked while it streams in).
    #[arg(long, env = "CHAT_MAX_FILE_BYTES", default_value_t = DEFAULT_MAX_FILE_BYTES, value_parser = clap::value_parser!(u64).range(1..=(5u64 << 30)))]
    pub max_file_bytes: u64,

    /// S3-compatible object store for uploads, `s3://bucket/prefix` (cluster mode); without it files are kept under the data dir.
    #[arg(long, env = "CHAT_OBJECT_STORE_URL")]
    pub object_store_url: Option<String>,

    /// Endpoint of a non-AWS S3-compatible store (MinIO, Ceph, …), e.g. `https://minio.example:9000`; it must be reachable by clients too: presigned URLs point there.
    #[arg(long, env = "CHAT_OBJECT_STORE_ENDPOINT")]
    pub object_store_endpoint: Option<String>,

    /// Region of the object store (signing needs one; most S3-compatible stores accept the default).
    #[arg(long, env = "CHAT_OBJECT_STORE_REGION", default_value = "us-east-1")]
    pub object_store_region: String,

    /// Access key id of the object store; without it the standard AWS variables and instance credentials are used.
    #[arg(long, env = "CHAT_OBJECT_STORE_ACCESS_KEY_ID", hide_env_values = true)]
    pub object_store_access_key_id: Option<String>,

    /// Secret access key of the object store (use the variable, from a Secret, not the flag).
    #[arg(
        long,
        env = "CHAT_OBJECT_STORE_SECRET_ACCESS_KEY",
        hide_env_values = true
    )]
    pub object_store_secret_access_key: Option<String>,

    /// Public base URL of the gateway (`https://chat.example.com`) for the signed file URLs of the embedded store; without it they are relative (`/files/…`).
    #[arg(long, env = "CHAT_PUBLIC_URL")]
    pub public_url: Option<String>,

    /// Age in seconds after which an upload that no message carries is deleted.
    #[arg(long, env = "CHAT_UNSENT_FILE_SECONDS", default_value_t = DEFAULT_UNSENT_FILE_SECONDS, value_parser = clap::value_parser!(u64).range(1..))]
    pub unsent_file_seconds: u64,
}
