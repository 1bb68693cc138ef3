//! SQLite store (embedded default): WAL mode, `synchronous=FULL`, one writer connection fed by a
//! bounded queue (group commit), a small pool of readers.

mod segment;
mod writer;

use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, SqliteConnection, SqlitePool};
use tokio::sync::{mpsc, oneshot};

use super::{Acked, Backlog, ConversationSummary, Group, NewMessage, Page, Sent, Store};
use crate::error::{Error, Result};
use crate::model::{StoredMessage, Target};
use writer::{writer_loop, Command};

/// Commands queued for the writer; past this, senders wait (backpressure instead of memory growth).
const WRITE_QUEUE: usize = 8192;
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");

pub struct SqliteStore {
    writer: mpsc::Sender<Command>,
    readers: SqlitePool,
}

fn options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: a committed transaction survives power loss, not only a process crash.
        .synchronous(SqliteSynchronous::Full)
        .busy_timeout(Duration::from_secs(10))
        // 64 MiB of page cache per connection (SQLite's default is 2 MiB): the hot indexes
        // (memberships, recent messages) stay in memory instead of being re-read with pread.
        .pragma("cache_size", "-65536")
        .foreign_keys(true)
}

impl SqliteStore {
    /// Opens (creating if needed) `<data_dir>/chat.db`, applies migrations and starts the writer.
    pub async fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Error::Internal(format!("creating {}: {e}", data_dir.display())))?;
        let path = data_dir.join("chat.db");
        let mut conn = SqliteConnection::connect_with(&options(&path)).await?;
        MIGRATOR.run(&mut conn).await?;
        let readers = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options(&path).read_only(true))
            .await?;
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        // The writer gets a thread and runtime of its own: each statement is a round trip to
        // sqlx's SQLite worker thread, and queueing behind hundreds of session tasks on the shared
        // runtime for every one of them would cap throughput.
        std::thread::Builder::new()
            .name("chat-store-writer".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("writer runtime");
                rt.block_on(writer_loop(conn, rx));
            })
            .map_err(|e| Error::Internal(format!("starting the store writer: {e}")))?;
        Ok(Self {
            writer: tx,
            readers,
        })
    }

    /// Applies migrations and returns (the `migrate` command).
    pub async fn migrate(data_dir: &Path) -> Result<()> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Error::Internal(format!("creating {}: {e}", data_dir.display())))?;
        let mut conn = SqliteConnection::connect_with(&options(&data_dir.join("chat.db"))).await?;
        MIGRATOR.run(&mut conn).await?;
        Ok(())
    }

    async fn call<T>(&self, make: impl FnOnce(oneshot::Sender<Result<T>>) -> Command) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        self.writer
            .send(make(tx))
            .await
            .map_err(|_| Error::Unavailable("store write failed; try again".into()))?;
        rx.await
            .map_err(|_| Error::Unavailable("store write failed; try again".into()))?
    }
}

pub(super) type Row = (
    String,
    i64,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    String,
    i64,
    Option<String>,
    String,
    i64,
);

/// The same columns qualified with the `m` alias, for joins.
pub(super) const MESSAGE_COLUMNS_M: &str = "m.conversation_id, m.seq, m.message_id, m.sender, m.sender_name, m.recipient, m.recipient_name, m.group_id, m.body, m.file_type, m.client_msg_id, m.request_id, m.created_at";
pub(super) const MESSAGE_COLUMNS: &str = "conversation_id, seq, message_id, sender, sender_name, recipient, recipient_name, group_id, body, file_type, client_msg_id, request_id, created_at";

pub(super) fn from_row(r: Row) -> StoredMessage {
    let (
        conversation_id,
        seq,
        message_id,
        from,
        from_name,
        recipient,
        recipient_name,
        group_id,
        body,
        file_type,
        client_msg_id,
        request_id,
        created_at,
    ) = r;
    let target = match group_id {
        Some(group_id) => Target::Group { group_id },
        None => {
            let to = recipient.unwrap_or_default();
            Target::Direct {
                to_name: recipient_name.unwrap_or_else(|| to.clone()),
                to,
            }
        }
    };
    StoredMessage {
        message_id,
        conversation_id,
        seq,
        from,
        from_name,
        target,
        body,
        file_type,
        client_msg_id,
        created_at,
        request_id,
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn upsert_user(&self, id: &str, name: &str) -> Result<()> {
        self.call(|reply| Command::UpsertUser {
            id: id.to_owned(),
            name: name.to_owned(),
            reply,
        })
        .await
    }

    async fn send_direct(&self, msg: NewMessage) -> Result<Sent> {
        self.call(|reply| Command::Send {
            msg,
            group: false,
            reply,
        })
        .await
    }

    async fn send_group(&self, msg: NewMessage) -> Result<Sent> {
        self.call(|reply| Command::Send {
            msg,
            group: true,
            reply,
        })
        .await
    }

    async fn ack(&self, user: &str, message_id: &str) -> Result<Acked> {
        self.call(|reply| Command::Ack {
            user: user.to_owned(),
            message_id: message_id.to_owned(),
            reply,
        })
        .await
    }

    async fn create_group(&self, owner: &str, name: &str, members: &[String]) -> Result<Group> {
        self.call(|reply| Command::CreateGroup {
            owner: owner.to_owned(),
            name: name.to_owned(),
            members: members.to_vec(),
            reply,
        })
        .await
    }

    async fn add_members(&self, user: &str, group_id: &str, members: &[String]) -> Result<Group> {
        self.call(|reply| Command::AddMembers {
            user: user.to_owned(),
            group_id: group_id.to_owned(),
            members: members.to_vec(),
            reply,
        })
        .await
    }

    async fn leave_group(&self, user: &str, group_id: &str) -> Result<()> {
        self.call(|reply| Command::LeaveGroup {
            user: user.to_owned(),
            group_id: group_id.to_owned(),
            reply,
        })
        .await
    }

    async fn read(
        &self,
        user: &str,
        conversation_id: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Page> {
        let mut conn = self.readers.acquire().await?;
        let joined: Option<(i64, i64)> = sqlx::query_as(
            "SELECT joined_seq, active FROM memberships WHERE user_id = ? AND conversation_id = ?",
        )
        .bind(user)
        .bind(conversation_id)
        .fetch_optional(&mut *conn)
        .await?;
        let joined = match joined {
            Some((joined, 1)) => joined,
            _ => {
                return Err(Error::Forbidden(
                    "not a participant of this conversation".into(),
                ))
            }
        };
        let rows: Vec<Row> = sqlx::query_as(&format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? AND seq > ? ORDER BY seq LIMIT ?"))
            .bind(conversation_id)
            .bind(after_seq.max(joined))
            .bind(limit as i64 + 1)
            .fetch_all(&mut *conn)
            .await?;
        let has_more = rows.len() > limit as usize;
        Ok(Page {
            messages: rows
                .into_iter()
                .take(limit as usize)
                .map(from_row)
                .collect(),
            has_more,
        })
    }

    async fn conversations(&self, user: &str) -> Result<Vec<ConversationSummary>> {
        let rows: Vec<(
            String,
            i64,
            i64,
            i64,
            String,
            Option<String>,
            Option<String>,
        )> = sqlx::query_as(
            "SELECT c.id, c.last_seq, m.acked_seq, m.joined_seq, c.kind, g.id, g.name
             FROM memberships m JOIN conversations c ON c.id = m.conversation_id
             LEFT JOIN groups g ON g.conversation_id = c.id
             WHERE m.user_id = ? AND m.active = 1 ORDER BY c.id",
        )
        .bind(user)
        .fetch_all(&self.readers)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (conversation_id, last_seq, acked, joined, kind, group_id, name) in rows {
            let peer = if kind == "direct" {
                let members: Vec<(String,)> = sqlx::query_as("SELECT user_id FROM memberships WHERE conversation_id = ? AND user_id <> ? LIMIT 1")
                    .bind(&conversation_id)
                    .bind(user)
                    .fetch_all(&self.readers)
                    .await?;
                Some(
                    members
                        .into_iter()
                        .next()
                        .map(|(u,)| u)
                        .unwrap_or_else(|| user.to_owned()),
                )
            } else {
                None
            };
            out.push(ConversationSummary {
                conversation_id,
                last_seq,
                acked_seq: acked.max(joined),
                kind,
                peer,
                group_id,
                name,
            });
        }
        Ok(out)
    }

    async fn backlog(&self, user: &str) -> Result<Vec<Backlog>> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT c.id, MAX(m.acked_seq, m.joined_seq), c.last_seq
             FROM memberships m JOIN conversations c ON c.id = m.conversation_id
             WHERE m.user_id = ? AND m.active = 1 AND c.last_seq > MAX(m.acked_seq, m.joined_seq) ORDER BY c.id",
        )
        .bind(user)
        .fetch_all(&self.readers)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(conversation_id, after_seq, last_seq)| Backlog {
                conversation_id,
                after_seq,
                last_seq,
            })
            .collect())
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.readers).await?;
        if self.writer.is_closed() {
            return Err(Error::Unavailable("store writer stopped".into()));
        }
        Ok(())
    }
}
