//! Group management's statements (find a group, create a group, join,
//! roles, end memberships, update a group, store its events), READ's and RECALL's, for
//! PostgreSQL's writer.

use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Type};

use super::rows::{target_columns, MessageRow, READ_COLUMNS};
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
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> Option<i64>: Encode<'q, DB>,
    usize: ColumnIndex<DB::Row>,
    for<'n> &'n str: ColumnIndex<DB::Row>,
{
    /// One group's conversation id and name.
    pub(in crate::store) async fn group(
        conn: &mut DB::Connection,
        id: &str,
    ) -> Result<Option<(String, String)>> {
        let sql = "SELECT conversation_id, name FROM groups WHERE id = $1 AND dissolved_at IS NULL";
        Ok(sqlx::query_as::<DB, (String, String)>(sql)
            .bind(id)
            .fetch_optional(conn)
            .await?)
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
             SET joined_seq = excluded.joined_seq, acked_seq = excluded.acked_seq, active = 1,
                 role = 'member', left_seq = NULL
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

    /// The active members of a conversation: `(user, role, joined_seq)`.
    pub(in crate::store) async fn members_with_roles(
        conn: &mut DB::Connection,
        conversation: &str,
    ) -> Result<Vec<(String, String, i64)>> {
        Ok(sqlx::query_as(
            "SELECT user_id, role, joined_seq FROM memberships
             WHERE conversation_id = $1 AND active = 1",
        )
        .bind(conversation)
        .fetch_all(conn)
        .await?)
    }

    /// Sets an active member's role.
    pub(in crate::store) async fn set_role(
        conn: &mut DB::Connection,
        conversation: &str,
        user: &str,
        role: &str,
    ) -> Result<()> {
        sqlx::query::<DB>(
            "UPDATE memberships SET role = $3 WHERE conversation_id = $1 AND user_id = $2",
        )
        .bind(conversation)
        .bind(user)
        .bind(role)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Ends `users`' memberships at the event `left_seq`, which they may still read.
    pub(in crate::store) async fn deactivate(
        conn: &mut DB::Connection,
        conversation: &str,
        users: &[&str],
        left_seq: i64,
    ) -> Result<()> {
        for user in users {
            sqlx::query::<DB>(
                "UPDATE memberships SET active = 0, left_seq = $3
                 WHERE conversation_id = $1 AND user_id = $2 AND active = 1",
            )
            .bind(conversation)
            .bind(*user)
            .bind(left_seq)
            .execute(&mut *conn)
            .await?;
        }
        Ok(())
    }

    /// Changes what is given of a group's name, owner and dissolution time.
    pub(in crate::store) async fn update_group(
        conn: &mut DB::Connection,
        id: &str,
        (name, owner, dissolved_at): (Option<&str>, Option<&str>, Option<i64>),
    ) -> Result<()> {
        sqlx::query::<DB>(
            "UPDATE groups SET name = COALESCE($2, name), owner = COALESCE($3, owner),
                 dissolved_at = COALESCE($4, dissolved_at)
             WHERE id = $1",
        )
        .bind(id)
        .bind(name)
        .bind(owner)
        .bind(dissolved_at)
        .execute(conn)
        .await?;
        Ok(())
    }

    /// Stores a group event: the message, with its `system` JSON.
    pub(in crate::store) async fn insert_event(
        conn: &mut DB::Connection,
        m: &StoredMessage,
        system: &str,
    ) -> Result<()> {
        let (recipient, recipient_name, group_id) = target_columns(m);
        sqlx::query::<DB>(
            "INSERT INTO messages (conversation_id, seq, message_id, sender, sender_name,
                recipient, recipient_name, group_id, body, file_type, client_msg_id,
                request_id, created_at, system)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(m.conversation_id.as_str())
        .bind(m.seq)
        .bind(m.message_id.as_str())
        .bind(m.from.as_str())
        .bind(m.from_name.as_str())
        .bind(recipient)
        .bind(recipient_name)
        .bind(group_id)
        .bind(m.body.as_str())
        .bind(m.file_type)
        .bind(m.client_msg_id.as_deref())
        .bind(m.request_id.as_str())
        .bind(m.created_at)
        .bind(system)
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
