//! PostgreSQL store (cluster mode): every pod's writer and readers on one database.
//!
//! Each pod has one writer (group commit, as with SQLite), so several writers share the
//! database. Their transactions run at READ COMMITTED; what keeps them apart is row locks taken
//! in sorted order: a conversation's row while its seqs are allocated (`UPDATE … RETURNING`, so
//! seqs come from the database in the storing transaction — a rolled-back transaction rolls its
//! bump back, and the pod waiting on the lock allocates from where it really stands), and the
//! membership rows while acks are folded. A batch that still conflicts with another pod's
//! (deadlock, serialization failure, the same `(sender, clientMsgId)` stored first elsewhere) is
//! rolled back and run again.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, Postgres};

use super::sql::Dialect;
use super::SqlStore;
use crate::error::{Error, Result};

pub type PgStore = SqlStore<Postgres>;

/// Reader connections per pod (SYNC, catch-up on connect, conversation lists).
const READERS: u32 = 8;
/// Prepared statements kept per connection (sqlx's default is 100). The writer's statements over
/// lists differ with the batch's shape; at 100 they were evicted and prepared again (a round trip
/// each) often enough to cost ~30% of a pod's write throughput.
const STATEMENT_CACHE: usize = 1024;
/// How long a read waits for a connection before it fails (database down: fail, don't hang).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

impl Dialect for Postgres {
    const BEGIN: &'static str = "BEGIN ISOLATION LEVEL READ COMMITTED";
    const ROW_LOCKS: bool = true;
    // Another pod may record a new display name: a cached one is trusted only briefly.
    const NAMES_TTL: Option<Duration> = Some(Duration::from_secs(2));

    fn param(n: usize) -> String {
        format!("${n}")
    }

    fn retryable(e: &Error) -> bool {
        let Error::Database(sqlx::Error::Database(e)) = e else {
            return false;
        };
        // 40001 serialization_failure, 40P01 deadlock_detected: another pod's transaction was in
        // the way. 23505 unique_violation: another pod stored the same (sender, clientMsgId)
        // first — run again, the send is found as a duplicate.
        matches!(e.code().as_deref(), Some("40001" | "40P01" | "23505"))
    }
}

fn options(url: &str) -> Result<PgConnectOptions> {
    Ok(PgConnectOptions::from_str(url)?
        .application_name("chat-gateway")
        .statement_cache_capacity(STATEMENT_CACHE)
        // Plan every execution for its parameters. After five executions PostgreSQL may switch a
        // prepared statement to a generic plan, chosen once from the statistics of the moment —
        // on a young database, tables that look empty — and kept for the connection's life: the
        // writer's lookups on `messages` then stayed sequential scans as the table grew (one per
        // batch; p50 send→deliver 17 ms → 4 ms at 2,000 msg/s with custom plans).
        .options([("plan_cache_mode", "force_custom_plan")]))
}

/// The embedded migrations, ignoring applied versions they do not know: during a rollout an old
/// pod may restart after a newer pod applied a newer migration. Migrations stay backward
/// compatible, so the old pod runs on the newer schema instead of refusing to start.
fn migrator() -> sqlx::migrate::Migrator {
    let mut migrator = sqlx::migrate!("../migrations/postgres");
    migrator.set_ignore_missing(true);
    migrator
}

impl SqlStore<Postgres> {
    /// Connects to `url` (`postgres://user:password@host:port/database`), applies pending
    /// migrations and starts the writer.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::migrate(url).await?;
        let options = options(url)?;
        let readers = PgPoolOptions::new()
            .max_connections(READERS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options.clone())
            .await?;
        Self::start(options, readers)
    }

    /// Applies migrations and returns (the `migrate` command). Pods starting together take
    /// turns: sqlx holds an advisory lock while it migrates.
    pub async fn migrate(url: &str) -> Result<()> {
        let mut conn = PgConnection::connect_with(&options(url)?).await?;
        migrator().run(&mut conn).await?;
        conn.close().await?;
        Ok(())
    }
}
