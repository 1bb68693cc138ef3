//! BLOCK's statements over sqlx: PostgreSQL's writer's (names with the `blocking` flag, the
//! blocks among a run's pairs, recording a block) and both backends' reads (a user's blocks,
//! and which users a viewer may see the presence of).

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Type};

use super::{param, tuples, Shared};
use crate::error::Result;
use crate::store::backend::Backend;

impl<DB> Shared<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'r> i64: Decode<'r, DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// `(user id, display name, blocks anyone)` of those of `ids` that have one.
    pub(in crate::store) async fn names(
        conn: &mut DB::Connection,
        ids: &[&str],
    ) -> Result<Vec<(String, String, bool)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT id, name, blocking FROM users WHERE id IN {}",
            tuples(1, ids.len(), 1)
        );
        let mut query = sqlx::query_as::<DB, (String, String, i64)>(&sql);
        for id in ids {
            query = query.bind(*id);
        }
        let rows = query.fetch_all(conn).await?;
        Ok(rows.into_iter().map(|(i, n, b)| (i, n, b != 0)).collect())
    }

    /// Those of the `(blocker, blocked)` pairs that are blocks.
    pub(in crate::store) async fn blocked_pairs(
        conn: &mut DB::Connection,
        pairs: &[(&str, &str)],
    ) -> Result<Vec<(String, String)>> {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!(
            "SELECT blocker, blocked FROM blocks WHERE (blocker, blocked) IN ({})",
            tuples(pairs.len(), 2, 1)
        );
        let mut query = sqlx::query_as::<DB, (String, String)>(&sql);
        for (blocker, blocked) in pairs {
            query = query.bind(*blocker).bind(*blocked);
        }
        Ok(query.fetch_all(conn).await?)
    }

    /// Records (`on`) or removes the block; returns whether `blocker` blocks anyone now.
    pub(in crate::store) async fn set_block(
        conn: &mut DB::Connection,
        blocker: &str,
        blocked: &str,
        on: bool,
        now: i64,
    ) -> Result<bool> {
        if on {
            sqlx::query::<DB>(
                "INSERT INTO blocks (blocker, blocked, created_at) VALUES ($1, $2, $3)
                 ON CONFLICT (blocker, blocked) DO NOTHING",
            )
            .bind(blocker)
            .bind(blocked)
            .bind(now)
            .execute(&mut *conn)
            .await?;
        } else {
            sqlx::query::<DB>("DELETE FROM blocks WHERE blocker = $1 AND blocked = $2")
                .bind(blocker)
                .bind(blocked)
                .execute(&mut *conn)
                .await?;
        }
        let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM blocks WHERE blocker = $1")
            .bind(blocker)
            .fetch_one(&mut *conn)
            .await?;
        let blocking = i64::from(count > 0);
        // A user who never connected has no row yet: the flag creates it, named by its id
        // until it connects.
        sqlx::query::<DB>(
            "INSERT INTO users (id, name, updated_at, blocking) VALUES ($1, $1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET blocking = excluded.blocking",
        )
        .bind(blocker)
        .bind(now)
        .bind(blocking)
        .execute(&mut *conn)
        .await?;
        Ok(count > 0)
    }

    /// The users `user` blocks, sorted.
    pub(in crate::store) async fn blocked_users(
        pool: &Pool<DB>,
        user: &str,
    ) -> Result<Vec<String>> {
        let mut conn = pool.acquire().await?;
        let rows: Vec<(String,)> =
            sqlx::query_as("SELECT blocked FROM blocks WHERE blocker = $1 ORDER BY blocked")
                .bind(user)
                .fetch_all(&mut *conn)
                .await?;
        Ok(rows.into_iter().map(|(u,)| u).collect())
    }

    /// Those of `users` that share an active conversation with `viewer` and do not block it.
    pub(in crate::store) async fn visible(
        pool: &Pool<DB>,
        viewer: &str,
        users: &[&str],
    ) -> Result<Vec<String>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        let list = tuples(1, users.len(), 2);
        let sql = format!(
            "SELECT DISTINCT o.user_id FROM memberships m
             JOIN memberships o ON o.conversation_id = m.conversation_id AND o.active = 1
             WHERE m.user_id = {viewer} AND m.active = 1 AND o.user_id IN {list}
               AND NOT EXISTS (SELECT 1 FROM blocks b
                               WHERE b.blocker = o.user_id AND b.blocked = {viewer})",
            viewer = param(1),
        );
        let mut query = sqlx::query_as::<DB, (String,)>(&sql).bind(viewer);
        for u in users {
            query = query.bind(*u);
        }
        let mut conn = pool.acquire().await?;
        let rows = query.fetch_all(&mut *conn).await?;
        Ok(rows.into_iter().map(|(u,)| u).collect())
    }
}
