//! [`Blobs`]: where an upload's bytes are, behind `object_store`'s one trait: the data dir
//! (embedded) or an S3-compatible bucket (cluster), and how each signs a URL that needs no header.
//! Objects are named by the file's id, under the configured prefix.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use hmac::{Hmac, Mac};
use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::signer::Signer;
use object_store::{
    Attribute, Attributes, GetResult, ObjectStore, PutMultipartOptions, WriteMultipart,
};
use sha2::Sha256;

use super::config::FileArgs;
use super::FileRecord;
use crate::error::{Error, Result};

/// How long a signed URL serves: twice the hour the protocol promises, so a URL handed out in a
/// push that waited for its retry, or read from a page a while ago, still loads.
pub const URL_TTL: Duration = Duration::from_secs(2 * 3600);
/// Parts of a multipart upload being sent at once: bounds an upload's memory to this many
/// 5 MiB parts, whatever its size.
const PARTS_IN_FLIGHT: usize = 2;

/// The object store of the uploads.
pub enum Blobs {
    /// Files under the data dir; URLs are the gateway's own `/files/{id}`, signed with HMAC.
    Local {
        /// The directory, as an object store.
        store: Arc<LocalFileSystem>,
        /// The URLs' HMAC-SHA256 key, derived from the token secret (every pod has it).
        key: Vec<u8>,
        /// What URLs start with: the public URL, or empty (relative URLs).
        base: String,
    },
    /// An S3-compatible bucket; URLs are presigned (SigV4 query string).
    S3 {
        /// The bucket.
        store: Arc<AmazonS3>,
        /// The objects' prefix inside it (may be empty).
        prefix: String,
    },
}

impl Blobs {
    /// The store `args` name: S3 with `--object-store-url`, else `<data_dir>/files`.
    pub fn from_args(args: &FileArgs, data_dir: &std::path::Path, secret: &str) -> Result<Self> {
        match &args.object_store_url {
            Some(url) => Self::s3(args, url),
            None => {
                let dir = data_dir.join("files");
                std::fs::create_dir_all(&dir)
                    .map_err(|e| Error::internal(format!("creating {}", dir.display()), e))?;
                let store = LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| Error::internal("opening the file directory", e))?;
                let mut mac = <Hmac<Sha256>>::new_from_slice(secret.as_bytes())
                    .expect("HMAC takes a key of any length");
                mac.update(b"chatcluster file URLs");
                Ok(Blobs::Local {
                    store: Arc::new(store),
                    key: mac.finalize().into_bytes().to_vec(),
                    base: args
                        .public_url
                        .as_deref()
                        .unwrap_or("")
                        .trim_end_matches('/')
                        .to_owned(),
                })
            }
        }
    }

    fn s3(args: &FileArgs, url: &str) -> Result<Self> {
        let (bucket, prefix) = parse_s3_url(url)?;
        let mut builder = AmazonS3Builder::from_env()
            .with_bucket_name(bucket)
            .with_region(&args.object_store_region);
        if let Some(endpoint) = &args.object_store_endpoint {
            builder = builder
                .with_endpoint(endpoint)
                .with_allow_http(endpoint.starts_with("http://"));
        }
        if let Some(id) = &args.object_store_access_key_id {
            builder = builder.with_access_key_id(id);
        }
        if let Some(secret) = &args.object_store_secret_access_key {
            builder = builder.with_secret_access_key(secret);
        }
        let store = builder
            .build()
            .map_err(|e| Error::BadRequest(format!("--object-store-url {url}: {e}")))?;
        Ok(Blobs::S3 {
            store: Arc::new(store),
            prefix,
        })
    }

    fn store(&self) -> &dyn ObjectStore {
        match self {
            Blobs::Local { store, .. } => store.as_ref(),
            Blobs::S3 { store, .. } => store.as_ref(),
        }
    }

    fn path(&self, id: &str) -> ObjectPath {
        match self {
            Blobs::S3 { prefix, .. } if !prefix.is_empty() => {
                ObjectPath::from(format!("{prefix}/{id}"))
            }
            _ => ObjectPath::from(id),
        }
    }

    /// Streams `body` into the object of `file` (named by its id, typed by its mime), refusing
    /// it with 413 as soon as it passes `max` bytes (the partial object is aborted). Returns
    /// the size stored.
    pub async fn put<S, E>(&self, file: &FileRecord, mut body: S, max: u64) -> Result<i64>
    where
        S: Stream<Item = std::result::Result<Bytes, E>> + Unpin + Send,
        E: std::error::Error + Send + Sync + 'static,
    {
        let mut attributes = Attributes::new();
        if let Blobs::S3 { .. } = self {
            // S3 serves presigned downloads with these (the local store serves its own headers).
            attributes.insert(Attribute::ContentType, file.mime.clone().into());
            attributes.insert(Attribute::ContentDisposition, file.disposition().into());
        }
        let opts = PutMultipartOptions {
            attributes,
            ..Default::default()
        };
        let path = self.path(&file.id);
        let upload = self
            .store()
            .put_multipart_opts(&path, opts)
            .await
            .map_err(|e| Error::unavailable("object store", e))?;
        let mut writer = WriteMultipart::new(upload);
        let mut size: u64 = 0;
        while let Some(chunk) = body.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    let _ = writer.abort().await;
                    return Err(Error::BadRequest(format!("reading the upload: {e}")));
                }
            };
            size += chunk.len() as u64;
            if size > max {
                let _ = writer.abort().await;
                return Err(too_large(max));
            }
            writer
                .wait_for_capacity(PARTS_IN_FLIGHT)
                .await
                .map_err(|e| Error::unavailable("object store", e))?;
            writer.put(chunk);
        }
        writer
            .finish()
            .await
            .map_err(|e| Error::unavailable("object store", e))?;
        Ok(size as i64)
    }

    /// The object of `id`, to stream out. Gone: 404.
    pub async fn get(&self, id: &str) -> Result<GetResult> {
        self.store().get(&self.path(id)).await.map_err(|e| match e {
            object_store::Error::NotFound { .. } => Error::NotFound("no such file".into()),
            e => Error::unavailable("object store", e),
        })
    }

    /// Deletes the object of `id`; one that is gone already is fine.
    pub async fn delete(&self, id: &str) -> Result<()> {
        match self.store().delete(&self.path(id)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(Error::unavailable("object store", e)),
        }
    }

    /// A URL that serves `id`'s bytes without any header until `URL_TTL` from `now_ms`.
    pub async fn url(&self, id: &str, now_ms: i64) -> Result<String> {
        match self {
            Blobs::Local { key, base, .. } => {
                let expires = now_ms / 1000 + URL_TTL.as_secs() as i64;
                let sig = signature(key, id, expires);
                Ok(format!("{base}/files/{id}?expires={expires}&sig={sig}"))
            }
            Blobs::S3 { store, .. } => {
                let url = store
                    .signed_url(reqwest::Method::GET, &self.path(id), URL_TTL)
                    .await
                    .map_err(|e| Error::internal("presigning a file URL", e))?;
                Ok(url.to_string())
            }
        }
    }

    /// Does `sig` sign `id` until `expires` (unix seconds), and is that still ahead of `now_ms`?
    /// Only the local store signs its own URLs; S3 checks its own.
    pub fn verify(&self, id: &str, expires: i64, sig: &str, now_ms: i64) -> bool {
        let Blobs::Local { key, .. } = self else {
            return false;
        };
        let Ok(sig) = hex::decode(sig) else {
            return false;
        };
        let mut mac = <Hmac<Sha256>>::new_from_slice(key).expect("any key length");
        mac.update(format!("{id}\n{expires}").as_bytes());
        expires * 1000 > now_ms && mac.verify_slice(&sig).is_ok()
    }
}

/// 413 with the limit in it.
pub(super) fn too_large(max: u64) -> Error {
    Error::TooLarge(format!(
        "file larger than the limit of {max} bytes (--max-file-bytes)"
    ))
}

fn signature(key: &[u8], id: &str, expires: i64) -> String {
    let mut mac = <Hmac<Sha256>>::new_from_slice(key).expect("any key length");
    mac.update(format!("{id}\n{expires}").as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

/// `s3://bucket/prefix` → (bucket, prefix without surrounding slashes).
fn parse_s3_url(url: &str) -> Result<(String, String)> {
    let rest = url.strip_prefix("s3://").ok_or_else(|| {
        Error::BadRequest(format!(
            "--object-store-url must look like s3://bucket/prefix, not {url}"
        ))
    })?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(Error::BadRequest(format!(
            "--object-store-url {url} names no bucket"
        )));
    }
    Ok((bucket.to_owned(), prefix.trim_matches('/').to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_give_bucket_and_prefix() {
        let parsed = |u: &str| parse_s3_url(u).unwrap();
        assert_eq!(parsed("s3://b/p/q/"), ("b".into(), "p/q".into()));
        assert_eq!(parsed("s3://b"), ("b".into(), String::new()));
        assert!(parse_s3_url("https://b/p").is_err());
        assert!(parse_s3_url("s3:///p").is_err());
    }

    #[test]
    fn local_urls_verify_until_they_expire_and_only_for_their_file() {
        let dir = std::env::temp_dir().join(format!("blobs-{}", crate::model::new_id()));
        let args = <FileArgsParser as clap::Parser>::parse_from(["t"]).files;
        let blobs = Blobs::from_args(&args, &dir, "secret").unwrap();
        let now = 1_000_000_000_000;
        let url = tokio_test_block_on(blobs.url("f1", now)).unwrap();
        let query = url.split_once('?').unwrap().1;
        let (e, s) = query.split_once('&').unwrap();
        let expires: i64 = e.strip_prefix("expires=").unwrap().parse().unwrap();
        let sig = s.strip_prefix("sig=").unwrap();
        assert!(url.starts_with("/files/f1?"), "{url}");
        assert!(
            expires * 1000 - now >= 3_600_000,
            "good for at least an hour"
        );
        assert!(blobs.verify("f1", expires, sig, now));
        assert!(!blobs.verify("f2", expires, sig, now), "another file");
        assert!(!blobs.verify("f1", expires + 1, sig, now), "another expiry");
        assert!(!blobs.verify("f1", expires, sig, expires * 1000), "expired");
        assert!(!blobs.verify("f1", expires, "zz", now), "not hex");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[derive(clap::Parser)]
    struct FileArgsParser {
        #[command(flatten)]
        files: FileArgs,
    }

    fn tokio_test_block_on<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }
}
