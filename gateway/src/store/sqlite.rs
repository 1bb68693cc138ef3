//! SQLite store (embedded default): one file in the data dir, WAL mode, `synchronous=FULL`, the
//! process's writer as its only writing connection, a small pool of readers.

use std::path::Path;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Connection, Sqlite, SqliteConnection};

use super::sql::Dialect;
use super::SqlStore;
use crate::error::{Error, Result};

pub type SqliteStore = SqlStore<Sqlite>;

/// Reader connections: reads are short, and SQLite serves them beside the writer (WAL).
const READERS: u32 = 4;
/// How often the checkpointer moves committed WAL frames into the database file.
const CHECKPOINT_INTERVAL: Duration = Duration::from_millis(250);

impl Dialect for Sqlite {
    // IMMEDIATE takes the write lock at BEGIN; the writer is the only one, so it never waits.
    const BEGIN: &'static str = "BEGIN IMMEDIATE";
    const ROW_LOCKS: bool = false;
    const NAMES_TTL: Option<Duration> = None;

    fn param(_: usize) -> String {
        "?".to_owned()
    }

    fn retryable(_: &Error) -> bool {
        false
    }
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
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Error::Internal(format!("creating {}: {e}", data_dir.display())))?;
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
