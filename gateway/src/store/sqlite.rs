//! SQLite store (embedded default): one file in the data dir, WAL mode, `synchronous=FULL`, the
//! process's writer as its only writing connection, a small pool of readers.
//!
//! Its [`Backend`]: the shared statements, and its own hot path ([`lists`]).

mod lists;

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Pool, Sqlite, SqliteConnection};

use super::backend::Backend;
use super::plan::{AckPosition, AckTarget, AckWrites};
use super::sql::{Placeholder, Shared};
use super::{Backlog, ConversationSummary, Page, Position, SqlStore};
use crate::error::{Error, Result};
use crate::model::StoredMessage;

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
    /// Opens (creating if needed) `<data_dir>/chat.db`, applies migrations and starts the writer.
    pub async fn open(data_dir: &Path) -> Result<Self> {
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
        // One process, one database on local disk: a commit costs little CPU, so the writer
        // starts the next one as soon as the last is in.
        Self::start(
            options(&path).pragma("wal_autocheckpoint", "0"),
            Duration::ZERO,
            readers,
        )
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

/// PASSIVE checkpoints never block the writer or readers; they copy whatever frames no reader
/// still needs, and the WAL is reused from its start once a checkpoint caught up.
async fn checkpoint_loop(mut conn: SqliteConnection) {
    let mut tick = tokio::time::interval(CHECKPOINT_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&mut conn)
            .await
        {
            tracing::warn!(error = %e, "WAL checkpoint failed; retrying");
        }
    }
}

/// The statements SQLite runs as PostgreSQL does.
type Statements = Shared<Sqlite>;

#[async_trait]
impl Backend for Sqlite {
    // IMMEDIATE takes the write lock at BEGIN; the writer is the only one, so it never waits.
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
    const PLACEHOLDER: Placeholder = Placeholder::Positional;
    const NAMES_TTL: Option<Duration> = None;

    /// The only writer never conflicts with another.
    fn retryable(_: &Error) -> bool {
        false
    }

    async fn prepare_writer(_conn: &mut SqliteConnection) -> Result<()> {
        Ok(())
    }

    async fn execute(conn: &mut SqliteConnection, sql: &str) -> Result<()> {
        Statements::execute(conn, sql).await
    }

    async fn look_up(
        conn: &mut SqliteConnection,
        keys: &[(&str, &str)],
        acks: &[(&str, &str)],
    ) -> Result<(Vec<StoredMessage>, Vec<AckTarget>)> {
        let existing = lists::find_sent(conn, keys).await?;
        Ok((existing, lists::find_acked(conn, acks).await?))
    }

    async fn find_groups(
        conn: &mut SqliteConnection,
        ids: &[&str],
    ) -> Result<Vec<(String, String)>> {
        Statements::find_groups(conn, ids).await
    }

    async fn active_members(
        conn: &mut SqliteConnection,
        conversations: &[&str],
    ) -> Result<Vec<(String, String)>> {
        Statements::active_members(conn, conversations).await
    }

    async fn names(conn: &mut SqliteConnection, ids: &[&str]) -> Result<Vec<(String, String)>> {
        Statements::names(conn, ids).await
    }

    async fn create_direct(
        conn: &mut SqliteConnection,
        conversations: &BTreeMap<&str, (&str, &str)>,
        now: i64,
    ) -> Result<()> {
        Statements::create_direct(conn, conversations, now).await
    }

    async fn allocate(
        conn: &mut SqliteConnection,
        counts: &BTreeMap<&str, i64>,
    ) -> Result<Vec<(String, i64)>> {
        lists::allocate(conn, counts).await
    }

    /// Inserts only: the only writer has nothing to lock.
    async fn insert_and_lock(
        conn: &mut SqliteConnection,
        messages: &[&StoredMessage],
        _pairs: &[(&str, &str)],
    ) -> Result<()> {
        lists::insert_messages(conn, messages).await
    }

    async fn positions(
        conn: &mut SqliteConnection,
        pairs: &[(&str, &str)],
    ) -> Result<Vec<AckPosition>> {
        lists::positions(conn, pairs).await
    }

    async fn settle(
        conn: &mut SqliteConnection,
        writes: &AckWrites,
        delivered: &[String],
        now: i64,
    ) -> Result<HashSet<String>> {
        if !writes.is_empty() {
            lists::write_acks(conn, writes).await?;
        }
        lists::mark_delivered(conn, delivered, now).await
    }

    async fn upsert_user(
        conn: &mut SqliteConnection,
        id: &str,
        name: &str,
        now: i64,
    ) -> Result<()> {
        Statements::upsert_user(conn, id, name, now).await
    }

    async fn group(conn: &mut SqliteConnection, id: &str) -> Result<Option<(String, String)>> {
        Statements::group(conn, id).await
    }

    async fn is_active_member(
        conn: &mut SqliteConnection,
        user: &str,
        conversation: &str,
    ) -> Result<bool> {
        Statements::is_active_member(conn, user, conversation).await
    }

    async fn create_group(
        conn: &mut SqliteConnection,
        group: (&str, &str, &str),
        conversation: &str,
        members: &[&str],
        now: i64,
    ) -> Result<()> {
        Statements::create_group(conn, group, conversation, members, now).await
    }

    async fn join(conn: &mut SqliteConnection, conversation: &str, members: &[&str]) -> Result<()> {
        Statements::join(conn, conversation, members).await
    }

    async fn leave(conn: &mut SqliteConnection, user: &str, conversation: &str) -> Result<()> {
        Statements::leave(conn, user, conversation).await
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

    async fn position(pool: &Pool<Sqlite>, user: &str, conversation: &str) -> Result<Position> {
        Statements::position(pool, user, conversation).await
    }

    async fn conversations(pool: &Pool<Sqlite>, user: &str) -> Result<Vec<ConversationSummary>> {
        Statements::conversations(pool, user).await
    }

    async fn backlog(pool: &Pool<Sqlite>, user: &str) -> Result<Vec<Backlog>> {
        Statements::backlog(pool, user).await
    }

    async fn ping(pool: &Pool<Sqlite>) -> Result<()> {
        Statements::ping(pool).await
    }
}
