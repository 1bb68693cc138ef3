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

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
/// Reader connections: reads are short, and SQLite serves them beside the writer (WAL).
const READERS: u32 = 4;

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
        .foreign_keys(true)
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
        Self::start(options(&path), readers)
    }

    /// Applies migrations and returns (the `migrate` command).
    pub async fn migrate(data_dir: &Path) -> Result<()> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| Error::Internal(format!("creating {}: {e}", data_dir.display())))?;
        let mut conn = SqliteConnection::connect_with(&options(&data_dir.join("chat.db"))).await?;
        MIGRATOR.run(&mut conn).await?;
        conn.close().await?;
        Ok(())
    }
}
