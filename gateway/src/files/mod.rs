//! Files (DESIGN §11): uploads, the SEND that carries one, downloads, signed URLs and the
//! unsent-upload sweep.
//!
//! An upload's bytes go to [`Blobs`] (the data dir, or an S3-compatible bucket) and its row to
//! the [`FileIndex`] on the store's database; a message stores only the file's id. Wherever a
//! message's envelope is made from the store (push, SYNC, catch-up), [`SigningStore`] puts a
//! fresh signed URL in its `file`. `http.rs` serves the endpoints.

mod blobs;
mod config;
pub mod http;
mod index;
mod signing;

use std::sync::Arc;
use std::time::Duration;

use chat_protocol::envelope::FileInfo;
use tokio_util::sync::CancellationToken;

pub use blobs::{Blobs, URL_TTL};
pub use config::{FileArgs, DEFAULT_MAX_FILE_BYTES, DEFAULT_UNSENT_FILE_SECONDS};
pub use index::{FileIndex, SqlFileIndex};
pub use signing::SigningStore;

use crate::config::ServeConfig;
use crate::error::{Error, Result};
use crate::model::now_ms;
use crate::store::{postgres::PgStore, sqlite::SqliteStore};

/// Uploads one sweep deletes at most; the next sweep takes the rest.
const SWEEP_BATCH: i64 = 500;
/// The longest time between two sweeps (shorter when unsent uploads live less than 4 times it).
const SWEEP_EVERY: Duration = Duration::from_secs(600);

/// An upload, as the file index has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// Its id: 32 lowercase hex chars ([`crate::model::new_id`]).
    pub id: String,
    /// The user who uploaded it: the only one who may send it.
    pub owner: String,
    /// The name it was uploaded with (`X-File-Name`).
    pub name: String,
    /// Its size in bytes.
    pub size: i64,
    /// Its media type (the upload's `Content-Type`).
    pub mime: String,
    /// When it was uploaded, in ms since the epoch.
    pub created_at: i64,
}

impl FileRecord {
    /// `file` of an envelope, before its URL is signed.
    pub fn info(&self) -> FileInfo {
        FileInfo {
            file_id: self.id.clone(),
            name: self.name.clone(),
            size: self.size,
            mime: self.mime.clone(),
            url: String::new(),
        }
    }

    /// Is it shown in place (image, audio, video) rather than downloaded?
    pub fn inline(&self) -> bool {
        ["image/", "audio/", "video/"]
            .iter()
            .any(|p| self.mime.starts_with(p))
    }

    /// `Content-Disposition` to serve it with: `attachment` except for images, audio and video,
    /// so a stored HTML or script file is never rendered on an origin.
    pub fn disposition(&self) -> String {
        let kind = if self.inline() {
            "inline"
        } else {
            "attachment"
        };
        format!("{kind}; filename*=UTF-8''{}", encode_rfc5987(&self.name))
    }
}

/// RFC 5987 `value-chars`: attr-chars as they are, every other byte percent-encoded.
fn encode_rfc5987(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The uploads: their index, their bytes, and the limits they live by.
pub struct Files {
    index: Arc<dyn FileIndex>,
    blobs: Blobs,
    max_bytes: u64,
    unsent_after: Duration,
}

impl Files {
    /// Assembles the uploads' parts.
    pub fn new(index: Arc<dyn FileIndex>, blobs: Blobs, args: &FileArgs) -> Self {
        Self {
            index,
            blobs,
            max_bytes: args.max_file_bytes,
            unsent_after: Duration::from_secs(args.unsent_file_seconds),
        }
    }

    /// The index on the config's database (PostgreSQL with `--database-url`, else the data dir's
    /// SQLite) and the config's object store; `secret` keys the local store's signed URLs.
    pub async fn from_config(config: &ServeConfig, secret: &str) -> Result<Self> {
        let blobs = Blobs::from_args(&config.files, &config.store.data_dir, secret)?;
        let index: Arc<dyn FileIndex> = match &config.store.database_url {
            Some(url) => Arc::new(SqlFileIndex(PgStore::side_pool(url).await?)),
            None => Arc::new(SqlFileIndex(SqliteStore::side_pool(&config.store.data_dir))),
        };
        Ok(Self::new(index, blobs, &config.files))
    }

    /// The largest upload accepted, in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Stores an upload of `owner`'s: the bytes first, then the row (a row always serves).
    pub async fn upload<S, E>(
        &self,
        owner: &str,
        name: String,
        mime: String,
        body: S,
    ) -> Result<FileRecord>
    where
        S: futures_util::Stream<Item = std::result::Result<bytes::Bytes, E>> + Unpin + Send,
        E: std::error::Error + Send + Sync + 'static,
    {
        let mut file = FileRecord {
            id: crate::model::new_id(),
            owner: owner.to_owned(),
            name,
            size: 0,
            mime,
            created_at: now_ms(),
        };
        file.size = self.blobs.put(&file, body, self.max_bytes).await?;
        if let Err(e) = self.index.insert(&file).await {
            let _ = self.blobs.delete(&file.id).await;
            return Err(e);
        }
        metrics::counter!("chat_files_uploaded_total").increment(1);
        Ok(file)
    }

    /// The file a SEND of `user`'s carries: its own upload (else 403), which exists (else 404).
    pub async fn attach(&self, user: &str, file_id: &str) -> Result<FileInfo> {
        match self.index.get(file_id).await? {
            None => Err(Error::NotFound(format!("no such file: {file_id}"))),
            Some(f) if f.owner != user => Err(Error::Forbidden(
                "a message may carry only its sender's own upload".into(),
            )),
            Some(f) => Ok(f.info()),
        }
    }

    /// The upload `id` if `user` may read it; else 404, whether or not it exists.
    pub async fn readable(&self, user: &str, id: &str) -> Result<FileRecord> {
        self.index
            .readable_by(id, user)
            .await?
            .ok_or_else(|| Error::NotFound("no such file".into()))
    }

    /// The upload `id` a signed URL names, if the signature holds and has not expired; else 404.
    pub async fn signed(&self, id: &str, expires: i64, sig: &str) -> Result<FileRecord> {
        if !self.blobs.verify(id, expires, sig, now_ms()) {
            return Err(Error::NotFound("no such file (or the link expired)".into()));
        }
        self.index
            .get(id)
            .await?
            .ok_or_else(|| Error::NotFound("no such file".into()))
    }

    /// The bytes of `file`, to stream.
    pub async fn open(&self, file: &FileRecord) -> Result<object_store::GetResult> {
        self.blobs.get(&file.id).await
    }

    /// Fills `file.url` with a URL good for [`URL_TTL`].
    pub async fn sign(&self, file: &mut FileInfo) -> Result<()> {
        file.url = self.blobs.url(&file.file_id, now_ms()).await?;
        Ok(())
    }

    /// Deletes an upload: its row first (from then on nobody is served it, and messages that
    /// carried it read back without it), then its bytes. For the sweep, retention and erasure.
    pub async fn delete(&self, id: &str) -> Result<()> {
        self.index.remove(id).await?;
        self.blobs.delete(id).await
    }

    /// Erasure: deletes every upload of `owner`; returns how many.
    pub async fn delete_owned(&self, owner: &str) -> Result<usize> {
        let owned = self.index.owned_by(owner).await?;
        for f in &owned {
            self.delete(&f.id).await?;
        }
        Ok(owned.len())
    }

    /// Deletes the uploads older than the unsent lifetime that no message carries; returns how
    /// many went.
    pub async fn sweep_unsent(&self) -> Result<usize> {
        self.sweep_unsent_before(now_ms() - self.unsent_after.as_millis() as i64)
            .await
    }

    /// Deletes uploads made before `before` (ms) that no message carries (any more: retention
    /// runs it after purging messages); returns how many went.
    pub async fn sweep_unsent_before(&self, before: i64) -> Result<usize> {
        let unsent = self.index.unsent_before(before, SWEEP_BATCH).await?;
        for f in &unsent {
            self.delete(&f.id).await?;
        }
        metrics::counter!("chat_files_swept_total").increment(unsent.len() as u64);
        Ok(unsent.len())
    }

    /// Sweeps unsent uploads periodically until `stop`.
    pub async fn run_sweeper(self: Arc<Self>, stop: CancellationToken) {
        let every = (self.unsent_after / 4).clamp(Duration::from_millis(200), SWEEP_EVERY);
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => match self.sweep_unsent().await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(files = n, "deleted unsent uploads"),
                    Err(e) => tracing::warn!(error = %e, "unsent-upload sweep failed; retrying"),
                },
                _ = stop.cancelled() => break,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, mime: &str) -> FileRecord {
        FileRecord {
            id: "f".into(),
            owner: "a".into(),
            name: name.into(),
            size: 1,
            mime: mime.into(),
            created_at: 0,
        }
    }

    #[test]
    fn only_media_is_served_inline() {
        assert_eq!(
            file("a b.png", "image/png").disposition(),
            "inline; filename*=UTF-8''a%20b.png"
        );
        assert_eq!(
            file("x.html", "text/html").disposition(),
            "attachment; filename*=UTF-8''x.html"
        );
        assert!(file("s", "audio/ogg").inline() && file("v", "video/mp4").inline());
        assert!(!file("p", "application/pdf").inline());
        assert_eq!(encode_rfc5987("é\"/"), "%C3%A9%22%2F");
    }
}
