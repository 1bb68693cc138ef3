//! The writer's shared statements: transaction control, display names, the lookups of groups,
//! members and names a run of sends needs, and new 1:1 conversations.

use std::collections::BTreeMap;

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};

use super::{tuples, Shared};
use crate::error::Result;
use crate::store::backend::Backend;

impl<DB> Shared<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
{
    /// Runs a statement without parameters (`BEGIN`, `COMMIT`, `ROLLBACK`).
    pub(in crate::store) async fn execute(conn: &mut DB::Connection, sql: &str) -> Result<()> {
        sqlx::query::<DB>(sql).execute(conn).await?;
        Ok(())
    }

    /// Records a display name, writing only when it changed.
    pub(in crate::store) async fn upsert_user(
        conn: &mut DB::Connection,
        id: &str,
        name: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query::<DB>(
            "INSERT INTO users (id, name, updated_at) VALUES ($1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name, updated_at = excluded.updated_at
             WHERE users.name <> excluded.name",
        )
        .bind(id)
        .bind(name)
        .bind(now)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Runs `select` — two text columns, ending in `IN ` — over the list `ids`.
    async fn pairs_in(
        conn: &mut DB::Connection,
        select: &str,
        ids: &[&str],
    ) -> Result<Vec<(String, String)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!("{select}{}", tuples(1, ids.len(), 1));
        let mut query = sqlx::query_as::<DB, (String, String)>(&sql);
        for id in ids {
            query = query.bind(*id);
        }
        Ok(query.fetch_all(conn).await?)
    }

    /// `(group id, conversation id)` of those of `ids` that exist.
    pub(in crate::store) async fn find_groups(
        conn: &mut DB::Connection,
        ids: &[&str],
    ) -> Result<Vec<(String, String)>> {
        let select = "SELECT id, conversation_id FROM groups WHERE dissolved_at IS NULL AND id IN ";
        Self::pairs_in(conn, select, ids).await
    }

    /// `(conversation id, user id)` of the active members of the conversations.
    pub(in crate::store) async fn active_members(
        conn: &mut DB::Connection,
        conversations: &[&str],
    ) -> Result<Vec<(String, String)>> {
        let select = "SELECT conversation_id, user_id FROM memberships WHERE active = 1 AND conversation_id IN ";
        Self::pairs_in(conn, select, conversations).await
    }

    /// Creates the 1:1 conversations (id → its two users) that do not exist yet, with their
    /// memberships. One that another transaction is creating is waited for, not duplicated.
    pub(in crate::store) async fn create_direct(
        conn: &mut DB::Connection,
        conversations: &BTreeMap<&str, (&str, &str)>,
        now: i64,
    ) -> Result<()> {
        if conversations.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO conversations (id, kind, last_seq, created_at) VALUES {}
             ON CONFLICT (id) DO NOTHING RETURNING id",
            tuples(conversations.len(), 4, 1)
        );
        let mut query = sqlx::query_as::<DB, (String,)>(&sql);
        for id in conversations.keys() {
            query = query.bind(*id).bind("direct").bind(0i64).bind(now);
        }
        let created = query.fetch_all(&mut *conn).await?;
        // Memberships only for the conversations this transaction created: one that another
        // writer created first came with its own.
        let mut rows: Vec<(&str, &str)> = Vec::new();
        for (id,) in &created {
            let (a, b) = conversations[id.as_str()];
            rows.push((a, id.as_str()));
            if a != b {
                rows.push((b, id.as_str()));
            }
        }
        Self::add_memberships(conn, &rows).await
    }

    /// Inserts `(user, conversation)` memberships that do not exist yet.
    pub(super) async fn add_memberships(
        conn: &mut DB::Connection,
        rows: &[(&str, &str)],
    ) -> Result<()> {
        if rows.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO memberships (user_id, conversation_id) VALUES {} ON CONFLICT DO NOTHING",
            tuples(rows.len(), 2, 1)
        );
        let mut query = sqlx::query::<DB>(&sql);
        for (user, conversation) in rows {
            query = query.bind(*user).bind(*conversation);
        }
        query.execute(conn).await?;
        Ok(())
    }
}
