//! SQLite store (embedded default): one file in the data dir, WAL mode, `synchronous=FULL`, the
//! process's writer as its only writing connection, a small pool of readers.
//!
//! Its [`Backend`]: the writer calls SQLite in place on its own thread ([`writer`]); the readers
//! are an sqlx pool running the shared statements.

mod manage;
mod writer;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Pool, Sqlite, SqliteConnection};

use super::backend::Backend;
use super::plan::{AckPosition, AckTarget, AckWrites};
use super::sql::Shared;
use super::{Backlog, ConversationSummary, Page, Position, SqlStore};
use crate::error::{Error, Result};
use crate::model::StoredMessage;
pub use writer::SqliteWriter;

/// The embedded store: one SQLite file in the data dir, written by this process alone.
pub type SqliteStore = SqlStore<Sqlite>;

/// Reader connections: reads are short, and SQLite serves them beside the writer (WAL).
const READERS: u32 = 4;
/// How often the checkpointer moves committed WAL frames into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

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
        // Statement journals (multi-row statements inside the batch transaction) in memory, not
        // in temporary files.
        .pragma("temp_store", "memory")
        .foreign_keys(true)
}

/// The embedded migrations, ignoring applied versions they do not know: during a rollout an old
/// pod may restart after a newer pod applied a newer migration. Migrations stay backward
/// compatible, so the old pod runs on the newer schema instead of refusing to start.
fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("../migrations/sqlite");
    migrator.set_ignore_missing(true);
    migrator
}

impl SqlStore<Sqlite> {
    /// Opens (creating if needed) `<data_dir>/chat.db`, applies migrations and starts the writer,
    /// with the [`DEFAULT_COMMIT_INTERVAL`].
    pub async fn open(data_dir: &Path) -> Result<Self> {
        Self::open_with(data_dir, DEFAULT_COMMIT_INTERVAL).await
    }

    /// [`SqlStore::open`] with the writer's transactions at least `commit_interval` apart.
    pub async fn open_with(data_dir: &Path, commit_interval: Duration) -> Result<Self> {
        Self::migrate(data_dir).await?;
        let path = data_dir.join("chat.db");
        let readers = SqlitePoolOptions::new()
            .max_connections(READERS)
            .connect_with(options(&path).read_only(true))
            .await?;
        // Checkpoints run on a connection of their own, not inline in the writer's commits: SQLite's
        // automatic checkpoint (every 1000 WAL pages) would stall the writer, and every message
        // waiting on it, for the time it takes to copy pages and fsync the database file.
        let checkpointer = SqliteConnection::connect_with(&options(&path)).await?;
        tokio::spawn(checkpoint_loop(checkpointer));
        Self::start(path, commit_interval, readers)
    }

    /// A small writable pool on the same database, for tables outside the message hot path (the
    /// file index): their rare writes take SQLite's write lock for a moment beside the writer,
    /// which waits for it (busy timeout) as it waits for a checkpoint. It connects on first use,
    /// to a database [`SqliteStore::open`] has migrated.
    pub fn side_pool(data_dir: &Path) -> Pool<Sqlite> {
        SqlitePoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(options(&data_dir.join("chat.db")))
    }

    /// Applies migrations and returns (the `migrate` command).
    pub async fn migrate(data_dir: &Path) -> Result<()> {
        std::fs::create_dir_all(data_dir).map_err(|e| Error::InternalFrom {
            context: format!("creating {}", data_dir.display()),
            source: e.into(),
        })?;
        let mut conn = SqliteConnection::connect_with(&options(&data_dir.join("chat.db"))).await?;
        migrator().run(&mut conn).await?;
        conn.close().await?;
        Ok(())
    }
}

/// A small pool of writing connections on the store's file for what is kept beside the messages
/// and written outside the writer (the webhook's pending deliveries): each waits for the writer's
/// transaction through the busy timeout, as the writer waits for it. Migrations have run.
pub async fn side_pool(data_dir: &Path) -> Result<Pool<Sqlite>> {
    Ok(SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options(&data_dir.join("chat.db")))
        .await?)
}

/// PASSIVE checkpoints never block the writer or readers; they copy whatever frames no reader
/// still needs. But the WAL is reused from its start only once a checkpoint has caught up with
/// the writer, and under steady writes a PASSIVE one never does — the writer appends while it
/// copies. The WAL then grew without end (1 GB in 12 s at 5,000 msg/s) and every commit got
/// slower with it. So once the WAL holds more than [`WAL_RESTART_FRAMES`], a RESTART checkpoint
/// waits for the writer's current transaction, holds the next one back while it copies what the
/// PASSIVE ones left (little: they copied the rest) and lets the writer start the WAL over.
async fn checkpoint_loop(mut conn: SqliteConnection) {
    let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = checkpoint(&mut conn).await {
            tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
        }
    }
}

/// The default of `--store-commit-interval-ms` on SQLite: the least time between the starts of
/// two of the writer's transactions. Each transaction writes every page it touched to the WAL
/// (the messages table, its indexes, conversations, memberships: 4 KiB each, checksummed) and
/// fsyncs it, whatever its size; started back to back, at 5,000 msg/s most carried one command,
/// and the writer thread took half the gateway's CPU. 1 ms (tokio's timer tick) gathers a few
/// each: CPU per message 0.80× at 5,000 msg/s, p50 send → deliver +1.5 ms, p99 unchanged; no
/// change at saturation, where a transaction takes longer than that anyway (docs/benchmarks.md).
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_millis(1);

/// WAL frames (pages) past which the checkpointer makes the writer start the WAL over: 16 MiB.
const WAL_RESTART_FRAMES: i64 = 4096;

/// One PASSIVE checkpoint, and a RESTART one when the WAL has grown past its bound.
async fn checkpoint(conn: &mut SqliteConnection) -> sqlx::Result<()> {
    // (busy, frames in the WAL, frames checkpointed)
    let (_, frames, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
        .fetch_one(&mut *conn)
        .await?;
    if frames > WAL_RESTART_FRAMES {
        sqlx::query("PRAGMA wal_checkpoint(RESTART)")
            .execute(&mut *conn)
            .await?;
    }
    Ok(())
}

/// The statements SQLite runs as PostgreSQL does.
type Statements = Shared<Sqlite>;

#[async_trait]
impl Backend for Sqlite {
    // IMMEDIATE takes the write lock at BEGIN; the writer is the only one, so it never waits.
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
    const NAMES_TTL: Option<Duration> = None;

    /// The only writer never conflicts with another.
    fn retryable(_: &Error) -> bool {
        false
    }

    type Writer = SqliteWriter;
    type WriterOptions = PathBuf;

    /// Blocks the writer's thread while it opens the file: the thread is the writer's alone.
    async fn connect_writer(path: &PathBuf) -> Result<SqliteWriter> {
        writer::open(path)
    }

    async fn execute(conn: &mut SqliteWriter, sql: &str) -> Result<()> {
        conn.execute(sql)
    }

    async fn look_up(
        conn: &mut SqliteWriter,
        keys: &[(&str, &str)],
        acks: &[(&str, &str)],
    ) -> Result<(Vec<StoredMessage>, Vec<AckTarget>)> {
        conn.look_up(keys, acks)
    }

    async fn find_groups(conn: &mut SqliteWriter, ids: &[&str]) -> Result<Vec<(String, String)>> {
        conn.find_groups(ids)
    }

    async fn active_members(
        conn: &mut SqliteWriter,
        conversations: &[&str],
    ) -> Result<Vec<(String, String)>> {
        conn.active_members(conversations)
    }

    async fn blocked_pairs(
        conn: &mut SqliteWriter,
        pairs: &[(&str, &str)],
    ) -> Result<Vec<(String, String)>> {
        conn.blocked_pairs(pairs)
    }

    async fn set_block(
        conn: &mut SqliteWriter,
        blocker: &str,
        blocked: &str,
        on: bool,
        now: i64,
    ) -> Result<bool> {
        conn.set_block(blocker, blocked, on, now)
    }

    async fn names(conn: &mut SqliteWriter, ids: &[&str]) -> Result<Vec<(String, String, bool)>> {
        conn.names(ids)
    }

    async fn create_direct(
        conn: &mut SqliteWriter,
        conversations: &BTreeMap<&str, (&str, &str)>,
        now: i64,
    ) -> Result<()> {
        conn.create_direct(conversations, now)
    }

    async fn allocate(
        conn: &mut SqliteWriter,
        counts: &BTreeMap<&str, i64>,
    ) -> Result<Vec<(String, i64)>> {
        conn.allocate(counts)
    }

    /// Inserts only: the only writer has nothing to lock.
    async fn insert_and_lock(
        conn: &mut SqliteWriter,
        messages: &[&StoredMessage],
        _pairs: &[(&str, &str)],
    ) -> Result<()> {
        conn.insert_messages(messages)
    }

    async fn positions(
        conn: &mut SqliteWriter,
        pairs: &[(&str, &str)],
    ) -> Result<Vec<AckPosition>> {
        conn.positions(pairs)
    }

    async fn settle(conn: &mut SqliteWriter, writes: &AckWrites) -> Result<()> {
        conn.settle(writes)
    }

    async fn upsert_user(conn: &mut SqliteWriter, id: &str, name: &str, now: i64) -> Result<()> {
        conn.upsert_user(id, name, now)
    }

    async fn group(conn: &mut SqliteWriter, id: &str) -> Result<Option<(String, String)>> {
        conn.group(id)
    }

    async fn create_group(
        conn: &mut SqliteWriter,
        group: (&str, &str, &str),
        conversation: &str,
        members: &[&str],
        now: i64,
    ) -> Result<()> {
        conn.create_group(group, conversation, members, now)
    }

    async fn join(conn: &mut SqliteWriter, conversation: &str, members: &[&str]) -> Result<()> {
        conn.join(conversation, members)
    }

    async fn members_with_roles(
        conn: &mut SqliteWriter,
        conversation: &str,
    ) -> Result<Vec<(String, String, i64)>> {
        conn.members_with_roles(conversation)
    }

    async fn set_role(
        conn: &mut SqliteWriter,
        conversation: &str,
        user: &str,
        role: &str,
    ) -> Result<()> {
        conn.set_role(conversation, user, role)
    }

    async fn deactivate(
        conn: &mut SqliteWriter,
        conversation: &str,
        users: &[&str],
        left_seq: i64,
    ) -> Result<()> {
        conn.deactivate(conversation, users, left_seq)
    }

    async fn update_group(
        conn: &mut SqliteWriter,
        id: &str,
        change: (Option<&str>, Option<&str>, Option<i64>),
    ) -> Result<()> {
        conn.update_group(id, change)
    }

    async fn insert_event(conn: &mut SqliteWriter, m: &StoredMessage, system: &str) -> Result<()> {
        conn.insert_event(m, system)
    }

    async fn message_for_recall(
        conn: &mut SqliteWriter,
        message_id: &str,
    ) -> Result<Option<(StoredMessage, Option<i64>)>> {
        conn.message_for_recall(message_id)
    }

    async fn recall(conn: &mut SqliteWriter, message_id: &str, now: i64) -> Result<()> {
        conn.recall(message_id, now)
    }

    async fn purge(conn: &mut SqliteWriter, before_id: &str, limit: i64) -> Result<u64> {
        conn.purge(before_id, limit)
    }

    async fn groups_of(conn: &mut SqliteWriter, user: &str) -> Result<Vec<String>> {
        conn.groups_of(user)
    }

    async fn erase_rows(
        conn: &mut SqliteWriter,
        user: &str,
        now: i64,
    ) -> Result<(u64, Vec<String>)> {
        conn.erase_rows(user, now)
    }

    async fn mark_read(
        conn: &mut SqliteWriter,
        user: &str,
        conversation: &str,
        seq: i64,
    ) -> Result<Option<(i64, i64)>> {
        conn.mark_read(user, conversation, seq)
    }

    async fn read(
        pool: &Pool<Sqlite>,
        user: &str,
        conversation: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Page> {
        Statements::read(pool, user, conversation, after_seq, limit).await
    }

    async fn history(
        pool: &Pool<Sqlite>,
        conversation: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Page> {
        Statements::history(pool, conversation, after_seq, limit).await
    }

    async fn position(pool: &Pool<Sqlite>, user: &str, conversation: &str) -> Result<Position> {
        Statements::position(pool, user, conversation).await
    }

    async fn participants(
        pool: &Pool<Sqlite>,
        user: &str,
        conversation: &str,
    ) -> Result<Vec<String>> {
        Statements::participants(pool, user, conversation).await
    }

    async fn conversations(pool: &Pool<Sqlite>, user: &str) -> Result<Vec<ConversationSummary>> {
        Statements::conversations(pool, user).await
    }

    async fn backlog(pool: &Pool<Sqlite>, user: &str) -> Result<Vec<Backlog>> {
        Statements::backlog(pool, user).await
    }

    async fn blocked_users(pool: &Pool<Sqlite>, user: &str) -> Result<Vec<String>> {
        Statements::blocked_users(pool, user).await
    }

    async fn visible(pool: &Pool<Sqlite>, viewer: &str, users: &[&str]) -> Result<Vec<String>> {
        Statements::visible(pool, viewer, users).await
    }

    async fn ping(pool: &Pool<Sqlite>) -> Result<()> {
        Statements::ping(pool).await
    }
}
