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
//!
//! Its [`Backend`]: the shared statements, and its own hot path ([`arrays`]).

mod arrays;
mod lifecycle;

use std::collections::BTreeMap;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, Pool, Postgres};

use super::backend::Backend;
use super::plan::{AckPosition, AckTarget, AckWrites};
use super::sql::Shared;
use super::{Backlog, ConversationSummary, Page, Position, SqlStore};
use crate::error::{Error, Result};
use crate::model::StoredMessage;

/// The cluster store: every pod's writer and readers on one PostgreSQL database.
pub type PgStore = SqlStore<Postgres>;

/// Reader connections per pod (SYNC, catch-up on connect, conversation lists).
const READERS: u32 = 8;
/// Prepared statements kept per connection (sqlx's default is 100). The writer's statements over
/// lists differ with the batch's shape; at 100 they were evicted and prepared again (a round trip
/// each) often enough to cost ~30% of a pod's write throughput.
const STATEMENT_CACHE: usize = 1024;
/// How long a read waits for a connection before it fails (database down: fail, don't hang).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// The default of `--store-commit-interval-ms`: the least time between the starts of two of a
/// pod's store transactions. Each costs PostgreSQL ~2 ms of CPU in 7 statements whatever its
/// size, and a writer that starts the next one as soon as the last committed runs the database
/// flat out at any load (more, smaller transactions as the load falls). At 15 ms a pod commits at
/// most ~67 times a second; a write waits at most that long for its batch to start, and not at
/// all after a quiet spell (docs/benchmarks.md: PostgreSQL's CPU 17 → 10 s, cross-pod p50 44 →
/// 22 ms at 1,000 msg/s on 3 pods).
pub const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_millis(15);

fn options(url: &str) -> Result<PgConnectOptions> {
    Ok(PgConnectOptions::from_str(url)?
        .application_name("chat-gateway")
        .statement_cache_capacity(STATEMENT_CACHE)
        // Readers: plan every execution for its parameters. After five executions PostgreSQL may
        // switch a prepared statement to a generic plan, chosen once from the statistics of the
        // moment — on a young database, tables that look empty — and kept until the next ANALYZE:
        // lookups on `messages` then stayed sequential scans as the table grew (p50 send→deliver
        // 17 ms → 4 ms at 2,000 msg/s with custom plans).
        .options([("plan_cache_mode", "force_custom_plan")]))
}

/// The writer's connection. Its hot path is a few fixed statements run for every batch
/// ([`arrays`]), each a set of key lookups and updates over short lists. Planning them anew
/// each time cost PostgreSQL a third of their time, so they are planned once per connection
/// (generic plans) — with sequential scans, hash and merge joins ruled out, so the plan is the
/// one that stays right as the tables grow (nested loops over primary-key and unique-index
/// probes), whatever the statistics said when it was made.
fn writer_options(url: &str) -> Result<PgConnectOptions> {
    Ok(options(url)?.options([
        ("plan_cache_mode", "force_generic_plan"),
        ("enable_seqscan", "off"),
        ("enable_hashjoin", "off"),
        ("enable_mergejoin", "off"),
    ]))
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
    /// migrations and starts the writer, with the [`DEFAULT_COMMIT_INTERVAL`].
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(url, DEFAULT_COMMIT_INTERVAL).await
    }

    /// [`PgStore::connect`] with this pod's transactions at least `commit_interval` apart.
    pub async fn connect_with(url: &str, commit_interval: Duration) -> Result<Self> {
        Self::migrate(url).await?;
        let readers = PgPoolOptions::new()
            .max_connections(READERS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options(url)?)
            .await?;
        Self::start(writer_options(url)?, commit_interval, readers)
    }

    /// A small pool on the same database, for tables outside the message hot path (the file
    /// index). Migrations have run ([`PgStore::connect`]).
    pub async fn side_pool(url: &str) -> Result<Pool<Postgres>> {
        Ok(PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options(url)?)
            .await?)
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

/// A small pool on the store's database for what is kept beside the messages and written outside
/// the writer (the webhook's pending deliveries). Migrations have run.
pub async fn side_pool(url: &str) -> Result<Pool<Postgres>> {
    Ok(PgPoolOptions::new()
        .max_connections(2)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options(url)?)
        .await?)
}

/// The statements PostgreSQL runs as SQLite does.
type Statements = Shared<Postgres>;

#[async_trait]
impl Backend for Postgres {
    const BEGIN: &'static str = "BEGIN ISOLATION LEVEL READ COMMITTED";
    // Another pod may record a new display name: a cached one is trusted only briefly.
    const NAMES_TTL: Option<Duration> = Some(Duration::from_secs(2));

    fn retryable(e: &Error) -> bool {
        let Error::Database(sqlx::Error::Database(e)) = e else {
            return false;
        };
        // 40001 serialization_failure, 40P01 deadlock_detected: another pod's transaction was in
        // the way. 23505 unique_violation: another pod stored the same (sender, clientMsgId)
        // first — run again, the send is found as a duplicate.
        matches!(e.code().as_deref(), Some("40001" | "40P01" | "23505"))
    }

    type Writer = PgConnection;
    type WriterOptions = PgConnectOptions;

    /// With `synchronous_commit=off` PostgreSQL answers COMMIT before the commit's WAL is written
    /// out, and a database crash loses the last transactions: messages their senders were told
    /// were stored (reply 0), with their seqs handed to other messages after recovery. So the
    /// writer never runs with it off; any other value (`local`, `on`, `remote_write`,
    /// `remote_apply`) is the operator's choice and is kept.
    async fn connect_writer(options: &PgConnectOptions) -> Result<PgConnection> {
        let mut conn = PgConnection::connect_with(options).await?;
        let mode: String = sqlx::query_scalar("SELECT current_setting('synchronous_commit')")
            .fetch_one(&mut conn)
            .await?;
        if mode == "off" {
            tracing::warn!(
                "PostgreSQL runs with synchronous_commit=off; the store's writer sets it on for \
                 its own transactions (a message answered with reply 0 must survive a crash)"
            );
            sqlx::query("SET synchronous_commit = on")
                .execute(&mut conn)
                .await?;
        }
        Ok(conn)
    }

    async fn execute(conn: &mut PgConnection, sql: &str) -> Result<()> {
        Statements::execute(conn, sql).await
    }

    async fn look_up(
        conn: &mut PgConnection,
        keys: &[(&str, &str)],
        acks: &[(&str, &str)],
    ) -> Result<(Vec<StoredMessage>, Vec<AckTarget>)> {
        arrays::look_up(conn, keys, acks).await
    }

    async fn find_groups(conn: &mut PgConnection, ids: &[&str]) -> Result<Vec<(String, String)>> {
        Statements::find_groups(conn, ids).await
    }

    async fn active_members(
        conn: &mut PgConnection,
        conversations: &[&str],
    ) -> Result<Vec<(String, String)>> {
        Statements::active_members(conn, conversations).await
    }

    async fn blocked_pairs(
        conn: &mut PgConnection,
        pairs: &[(&str, &str)],
    ) -> Result<Vec<(String, String)>> {
        Statements::blocked_pairs(conn, pairs).await
    }

    async fn set_block(
        conn: &mut PgConnection,
        blocker: &str,
        blocked: &str,
        on: bool,
        now: i64,
    ) -> Result<bool> {
        Statements::set_block(conn, blocker, blocked, on, now).await
    }

    async fn names(conn: &mut PgConnection, ids: &[&str]) -> Result<Vec<(String, String, bool)>> {
        Statements::names(conn, ids).await
    }

    async fn create_direct(
        conn: &mut PgConnection,
        conversations: &BTreeMap<&str, (&str, &str)>,
        now: i64,
    ) -> Result<()> {
        Statements::create_direct(conn, conversations, now).await
    }

    async fn allocate(
        conn: &mut PgConnection,
        counts: &BTreeMap<&str, i64>,
    ) -> Result<Vec<(String, i64)>> {
        arrays::allocate(conn, counts).await
    }

    async fn insert_and_lock(
        conn: &mut PgConnection,
        messages: &[&StoredMessage],
        pairs: &[(&str, &str)],
    ) -> Result<()> {
        arrays::insert_and_lock(conn, messages, pairs).await
    }

    async fn positions(
        conn: &mut PgConnection,
        pairs: &[(&str, &str)],
    ) -> Result<Vec<AckPosition>> {
        arrays::positions(conn, pairs).await
    }

    async fn settle(conn: &mut PgConnection, writes: &AckWrites) -> Result<()> {
        arrays::settle(conn, writes).await
    }

    async fn upsert_user(conn: &mut PgConnection, id: &str, name: &str, now: i64) -> Result<()> {
        Statements::upsert_user(conn, id, name, now).await
    }

    async fn group(conn: &mut PgConnection, id: &str) -> Result<Option<(String, String)>> {
        Statements::group(conn, id).await
    }

    async fn create_group(
        conn: &mut PgConnection,
        group: (&str, &str, &str),
        conversation: &str,
        members: &[&str],
        now: i64,
    ) -> Result<()> {
        Statements::create_group(conn, group, conversation, members, now).await
    }

    async fn join(conn: &mut PgConnection, conversation: &str, members: &[&str]) -> Result<()> {
        Statements::join(conn, conversation, members).await
    }

    async fn members_with_roles(
        conn: &mut PgConnection,
        conversation: &str,
    ) -> Result<Vec<(String, String, i64)>> {
        Statements::members_with_roles(conn, conversation).await
    }

    async fn set_role(
        conn: &mut PgConnection,
        conversation: &str,
        user: &str,
        role: &str,
    ) -> Result<()> {
        Statements::set_role(conn, conversation, user, role).await
    }

    async fn deactivate(
        conn: &mut PgConnection,
        conversation: &str,
        users: &[&str],
        left_seq: i64,
    ) -> Result<()> {
        Statements::deactivate(conn, conversation, users, left_seq).await
    }

    async fn update_group(
        conn: &mut PgConnection,
        id: &str,
        change: (Option<&str>, Option<&str>, Option<i64>),
    ) -> Result<()> {
        Statements::update_group(conn, id, change).await
    }

    async fn insert_event(conn: &mut PgConnection, m: &StoredMessage, system: &str) -> Result<()> {
        Statements::insert_event(conn, m, system).await
    }

    async fn message_for_recall(
        conn: &mut PgConnection,
        message_id: &str,
    ) -> Result<Option<(StoredMessage, Option<i64>)>> {
        Statements::message_for_recall(conn, message_id).await
    }

    async fn recall(conn: &mut PgConnection, message_id: &str, now: i64) -> Result<()> {
        Statements::recall(conn, message_id, now).await
    }

    async fn purge(conn: &mut PgConnection, before_id: &str, limit: i64) -> Result<u64> {
        lifecycle::purge(conn, before_id, limit).await
    }

    async fn groups_of(conn: &mut PgConnection, user: &str) -> Result<Vec<String>> {
        lifecycle::groups_of(conn, user).await
    }

    async fn erase_rows(
        conn: &mut PgConnection,
        user: &str,
        now: i64,
    ) -> Result<(u64, Vec<String>)> {
        lifecycle::erase_rows(conn, user, now).await
    }

    async fn mark_read(
        conn: &mut PgConnection,
        user: &str,
        conversation: &str,
        seq: i64,
    ) -> Result<Option<(i64, i64)>> {
        Statements::mark_read(conn, user, conversation, seq).await
    }

    async fn read(
        pool: &Pool<Postgres>,
        user: &str,
        conversation: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Page> {
        Statements::read(pool, user, conversation, after_seq, limit).await
    }

    async fn history(
        pool: &Pool<Postgres>,
        conversation: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Page> {
        Statements::history(pool, conversation, after_seq, limit).await
    }

    async fn position(pool: &Pool<Postgres>, user: &str, conversation: &str) -> Result<Position> {
        Statements::position(pool, user, conversation).await
    }

    async fn participants(
        pool: &Pool<Postgres>,
        user: &str,
        conversation: &str,
    ) -> Result<Vec<String>> {
        Statements::participants(pool, user, conversation).await
    }

    async fn conversations(pool: &Pool<Postgres>, user: &str) -> Result<Vec<ConversationSummary>> {
        Statements::conversations(pool, user).await
    }

    async fn backlog(pool: &Pool<Postgres>, user: &str) -> Result<Vec<Backlog>> {
        Statements::backlog(pool, user).await
    }

    async fn blocked_users(pool: &Pool<Postgres>, user: &str) -> Result<Vec<String>> {
        Statements::blocked_users(pool, user).await
    }

    async fn visible(pool: &Pool<Postgres>, viewer: &str, users: &[&str]) -> Result<Vec<String>> {
        Statements::visible(pool, viewer, users).await
    }

    async fn ping(pool: &Pool<Postgres>) -> Result<()> {
        Statements::ping(pool).await
    }
}
