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

use std::collections::{BTreeMap, HashSet};
use std::str::FromStr;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection, PgConnection, Postgres};

use super::lists::Lists;
use super::plan::{AckPosition, AckTarget, AckWrites, Mark};
use super::sql::{Dialect, MessageRow, MESSAGE_COLUMNS, MESSAGE_COLUMNS_M};
use super::SqlStore;
use crate::error::{Error, Result};
use crate::model::{StoredMessage, Target};

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
        // Readers: plan every execution for its parameters. After five executions PostgreSQL may
        // switch a prepared statement to a generic plan, chosen once from the statistics of the
        // moment — on a young database, tables that look empty — and kept until the next ANALYZE:
        // lookups on `messages` then stayed sequential scans as the table grew (p50 send→deliver
        // 17 ms → 4 ms at 2,000 msg/s with custom plans).
        .options([("plan_cache_mode", "force_custom_plan")]))
}

/// The writer's connection. Its hot path is a few fixed statements run for every batch
/// ([`Lists`] below), each a set of key lookups and updates over short lists. Planning them anew
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

    /// Applies migrations and returns (the `migrate` command). Pods starting together take
    /// turns: sqlx holds an advisory lock while it migrates.
    pub async fn migrate(url: &str) -> Result<()> {
        let mut conn = PgConnection::connect_with(&options(url)?).await?;
        migrator().run(&mut conn).await?;
        conn.close().await?;
        Ok(())
    }
}

/// `Lists::look_up`: the sends' duplicates (rows without an acker) and the acked messages.
static LOOK_UP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT NULL::text AS acker, NULL::int8 AS joined_seq, {MESSAGE_COLUMNS_M}
         FROM unnest($1::text[], $2::text[]) AS d(sender, client_msg_id)
         JOIN messages m ON m.sender = d.sender AND m.client_msg_id = d.client_msg_id
         UNION ALL
         SELECT d.acker, ms.joined_seq, {MESSAGE_COLUMNS_M}
         FROM unnest($3::text[], $4::text[]) AS d(acker, message_id)
         JOIN messages m ON m.message_id = d.message_id
         LEFT JOIN memberships ms ON ms.conversation_id = m.conversation_id AND ms.user_id = d.acker"
    )
});

/// `Lists::insert_and_lock`: the insert runs whether or not the main statement reads it; the lock
/// is the main statement, so that the read after it (`positions`) is a statement of its own, as
/// `Sql::lock_positions` explains.
static INSERT_AND_LOCK: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH inserted AS (
             INSERT INTO messages ({MESSAGE_COLUMNS}) SELECT * FROM unnest(
                 $1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                 $8::text[], $9::text[], $10::int8[], $11::text[], $12::text[], $13::int8[])
         )
         SELECT ms.user_id FROM unnest($14::text[], $15::text[]) AS d(user_id, conversation_id)
         JOIN memberships ms ON ms.user_id = d.user_id AND ms.conversation_id = d.conversation_id
         ORDER BY ms.user_id, ms.conversation_id FOR UPDATE OF ms"
    )
});

/// The hot path on PostgreSQL: one fixed statement per step, each list bound as arrays (one per
/// column) and read back with `unnest`. A fixed text is prepared once per connection and planned
/// cheaply — a `VALUES` list of a batch's hundreds of parameters took PostgreSQL longer to plan
/// than to run — and steps that can share a round trip do: the lookups of sends and acks;
/// locking and bumping the seqs; inserting the messages and locking the memberships; writing the
/// acks and marking deliveries.
#[async_trait]
impl Lists for Postgres {
    /// With `synchronous_commit=off` PostgreSQL answers COMMIT before the commit's WAL is written
    /// out, and a database crash loses the last transactions: messages their senders were told
    /// were stored (reply 0), with their seqs handed to other messages after recovery. So the
    /// writer never runs with it off; any other value (`local`, `on`, `remote_write`,
    /// `remote_apply`) is the operator's choice and is kept.
    async fn prepare_writer(conn: &mut PgConnection) -> Result<()> {
        let mode: String = sqlx::query_scalar("SELECT current_setting('synchronous_commit')")
            .fetch_one(&mut *conn)
            .await?;
        if mode == "off" {
            tracing::warn!(
                "PostgreSQL runs with synchronous_commit=off; the store's writer sets it on for \
                 its own transactions (a message answered with reply 0 must survive a crash)"
            );
            sqlx::query("SET synchronous_commit = on")
                .execute(&mut *conn)
                .await?;
        }
        Ok(())
    }

    async fn look_up(
        conn: &mut PgConnection,
        keys: &[(&str, &str)],
        acks: &[(&str, &str)],
    ) -> Result<(Vec<StoredMessage>, Vec<AckTarget>)> {
        if keys.is_empty() && acks.is_empty() {
            return Ok(Default::default());
        }
        let (senders, client_ids) = columns2(keys);
        let (ackers, acked_ids) = columns2(acks);
        let rows: Vec<FoundRow> = sqlx::query_as(&LOOK_UP)
            .bind(senders)
            .bind(client_ids)
            .bind(ackers)
            .bind(acked_ids)
            .fetch_all(conn)
            .await?;
        let (mut existing, mut found) = (Vec::new(), Vec::new());
        for row in rows {
            match row.acker {
                None => existing.push(row.message.into()),
                Some(acker) => found.push((acker, row.message.into(), row.joined_seq)),
            }
        }
        Ok((existing, found))
    }

    async fn allocate(
        conn: &mut PgConnection,
        counts: &BTreeMap<&str, i64>,
    ) -> Result<Vec<(String, i64)>> {
        if counts.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = counts.keys().copied().collect();
        let adds: Vec<i64> = counts.values().copied().collect();
        // `locked` takes the rows' locks in id order (the lock is taken as the sorted rows come
        // out), and the UPDATE only touches rows it already holds. A row another pod's writer
        // had locked is waited for; once that commits, the UPDATE adds to its newest last_seq
        // (READ COMMITTED re-reads an updated row before changing it).
        let sql = "WITH locked AS MATERIALIZED (
                 SELECT c.id FROM conversations c WHERE c.id = ANY($1::text[]) ORDER BY c.id FOR UPDATE
             )
             UPDATE conversations SET last_seq = conversations.last_seq + d.n
             FROM unnest($1::text[], $2::int8[]) AS d(id, n) JOIN locked ON locked.id = d.id
             WHERE conversations.id = d.id
             RETURNING conversations.id, conversations.last_seq";
        Ok(sqlx::query_as(sql)
            .bind(ids)
            .bind(adds)
            .fetch_all(conn)
            .await?)
    }

    async fn insert_and_lock(
        conn: &mut PgConnection,
        messages: &[&StoredMessage],
        pairs: &[(&str, &str)],
    ) -> Result<()> {
        if messages.is_empty() && pairs.is_empty() {
            return Ok(());
        }
        let n = messages.len();
        let mut conversation = Vec::with_capacity(n);
        let mut seq = Vec::with_capacity(n);
        let mut message_id = Vec::with_capacity(n);
        let mut sender = Vec::with_capacity(n);
        let mut sender_name = Vec::with_capacity(n);
        let mut recipient = Vec::with_capacity(n);
        let mut recipient_name = Vec::with_capacity(n);
        let mut group_id = Vec::with_capacity(n);
        let mut body = Vec::with_capacity(n);
        let mut file_type = Vec::with_capacity(n);
        let mut client_msg_id = Vec::with_capacity(n);
        let mut request_id = Vec::with_capacity(n);
        let mut created_at = Vec::with_capacity(n);
        for m in messages {
            let (to, to_name, group) = match &m.target {
                Target::Direct { to, to_name } => (Some(to.as_str()), Some(to_name.as_str()), None),
                Target::Group { group_id } => (None, None, Some(group_id.as_str())),
            };
            conversation.push(m.conversation_id.as_str());
            seq.push(m.seq);
            message_id.push(m.message_id.as_str());
            sender.push(m.from.as_str());
            sender_name.push(m.from_name.as_str());
            recipient.push(to);
            recipient_name.push(to_name);
            group_id.push(group);
            body.push(m.body.as_str());
            file_type.push(m.file_type);
            client_msg_id.push(m.client_msg_id.as_deref());
            request_id.push(m.request_id.as_str());
            created_at.push(m.created_at);
        }
        let (users, conversations) = columns2(pairs);
        sqlx::query(&INSERT_AND_LOCK)
            .bind(conversation)
            .bind(seq)
            .bind(message_id)
            .bind(sender)
            .bind(sender_name)
            .bind(recipient)
            .bind(recipient_name)
            .bind(group_id)
            .bind(body)
            .bind(file_type)
            .bind(client_msg_id)
            .bind(request_id)
            .bind(created_at)
            .bind(users)
            .bind(conversations)
            .execute(conn)
            .await?;
        Ok(())
    }

    async fn positions(
        conn: &mut PgConnection,
        pairs: &[(&str, &str)],
    ) -> Result<Vec<AckPosition>> {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let (users, conversations) = columns2(pairs);
        Ok(sqlx::query_as(
            "SELECT ms.user_id, ms.conversation_id, ms.acked_seq, a.seq
             FROM unnest($1::text[], $2::text[]) AS d(user_id, conversation_id)
             JOIN memberships ms ON ms.user_id = d.user_id AND ms.conversation_id = d.conversation_id
             LEFT JOIN acks a ON a.user_id = ms.user_id AND a.conversation_id = ms.conversation_id",
        )
        .bind(users)
        .bind(conversations)
        .fetch_all(conn)
        .await?)
    }

    async fn settle(
        conn: &mut PgConnection,
        writes: &AckWrites,
        delivered: &[String],
        now: i64,
    ) -> Result<HashSet<String>> {
        if writes.is_empty() && delivered.is_empty() {
            return Ok(HashSet::new());
        }
        let (adv_u, adv_c, adv_s) = columns3(&writes.advance);
        let (unpark_u, unpark_c, unpark_s) = columns3(&writes.unpark);
        let (park_u, park_c, park_s) = columns3(&writes.park);
        // Every write in one statement (data-modifying CTEs run whether or not they are read).
        // An ack is parked or unparked, never both in one batch, so the two never meet a row.
        let sql = "WITH advance AS (
                 UPDATE memberships SET acked_seq = d.seq
                 FROM unnest($1::text[], $2::text[], $3::int8[]) AS d(user_id, conversation_id, seq)
                 WHERE memberships.user_id = d.user_id AND memberships.conversation_id = d.conversation_id
             ), unpark AS (
                 DELETE FROM acks
                 USING unnest($4::text[], $5::text[], $6::int8[]) AS d(user_id, conversation_id, seq)
                 WHERE acks.user_id = d.user_id AND acks.conversation_id = d.conversation_id AND acks.seq = d.seq
             ), park AS (
                 INSERT INTO acks (user_id, conversation_id, seq)
                 SELECT * FROM unnest($7::text[], $8::text[], $9::int8[]) ON CONFLICT DO NOTHING
             )
             UPDATE messages SET delivered_at = $10
             WHERE delivered_at IS NULL AND message_id = ANY($11::text[])
             RETURNING message_id";
        let rows: Vec<(String,)> = sqlx::query_as(sql)
            .bind(adv_u)
            .bind(adv_c)
            .bind(adv_s)
            .bind(unpark_u)
            .bind(unpark_c)
            .bind(unpark_s)
            .bind(park_u)
            .bind(park_c)
            .bind(park_s)
            .bind(now)
            .bind(delivered)
            .fetch_all(conn)
            .await?;
        Ok(rows.into_iter().map(|(id,)| id).collect())
    }
}

/// A row of the combined lookup: a stored duplicate (no acker) or an acked message.
#[derive(sqlx::FromRow)]
struct FoundRow {
    acker: Option<String>,
    joined_seq: Option<i64>,
    #[sqlx(flatten)]
    message: MessageRow,
}

/// A list of pairs as its two columns.
fn columns2<'a>(pairs: &[(&'a str, &'a str)]) -> (Vec<&'a str>, Vec<&'a str>) {
    pairs.iter().copied().unzip()
}

/// A list of marks as its three columns.
fn columns3(marks: &[Mark]) -> (Vec<&str>, Vec<&str>, Vec<i64>) {
    let mut columns = (
        Vec::with_capacity(marks.len()),
        Vec::with_capacity(marks.len()),
        Vec::with_capacity(marks.len()),
    );
    for (user, conversation, seq) in marks {
        columns.0.push(user.as_str());
        columns.1.push(conversation.as_str());
        columns.2.push(*seq);
    }
    columns
}
