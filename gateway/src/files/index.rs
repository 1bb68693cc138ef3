//! [`FileIndex`]: the uploads' rows (`files`), beside the messages that carry them, on the
//! store's database. One text per statement for both backends, over a small pool of its own
//! (`side_pool`): nothing here touches the message hot path.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Type};

use super::FileRecord;
use crate::error::Result;

/// The uploads' rows. Its contract: a row exists only while its object does (rows are written
/// after the object, deleted before it), so a row always serves.
#[async_trait]
pub trait FileIndex: Send + Sync + 'static {
    /// Records an upload whose bytes are stored.
    async fn insert(&self, file: &FileRecord) -> Result<()>;

    /// The upload `id`, whoever uploaded it.
    async fn get(&self, id: &str) -> Result<Option<FileRecord>>;

    /// The upload `id` if `user` may read it: its uploader, or a participant of a conversation
    /// a message carrying it was sent in (and not recalled).
    async fn readable_by(&self, id: &str, user: &str) -> Result<Option<FileRecord>>;

    /// Up to `limit` uploads made before `created_before` (ms) that no message carries, oldest
    /// first.
    async fn unsent_before(&self, created_before: i64, limit: i64) -> Result<Vec<FileRecord>>;

    /// The uploads of `owner` (erasure).
    async fn owned_by(&self, owner: &str) -> Result<Vec<FileRecord>>;

    /// Forgets the upload `id` (no error if it is gone already). Messages that carried it keep
    /// the id, and read back without a file.
    async fn remove(&self, id: &str) -> Result<()>;
}

/// [`FileIndex`] over a sqlx pool: SQLite's or PostgreSQL's.
pub struct SqlFileIndex<DB: Database>(pub Pool<DB>);

/// A row: id, owner, name, size, mime, created at.
type Row = (String, String, String, i64, String, i64);

const COLUMNS: &str = "f.id, f.owner, f.name, f.size, f.mime, f.created_at";

fn record((id, owner, name, size, mime, created_at): Row) -> FileRecord {
    FileRecord {
        id,
        owner,
        name,
        size,
        mime,
        created_at,
    }
}

#[async_trait]
impl<DB> FileIndex for SqlFileIndex<DB>
where
    DB: Database,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn insert(&self, f: &FileRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO files (id, owner, name, size, mime, created_at) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(f.id.as_str())
        .bind(f.owner.as_str())
        .bind(f.name.as_str())
        .bind(f.size)
        .bind(f.mime.as_str())
        .bind(f.created_at)
        .execute(&self.0)
        .await?;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<FileRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM files f WHERE f.id = $1");
        let row: Option<Row> = sqlx::query_as(&sql)
            .bind(id)
            .fetch_optional(&self.0)
            .await?;
        Ok(row.map(record))
    }

    async fn readable_by(&self, id: &str, user: &str) -> Result<Option<FileRecord>> {
        // Participants of the conversation, former group members included for what they saw:
        // messages after their join point and up to the event that ended the membership.
        let sql = format!(
            "SELECT {COLUMNS} FROM files f WHERE f.id = $1 AND (f.owner = $2 OR EXISTS (
                 SELECT 1 FROM messages m JOIN memberships ms
                   ON ms.conversation_id = m.conversation_id AND ms.user_id = $2
                 WHERE m.file_id = f.id AND m.seq > ms.joined_seq AND m.recalled_at IS NULL
                   AND (ms.active = 1 OR m.seq <= ms.left_seq)))"
        );
        let row: Option<Row> = sqlx::query_as(&sql)
            .bind(id)
            .bind(user)
            .fetch_optional(&self.0)
            .await?;
        Ok(row.map(record))
    }

    async fn unsent_before(&self, created_before: i64, limit: i64) -> Result<Vec<FileRecord>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM files f WHERE f.created_at < $1
               AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.file_id = f.id)
             ORDER BY f.created_at LIMIT $2"
        );
        let rows: Vec<Row> = sqlx::query_as(&sql)
            .bind(created_before)
            .bind(limit)
            .fetch_all(&self.0)
            .await?;
        Ok(rows.into_iter().map(record).collect())
    }

    async fn owned_by(&self, owner: &str) -> Result<Vec<FileRecord>> {
        let sql = format!("SELECT {COLUMNS} FROM files f WHERE f.owner = $1");
        let rows: Vec<Row> = sqlx::query_as(&sql).bind(owner).fetch_all(&self.0).await?;
        Ok(rows.into_iter().map(record).collect())
    }

    async fn remove(&self, id: &str) -> Result<()> {
        sqlx::query("DELETE FROM files WHERE id = $1")
            .bind(id)
            .execute(&self.0)
            .await?;
        Ok(())
    }
}
