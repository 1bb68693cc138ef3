//! Group management's statements (find a group, check a membership, create a group, join,
//! leave) and READ's, for PostgreSQL's writer.

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};

use super::rows::{MessageRow, READ_COLUMNS};
use super::{param, tuples, Shared};
use crate::error::Result;
use crate::model::StoredMessage;
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
    for<'n> &'n str: ColumnIndex<DB::Row>,
{
    /// One group's conversation id and name.
    pub(in crate::store) async fn group(
        conn: &mut DB::Connection,
        id: &str,
    ) -> Result<Option<(String, String)>> {
        let sql = "SELECT conversation_id, name FROM groups WHERE id = $1";
        Ok(sqlx::query_as::<DB, (String, String)>(sql)
            .bind(id)
            .fetch_optional(conn)
            .await?)
    }

    /// Is `user` an active member of the conversation?
    pub(in crate::store) async fn is_active_member(
        conn: &mut DB::Connection,
        user: &str,
        conversation: &str,
    ) -> Result<bool> {
        let row: Option<(String,)> = sqlx::query_as(
            "SELECT user_id FROM memberships WHERE user_id = $1 AND conversation_id = $2 AND active = 1",
        )
        .bind(user)
        .bind(conversation)
        .fetch_optional(conn)
        .await?;
        Ok(row.is_some())
    }

    /// Creates a group `(id, name, owner)`, its conversation, and its members' memberships.
    pub(in crate::store) async fn create_group(
        conn: &mut DB::Connection,
        (id, name, owner): (&str, &str, &str),
        conversation: &str,
        members: &[&str],
        now: i64,
    ) -> Result<()> {
        sqlx::query::<DB>(
            "INSERT INTO conversations (id, kind, last_seq, created_at) VALUES ($1, 'group', 0, $2)",
        )
        .bind(conversation)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        sqlx::query::<DB>(
            "INSERT INTO groups (id, name, owner, conversation_id, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(name)
        .bind(owner)
        .bind(conversation)
        .bind(now)
        .execute(&mut *conn)
        .await?;
        let rows: Vec<(&str, &str)> = members.iter().map(|user| (*user, conversation)).collect();
        Self::add_memberships(conn, &rows).await
    }

    /// Makes `members` active members, starting at the conversation's current seq: older
    /// messages stay invisible to them. Active members are left as they are.
    pub(in crate::store) async fn join(
        conn: &mut DB::Connection,
        conversation: &str,
        members: &[&str],
    ) -> Result<()> {
        if members.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO memberships (user_id, conversation_id, joined_seq, acked_seq, active)
             SELECT d.column1, c.id, c.last_seq, c.last_seq, 1
             FROM (VALUES {}) AS d, conversations c WHERE c.id = {}
             ON CONFLICT (user_id, conversation_id) DO UPDATE
             SET joined_seq = excluded.joined_seq, acked_seq = excluded.acked_seq, active = 1
             WHERE memberships.active = 0",
            tuples(members.len(), 1, 1),
            param(members.len() + 1)
        );
        let mut query = sqlx::query::<DB>(&sql);
        for user in members {
            query = query.bind(*user);
        }
        query = query.bind(conversation);
        query.execute(conn).await?;
        Ok(())
    }

    /// Makes `user` a former member of the conversation.
    pub(in crate::store) async fn leave(
        conn: &mut DB::Connection,
        user: &str,
        conversation: &str,
    ) -> Result<()> {
        sqlx::query::<DB>(
            "UPDATE memberships SET active = 0 WHERE user_id = $1 AND conversation_id = $2",
        )
        .bind(user)
        .bind(conversation)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// READ: raises `user`'s `readSeq` in the conversation to `seq`, clamped to the last seq;
    /// `(before, after)`, or `None` when it is not an active member. The row is locked while
    /// it is read, so two pods' READs never move it back.
    pub(in crate::store) async fn mark_read(
        conn: &mut DB::Connection,
        user: &str,
        conversation: &str,
        seq: i64,
    ) -> Result<Option<(i64, i64)>> {
        let found: Option<(i64, i64)> = sqlx::query_as(
            "SELECT m.read_seq, c.last_seq FROM memberships m
             JOIN conversations c ON c.id = m.conversation_id
             WHERE m.user_id = $1 AND m.conversation_id = $2 AND m.active = 1
             FOR UPDATE OF m",
        )
        .bind(user)
        .bind(conversation)
        .fetch_optional(&mut *conn)
        .await?;
        let Some((before, last)) = found else {
            return Ok(None);
        };
        let after = before.max(seq.min(last));
        if after != before {
            sqlx::query::<DB>(
                "UPDATE memberships SET read_seq = $3 WHERE user_id = $1 AND conversation_id = $2",
            )
            .bind(user)
            .bind(conversation)
            .bind(after)
            .execute(conn)
            .await?;
        }
        Ok(Some((before, after)))
    }

    /// The message `message_id` and when it was recalled, its row locked until the
    /// transaction ends (two pods' RECALLs of one message run one after the other).
    pub(in crate::store) async fn message_for_recall(
        conn: &mut DB::Connection,
        message_id: &str,
    ) -> Result<Option<(StoredMessage, Option<i64>)>> {
        let sql = format!("SELECT {READ_COLUMNS} FROM messages WHERE message_id = $1 FOR UPDATE");
        let row: Option<MessageRow> = sqlx::query_as(&sql)
            .bind(message_id)
            .fetch_optional(conn)
            .await?;
        Ok(row.map(|r| {
            let at = r.recalled_at;
            (StoredMessage::from(r), at)
        }))
    }

    /// Makes the message a tombstone.
    pub(in crate::store) async fn recall(
        conn: &mut DB::Connection,
        message_id: &str,
        now: i64,
    ) -> Result<()> {
        sqlx::query::<DB>("UPDATE messages SET recalled_at = $2, body = '' WHERE message_id = $1")
            .bind(message_id)
            .bind(now)
            .execute(conn)
            .await?;
        Ok(())
    }
}
