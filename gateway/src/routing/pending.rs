//! The durable record of fan-outs that failed (table `pending_fanouts`), so that one waiting in
//! a pod's retry queue is not lost with the pod.
//!
//! A row is written only when a stored message's fan-out failed (the bus refused a target pod's
//! event, or the route lookup failed) and the fan-out went to the retry queue; it is deleted
//! when the retry goes through. Nothing is written while fan-outs succeed. The pod that wrote a
//! row holds its lease (`lease_until`, ms) and renews it while the fan-out waits in its queue;
//! a pod SIGKILLed stops renewing, and once the lease has run out any live pod's sweeper claims
//! the row and pushes the message to the devices it names (`crate::routing::sweep`).
//!
//! One [`PendingFanouts`] trait, one implementation over sqlx for both databases
//! ([`SqlPending`]), claimed as the webhook's deliveries are (`crate::webhook::queue`):
//! PostgreSQL skips rows another pod is claiming (`FOR UPDATE SKIP LOCKED`), SQLite's claim is
//! one atomic statement.

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Pool, Type};

use crate::error::Result;

/// One failed fan-out to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPending {
    /// The stored message.
    pub message_id: String,
    /// The pod whose inbox refused the event; empty when the route lookup failed.
    pub target: String,
    /// The stored message as JSON (as on the bus).
    pub message: String,
    /// Who must get it, as JSON ([`super::sweep::Recipients`]).
    pub recipients: String,
}

/// A row a sweeper claimed: it pushes the message, then removes or reschedules the row.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedPending {
    /// The stored message.
    pub message_id: String,
    /// The process that recorded it.
    pub origin: String,
    /// The pod whose inbox refused it; empty when the route lookup failed.
    pub target: String,
    /// The stored message as JSON.
    pub message: String,
    /// Who must get it, as JSON.
    pub recipients: String,
    /// When it was recorded (ms).
    pub created_at: i64,
    /// Sweeps that failed before this one.
    pub attempts: i64,
}

/// Where failed fan-outs are recorded (see the module docs).
#[async_trait]
pub trait PendingFanouts: Send + Sync + 'static {
    /// Records `rows` for `origin` at `now`, leased by it until `lease_until`; a row already
    /// recorded for the same (message, origin, target) stays as it is.
    async fn record(
        &self,
        rows: &[NewPending],
        origin: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<()>;

    /// Removes the rows of `origin` for these (message, target) pairs: their fan-outs went out.
    async fn remove(&self, origin: &str, keys: &[(String, String)]) -> Result<()>;

    /// Extends every lease `owner` holds to `lease_until`.
    async fn renew(&self, owner: &str, lease_until: i64) -> Result<()>;

    /// Whether some row is due at `now` (no live lease): a read, so an idle sweep writes nothing.
    async fn any_due(&self, now: i64) -> Result<bool>;

    /// Claims up to `limit` due rows for `owner` until `lease_until`.
    async fn claim(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedPending>>;

    /// Removes one claimed row: pushed, or given up on.
    async fn finish(&self, row: &ClaimedPending) -> Result<()>;

    /// Counts a failed sweep of `row` and makes it due again at `next_at`, lease released.
    async fn reschedule(&self, row: &ClaimedPending, next_at: i64) -> Result<()>;

    /// Releases every lease `owner` holds (a graceful stop: others need not wait for them).
    async fn release(&self, owner: &str) -> Result<()>;

    /// How many rows there are (the `chat_pending_fanouts` gauge).
    async fn count(&self) -> Result<i64>;
}

/// What differs between the databases.
pub trait Dialect: Database {
    /// Claims due rows: `$1` owner, `$2` now, `$3` lease end, `$4` limit; returns the
    /// [`ClaimedPending`] columns.
    const CLAIM: &'static str;
}

/// The rows due at `$2`, oldest first, at most `$4`.
macro_rules! due {
    ($lock:literal) => {
        concat!(
            "UPDATE pending_fanouts SET lease_owner = $1, lease_until = $3
            WHERE (message_id, origin, target) IN (
                SELECT message_id, origin, target FROM pending_fanouts
                WHERE lease_until <= $2 AND next_at <= $2 ORDER BY created_at LIMIT $4",
            $lock,
            ")
            RETURNING message_id, origin, target, message, recipients, created_at, attempts"
        )
    };
}

impl Dialect for sqlx::Sqlite {
    const CLAIM: &'static str = due!("");
}

impl Dialect for sqlx::Postgres {
    const CLAIM: &'static str = due!(" FOR UPDATE SKIP LOCKED");
}

/// The [`PendingFanouts`] over a sqlx pool of the store's database.
pub struct SqlPending<DB: Database> {
    pool: Pool<DB>,
}

impl<DB: Database> SqlPending<DB> {
    /// The record on `pool` (migrations have run: the store opened first).
    pub fn new(pool: Pool<DB>) -> Self {
        Self { pool }
    }
}

#[async_trait]
impl<DB> PendingFanouts for SqlPending<DB>
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
    async fn record(
        &self,
        rows: &[NewPending],
        origin: &str,
        now: i64,
        lease_until: i64,
    ) -> Result<()> {
        // One statement per row: rows are few (one per failed fan-out, not per recipient), and
        // a transaction makes them one commit.
        let mut tx = self.pool.begin().await?;
        for r in rows {
            sqlx::query::<DB>(
                "INSERT INTO pending_fanouts (message_id, origin, target, message, recipients,
                     created_at, next_at, lease_until, lease_owner)
                 VALUES ($1, $2, $3, $4, $5, $6, $6, $7, $2)
                 ON CONFLICT (message_id, origin, target) DO NOTHING",
            )
            .bind(r.message_id.as_str())
            .bind(origin)
            .bind(r.target.as_str())
            .bind(r.message.as_str())
            .bind(r.recipients.as_str())
            .bind(now)
            .bind(lease_until)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn remove(&self, origin: &str, keys: &[(String, String)]) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        for (message_id, target) in keys {
            sqlx::query::<DB>(
                "DELETE FROM pending_fanouts
                 WHERE message_id = $1 AND origin = $2 AND target = $3",
            )
            .bind(message_id.as_str())
            .bind(origin)
            .bind(target.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn renew(&self, owner: &str, lease_until: i64) -> Result<()> {
        sqlx::query::<DB>("UPDATE pending_fanouts SET lease_until = $2 WHERE lease_owner = $1")
            .bind(owner)
            .bind(lease_until)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn any_due(&self, now: i64) -> Result<bool> {
        let row: Option<(i64,)> = sqlx::query_as(
            "SELECT attempts FROM pending_fanouts
             WHERE lease_until <= $1 AND next_at <= $1 LIMIT 1",
        )
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.is_some())
    }

    async fn claim(
        &self,
        owner: &str,
        now: i64,
        lease_until: i64,
        limit: u32,
    ) -> Result<Vec<ClaimedPending>> {
        type Row = (String, String, String, String, String, i64, i64);
        let rows: Vec<Row> = sqlx::query_as(DB::CLAIM)
            .bind(owner)
            .bind(now)
            .bind(lease_until)
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        Ok(rows
            .into_iter()
            .map(
                |(message_id, origin, target, message, recipients, created_at, attempts)| {
                    ClaimedPending {
                        message_id,
                        origin,
                        target,
                        message,
                        recipients,
                        created_at,
                        attempts,
                    }
                },
            )
            .collect())
    }

    async fn finish(&self, row: &ClaimedPending) -> Result<()> {
        sqlx::query::<DB>(
            "DELETE FROM pending_fanouts WHERE message_id = $1 AND origin = $2 AND target = $3",
        )
        .bind(row.message_id.as_str())
        .bind(row.origin.as_str())
        .bind(row.target.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn reschedule(&self, row: &ClaimedPending, next_at: i64) -> Result<()> {
        sqlx::query::<DB>(
            "UPDATE pending_fanouts SET attempts = attempts + 1, next_at = $4,
                 lease_until = 0, lease_owner = NULL
             WHERE message_id = $1 AND origin = $2 AND target = $3",
        )
        .bind(row.message_id.as_str())
        .bind(row.origin.as_str())
        .bind(row.target.as_str())
        .bind(next_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn release(&self, owner: &str) -> Result<()> {
        sqlx::query::<DB>(
            "UPDATE pending_fanouts SET lease_until = 0, lease_owner = NULL WHERE lease_owner = $1",
        )
        .bind(owner)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn count(&self) -> Result<i64> {
        let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM pending_fanouts")
            .fetch_one(&self.pool)
            .await?;
        Ok(n)
    }
}
