//! The webhook's pending deliveries, kept in the message store's database (table
//! `webhook_deliveries`) so that they survive a restart and any pod can finish them.
//!
//! One [`Queue`] trait, one implementation over sqlx for both databases ([`SqlQueue`]); they
//! differ in how a dispatcher claims due rows ([`Dialect::CLAIM`]): PostgreSQL, shared by every
//! pod, skips the rows another pod's transaction is claiming (`FOR UPDATE SKIP LOCKED`); SQLite
//! has one writing process, and its claim is one atomic statement. A claimed row carries a lease
//! (`lease_until`, ms): a pod that dies mid-delivery leaves a lease that runs out, and then the
//! row is due again for everyone. These writes are apart from the message store's group-commit
//! writer: they are rare (a recipient offline), and off the path of a send.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Type};

use crate::error::Result;

/// Rows in one `INSERT`: 5 parameters each stays far below both databases' limits.
const INSERT_CHUNK: usize = 200;

/// A delivery to record: a message's event for one user, until `deadline` (ms).
#[derive(Debug, Clone, PartialEq)]
pub struct NewDelivery {
    /// The message announced.
    pub message_id: String,
    /// The recipient user.
    pub user_id: String,
    /// The exact JSON posted (and signed) on every attempt.
    pub body: String,
    /// When retrying stops, ms since the epoch: the message's time plus the retry window.
    pub deadline: i64,
}

/// A delivery a dispatcher claimed: it posts it, then finishes or reschedules it.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    /// The message announced.
    pub message_id: String,
    /// The recipient user.
    pub user_id: String,
    /// The body to post.
    pub body: String,
    /// When retrying stops (ms).
    pub deadline: i64,
    /// Attempts made before this one.
    pub attempts: i64,
}

/// Where pending deliveries are kept (see the module docs).
#[async_trait]
pub trait Queue: Send + Sync + 'static {
    /// Records deliveries due at `now`; one already recorded for the same (message, user) stays
    /// as it is (a second device giving up, a repeat).
    async fn enqueue(&self, deliveries: &[NewDelivery], now: i64) -> Result<()>;

    /// Claims up to `limit` due deliveries (due: `next_at <= now`, no live lease) for `owner`
    /// until `lease_until`.
    async fn claim(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<Claimed>>;

    /// Removes a delivery: delivered, or given up on.
    async fn finish(&self, message_id: &str, user_id: &str) -> Result<()>;

    /// Counts a failed attempt and makes the delivery due again at `next_at`, lease released.
    async fn reschedule(&self, message_id: &str, user_id: &str, next_at: i64) -> Result<()>;

    /// Releases every lease `owner` holds (a graceful stop: others need not wait for them).
    async fn release(&self, owner: &str) -> Result<()>;
}

/// What differs between the databases.
pub trait Dialect: Database {
    /// Claims due rows: `$1` owner, `$2` now, `$3` lease end, `$4` limit; returns the
    /// [`Claimed`] columns.
    const CLAIM: &'static str;
}

impl Dialect for sqlx::Sqlite {
    const CLAIM: &'static str = "UPDATE webhook_deliveries SET lease_owner = $1, lease_until = $3
        WHERE (message_id, user_id) IN (
            SELECT message_id, user_id FROM webhook_deliveries
            WHERE next_at <= $2 AND lease_until <= $2 ORDER BY next_at LIMIT $4)
        RETURNING message_id, user_id, body, deadline, attempts";
}

impl Dialect for sqlx::Postgres {
    const CLAIM: &'static str = "UPDATE webhook_deliveries SET lease_owner = $1, lease_until = $3
        WHERE (message_id, user_id) IN (
            SELECT message_id, user_id FROM webhook_deliveries
            WHERE next_at <= $2 AND lease_until <= $2 ORDER BY next_at LIMIT $4
            FOR UPDATE SKIP LOCKED)
        RETURNING message_id, user_id, body, deadline, attempts";
}

/// The [`Queue`] over a sqlx pool of the store's database.
pub struct SqlQueue<DB: Database> {
    pool: Pool<DB>,
}

impl<DB: Database> SqlQueue<DB> {
    /// The queue on `pool` (migrations have run: the store opened first).
    pub fn new(pool: Pool<DB>) -> Self {
        Self { pool }
    }
}

/// `($1, …, $5), ($6, …)`: `rows` tuples of 5 parameters.
fn values(rows: usize) -> String {
    (0..rows)
        .map(|r| {
            let n = r * 5;
            format!(
                "(${}, ${}, ${}, ${}, ${})",
                n + 1,
                n + 2,
                n + 3,
                n + 4,
                n + 5
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

#[async_trait]
impl<DB> Queue for SqlQueue<DB>
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'c> &'c Pool<DB>: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    async fn enqueue(&self, deliveries: &[NewDelivery], now: i64) -> Result<()> {
        for chunk in deliveries.chunks(INSERT_CHUNK) {
            let sql = format!(
                "INSERT INTO webhook_deliveries (message_id, user_id, body, deadline, next_at)
                 VALUES {} ON CONFLICT (message_id, user_id) DO NOTHING",
                values(chunk.len())
            );
            let mut q = sqlx::query::<DB>(&sql);
            for d in chunk {
                q = q
                    .bind(d.message_id.as_str())
                    .bind(d.user_id.as_str())
                    .bind(d.body.as_str())
                    .bind(d.deadline)
                    .bind(now);
            }
            q.execute(&self.pool).await?;
        }
        Ok(())
    }

    async fn claim(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<Claimed>> {
        let rows: Vec<(String, String, String, i64, i64)> = sqlx::query_as(DB::CLAIM)
            .bind(owner)
            .bind(now)
            .bind(lease_until)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(|(message_id, user_id, body, deadline, attempts)| Claimed {
                message_id,
                user_id,
                body,
                deadline,
                attempts,
            })
            .collect())
    }

    async fn finish(&self, message_id: &str, user_id: &str) -> Result<()> {
        sqlx::query::<DB>("DELETE FROM webhook_deliveries WHERE message_id = $1 AND user_id = $2")
            .bind(message_id)
            .bind(user_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn reschedule(&self, message_id: &str, user_id: &str, next_at: i64) -> Result<()> {
        sqlx::query::<DB>(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, next_at = $3,
                 lease_until = 0, lease_owner = NULL
             WHERE message_id = $1 AND user_id = $2",
        )
        .bind(message_id)
        .bind(user_id)
        .bind(next_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn release(&self, owner: &str) -> Result<()> {
        sqlx::query::<DB>(
            "UPDATE webhook_deliveries SET lease_until = 0, lease_owner = NULL WHERE lease_owner = $1",
        )
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
