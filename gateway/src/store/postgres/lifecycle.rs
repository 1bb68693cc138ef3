//! The data lifecycle's statements (DESIGN §11) on PostgreSQL's writer: retention's purge and a
//! user's erasure.

use sqlx::PgConnection;

use crate::error::Result;

/// Deletes up to `limit` messages whose id sorts before `before_id` (ids are time-ordered),
/// oldest first.
pub(super) async fn purge(conn: &mut PgConnection, before_id: &str, limit: i64) -> Result<u64> {
    let done = sqlx::query(
        "DELETE FROM messages WHERE message_id IN
             (SELECT message_id FROM messages WHERE message_id < $1 ORDER BY message_id LIMIT $2)",
    )
    .bind(before_id)
    .bind(limit)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

/// The groups `user` is an active member of.
pub(super) async fn groups_of(conn: &mut PgConnection, user: &str) -> Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(
        "SELECT g.id FROM memberships m JOIN groups g ON g.conversation_id = m.conversation_id
         WHERE m.user_id = $1 AND m.active = 1 AND g.dissolved_at IS NULL ORDER BY g.id",
    )
    .bind(user)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(g,)| g).collect())
}

/// Makes `user`'s messages tombstones and drops its memberships, parked acks and name; returns
/// how many messages, and the conversations they are in.
pub(super) async fn erase_rows(
    conn: &mut PgConnection,
    user: &str,
    now: i64,
) -> Result<(u64, Vec<String>)> {
    let conversations: Vec<(String,)> =
        sqlx::query_as("SELECT DISTINCT conversation_id FROM messages WHERE sender = $1")
            .bind(user)
            .fetch_all(&mut *conn)
            .await?;
    let done = sqlx::query(
        "UPDATE messages SET body = '', recalled_at = COALESCE(recalled_at, $2) WHERE sender = $1",
    )
    .bind(user)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    for sql in [
        "DELETE FROM acks WHERE user_id = $1",
        "DELETE FROM blocks WHERE blocker = $1 OR blocked = $1",
        "DELETE FROM memberships WHERE user_id = $1",
        "DELETE FROM users WHERE id = $1",
    ] {
        sqlx::query(sql).bind(user).execute(&mut *conn).await?;
    }
    let conversations = conversations.into_iter().map(|(c,)| c).collect();
    Ok((done.rows_affected(), conversations))
}
