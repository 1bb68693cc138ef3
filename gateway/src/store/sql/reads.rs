//! The reads, on the readers' pool: a page of a conversation, where a reader stands in it, a
//! user's conversation list and backlog, and the readiness ping.

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Pool, Type};

use super::rows::{MessageRow, FILE_COLUMNS_F, READ_COLUMNS_M};
use super::Shared;
use crate::error::{Error, Result};
use crate::model::StoredMessage;
use crate::store::backend::Backend;
use crate::store::{Backlog, ConversationSummary, Page, Position};

/// A row of [`Shared::conversations`]: id, last seq, acked seq, joined seq, kind, group id,
/// group name, peer, read seq, unread, peer's acked seq, peer's read seq.
#[derive(sqlx::FromRow)]
struct Listed {
    id: String,
    last_seq: i64,
    acked_seq: i64,
    joined_seq: i64,
    kind: String,
    group_id: Option<String>,
    name: Option<String>,
    peer: Option<String>,
    read_seq: i64,
    unread: i64,
    peer_acked_seq: Option<i64>,
    peer_read_seq: Option<i64>,
}

impl<DB> Shared<DB>
where
    DB: Backend,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'n> &'n str: ColumnIndex<DB::Row>,
{
    /// Up to `limit` messages of `conversation` in `(after_seq, up_to]`, and whether more follow.
    async fn page(
        conn: &mut DB::Connection,
        conversation: &str,
        after_seq: i64,
        up_to: i64,
        limit: u32,
    ) -> Result<Page> {
        let sql = format!(
            "SELECT {READ_COLUMNS_M}, {FILE_COLUMNS_F} FROM messages m
             LEFT JOIN files f ON f.id = m.file_id AND m.recalled_at IS NULL
             WHERE m.conversation_id = $1 AND m.seq > $2 AND m.seq <= $3 ORDER BY m.seq LIMIT $4"
        );
        let rows: Vec<MessageRow> = sqlx::query_as(&sql)
            .bind(conversation)
            .bind(after_seq)
            .bind(up_to)
            .bind(i64::from(limit) + 1)
            .fetch_all(&mut *conn)
            .await?;
        let has_more = rows.len() > limit as usize;
        Ok(Page {
            messages: rows
                .into_iter()
                .take(limit as usize)
                .map(StoredMessage::from)
                .collect(),
            has_more,
        })
    }

    /// Messages above `after_seq`, oldest first, whoever takes part. No such conversation: 404.
    pub(in crate::store) async fn history(
        pool: &Pool<DB>,
        conversation: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Page> {
        let mut conn = pool.acquire().await?;
        let found: Option<(i64,)> =
            sqlx::query_as("SELECT last_seq FROM conversations WHERE id = $1")
                .bind(conversation)
                .fetch_optional(&mut *conn)
                .await?;
        if found.is_none() {
            return Err(Error::NotFound(format!("no conversation {conversation}")));
        }
        Self::page(&mut conn, conversation, after_seq, i64::MAX, limit).await
    }

    /// Messages above `after_seq` (and above the user's join point), oldest first. Not an
    /// active member: 403.
    pub(in crate::store) async fn read(
        pool: &Pool<DB>,
        user: &str,
        conversation: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Page> {
        let mut conn = pool.acquire().await?;
        // A former member still reads up to the event that ended its membership (left_seq).
        let joined: Option<(i64, Option<i64>)> = sqlx::query_as(
            "SELECT joined_seq, CASE WHEN active = 1 THEN NULL ELSE left_seq END FROM memberships
             WHERE user_id = $1 AND conversation_id = $2 AND (active = 1 OR left_seq IS NOT NULL)",
        )
        .bind(user)
        .bind(conversation)
        .fetch_optional(&mut *conn)
        .await?;
        let Some((joined, left)) = joined else {
            return Err(not_a_participant());
        };
        Self::page(
            &mut conn,
            conversation,
            after_seq.max(joined),
            left.unwrap_or(i64::MAX),
            limit,
        )
        .await
    }

    /// The user's join point and the conversation's last seq, read in one statement (so every
    /// message up to that seq is committed). Not an active member: 403.
    pub(in crate::store) async fn position(
        pool: &Pool<DB>,
        user: &str,
        conversation: &str,
    ) -> Result<Position> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT m.joined_seq,
                 CASE WHEN m.active = 1 OR m.left_seq > c.last_seq THEN c.last_seq ELSE m.left_seq END
             FROM memberships m JOIN conversations c ON c.id = m.conversation_id
             WHERE m.user_id = $1 AND m.conversation_id = $2
               AND (m.active = 1 OR m.left_seq IS NOT NULL)",
        )
        .bind(user)
        .bind(conversation)
        .fetch_optional(pool)
        .await?;
        let Some((joined_seq, last_seq)) = row else {
            return Err(not_a_participant());
        };
        Ok(Position {
            joined_seq,
            last_seq,
        })
    }

    /// The user's active conversations, by id, in one statement: a 1:1 conversation's peer is
    /// its other member (the user itself when it talks to itself).
    pub(in crate::store) async fn conversations(
        pool: &Pool<DB>,
        user: &str,
    ) -> Result<Vec<ConversationSummary>> {
        // The peer of a 1:1 conversation is its other member (the user itself when it talks to
        // itself); unread counts others' messages above the read seq and the join point, on the
        // (conversation_id, seq) key.
        let rows: Vec<Listed> = sqlx::query_as(
            "SELECT c.id, c.last_seq, m.acked_seq, m.joined_seq, c.kind, g.id AS group_id, g.name,
                 COALESCE(p.user_id, CASE WHEN c.kind = 'direct' THEN m.user_id END) AS peer,
                 m.read_seq,
                 (SELECT COUNT(*) FROM messages x WHERE x.conversation_id = c.id
                   AND x.seq > CASE WHEN m.read_seq > m.joined_seq THEN m.read_seq ELSE m.joined_seq END
                   AND x.sender <> m.user_id) AS unread,
                 p.acked_seq AS peer_acked_seq, p.read_seq AS peer_read_seq
             FROM memberships m JOIN conversations c ON c.id = m.conversation_id
             LEFT JOIN groups g ON g.conversation_id = c.id
             LEFT JOIN memberships p ON c.kind = 'direct' AND p.conversation_id = c.id
                 AND p.user_id <> m.user_id
             WHERE m.user_id = $1 AND m.active = 1 ORDER BY c.id",
        )
        .bind(user)
        .fetch_all(pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| ConversationSummary {
                conversation_id: r.id,
                last_seq: r.last_seq,
                acked_seq: r.acked_seq.max(r.joined_seq),
                kind: r.kind,
                peer: r.peer,
                group_id: r.group_id,
                name: r.name,
                read_seq: r.read_seq.max(r.joined_seq),
                unread: r.unread,
                peer_acked_seq: r.peer_acked_seq,
                peer_read_seq: r.peer_read_seq,
            })
            .collect())
    }

    /// The active members of a conversation `user` is an active member of (itself included).
    /// Not one: 403.
    pub(in crate::store) async fn participants(
        pool: &Pool<DB>,
        user: &str,
        conversation: &str,
    ) -> Result<Vec<String>> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT p.user_id FROM memberships m
             JOIN memberships p ON p.conversation_id = m.conversation_id AND p.active = 1
             WHERE m.user_id = $1 AND m.conversation_id = $2 AND m.active = 1",
        )
        .bind(user)
        .bind(conversation)
        .fetch_all(pool)
        .await?;
        if rows.is_empty() {
            return Err(not_a_participant());
        }
        Ok(rows.into_iter().map(|(u,)| u).collect())
    }

    /// Conversations where the user has messages above its `ackedSeq` and its join point.
    pub(in crate::store) async fn backlog(pool: &Pool<DB>, user: &str) -> Result<Vec<Backlog>> {
        // Former members' conversations too, up to the event that ended the membership.
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT id, after_seq, last_seq FROM (
                 SELECT c.id AS id,
                     CASE WHEN m.acked_seq > m.joined_seq THEN m.acked_seq ELSE m.joined_seq END
                         AS after_seq,
                     CASE WHEN m.active = 1 THEN c.last_seq ELSE m.left_seq END AS last_seq
                 FROM memberships m JOIN conversations c ON c.id = m.conversation_id
                 WHERE m.user_id = $1 AND (m.active = 1 OR m.left_seq IS NOT NULL)) AS b
             WHERE last_seq > after_seq ORDER BY id",
        )
        .bind(user)
        .fetch_all(pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(conversation_id, after_seq, last_seq)| Backlog {
                conversation_id,
                after_seq,
                last_seq,
            })
            .collect())
    }

    /// Does the database answer a query?
    pub(in crate::store) async fn ping(pool: &Pool<DB>) -> Result<()> {
        sqlx::query::<DB>("SELECT 1").execute(pool).await?;
        Ok(())
    }
}

fn not_a_participant() -> Error {
    Error::Forbidden("not a participant of this conversation".into())
}
