//! The store's SQL, written once for both backends.
//!
//! Every statement here is one SQLite and PostgreSQL both accept: `$N` parameters (in
//! statements over lists, the dialect's [`Dialect::param`]), `VALUES` lists joined through their
//! `column1…` names, `ON CONFLICT`, `UPDATE … FROM … RETURNING`. Statements over a list are
//! built for its length ([`tuples`]). The methods of [`Sql`] are the store's round trips; its one
//! implementation serves every sqlx driver that can bind and decode the few types the schema
//! uses. What differs between the backends — parameters, how a transaction starts, row locks,
//! retries, caching — is a [`Dialect`].

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use async_trait::async_trait;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, FromRow, IntoArguments, Pool, Type};

use super::plan::{AckPosition, AckTarget, AckWrites};
use super::{Backlog, ConversationSummary, Page, Position};
use crate::error::{Error, Result};
use crate::model::{StoredMessage, Target};

/// What sets one backend apart.
pub trait Dialect: Database {
    /// Starts the writer's transaction.
    const BEGIN: &'static str;
    /// Parameter `n` (from 1) of a statement over lists (see [`tuples`]). PostgreSQL numbers
    /// them, `$N`. SQLite gets plain `?`: sqlx binds a numbered or named SQLite parameter
    /// after looking its name up, a linear search in SQLite — quadratic in the thousands of
    /// parameters of a batch insert (once most of the writer's time).
    fn param(n: usize) -> String;
    const ROW_LOCKS: bool;
    /// How long the writer trusts display names it has read or written (`None`: as long as it
    /// runs, being the database's only writer).
    const NAMES_TTL: Option<Duration>;

    /// May a batch that failed with `e` succeed when run again from the start?
    fn retryable(e: &Error) -> bool;
}

/// The columns of a stored message ([`MessageRow`]).
pub(super) const MESSAGE_COLUMNS: &str = "conversation_id, seq, message_id, sender, sender_name, recipient, recipient_name, group_id, body, file_type, client_msg_id, request_id, created_at";
/// The same, qualified with the `m` alias, for joins.
pub(super) const MESSAGE_COLUMNS_M: &str = "m.conversation_id, m.seq, m.message_id, m.sender, m.sender_name, m.recipient, m.recipient_name, m.group_id, m.body, m.file_type, m.client_msg_id, m.request_id, m.created_at";

/// A row of `messages`, decoded by column name.
#[derive(sqlx::FromRow)]
pub(super) struct MessageRow {
    conversation_id: String,
    seq: i64,
    message_id: String,
    sender: String,
    sender_name: String,
    recipient: Option<String>,
    recipient_name: Option<String>,
    group_id: Option<String>,
    body: String,
    file_type: i64,
    client_msg_id: Option<String>,
    request_id: String,
    created_at: i64,
}

impl From<MessageRow> for StoredMessage {
    fn from(r: MessageRow) -> Self {
        let target = match r.group_id {
            Some(group_id) => Target::Group { group_id },
            None => {
                let to = r.recipient.unwrap_or_default();
                Target::Direct {
                    to_name: r.recipient_name.unwrap_or_else(|| to.clone()),
                    to,
                }
            }
        };
        StoredMessage {
            message_id: r.message_id,
            conversation_id: r.conversation_id,
            seq: r.seq,
            from: r.sender,
            from_name: r.sender_name,
            target,
            body: r.body,
            file_type: r.file_type,
            client_msg_id: r.client_msg_id,
            created_at: r.created_at,
            request_id: r.request_id,
        }
    }
}

/// An acked message looked up for its acker.
#[derive(sqlx::FromRow)]
struct AckRow {
    acker: String,
    joined_seq: Option<i64>,
    #[sqlx(flatten)]
    message: MessageRow,
}

/// The store's round trips. Writes take the writer's connection, inside its transaction;
/// reads take the readers' pool.
#[async_trait]
pub trait Sql: Dialect {
    /// Runs a statement without parameters (`BEGIN`, `COMMIT`, `ROLLBACK`).
    async fn execute(conn: &mut Self::Connection, sql: &str) -> Result<()>;

    /// Records a display name, writing only when it changed.
    async fn upsert_user(conn: &mut Self::Connection, id: &str, name: &str, now: i64)
        -> Result<()>;

    /// Messages stored under any of the `(sender, clientMsgId)` keys.
    async fn find_sent(
        conn: &mut Self::Connection,
        keys: &[(&str, &str)],
    ) -> Result<Vec<StoredMessage>>;

    /// Runs `sql` over `pairs`: its `{}` becomes a `VALUES` list of them (`column1`, `column2`).
    async fn over_pairs<T>(
        conn: &mut Self::Connection,
        sql: &str,
        pairs: &[(&str, &str)],
    ) -> Result<Vec<T>>
    where
        T: for<'r> FromRow<'r, Self::Row> + Send + Unpin;

    /// Runs `select` — two text columns, ending in `IN ` — over the list `ids`.
    async fn pairs_in(
        conn: &mut Self::Connection,
        select: &str,
        ids: &[&str],
    ) -> Result<Vec<(String, String)>>;

    /// `(group id, conversation id)` of those of `ids` that exist.
    async fn find_groups(
        conn: &mut Self::Connection,
        ids: &[&str],
    ) -> Result<Vec<(String, String)>> {
        let select = "SELECT id, conversation_id FROM groups WHERE id IN ";
        Self::pairs_in(conn, select, ids).await
    }

    /// One group's conversation id and name.
    async fn group(conn: &mut Self::Connection, id: &str) -> Result<Option<(String, String)>>;

    /// `(conversation id, user id)` of the active members of the conversations.
    async fn active_members(
        conn: &mut Self::Connection,
        conversations: &[&str],
    ) -> Result<Vec<(String, String)>> {
        let select = "SELECT conversation_id, user_id FROM memberships WHERE active = 1 AND conversation_id IN ";
        Self::pairs_in(conn, select, conversations).await
    }

    /// Is `user` an active member of the conversation?
    async fn is_active_member(
        conn: &mut Self::Connection,
        user: &str,
        conversation: &str,
    ) -> Result<bool>;

    /// `(user id, display name)` of those of `ids` that have one.
    async fn names(conn: &mut Self::Connection, ids: &[&str]) -> Result<Vec<(String, String)>> {
        Self::pairs_in(conn, "SELECT id, name FROM users WHERE id IN ", ids).await
    }

    /// Creates the 1:1 conversations (id → its two users) that do not exist yet, with their
    /// memberships. One that another transaction is creating is waited for, not duplicated.
    async fn create_direct(
        conn: &mut Self::Connection,
        conversations: &BTreeMap<&str, (&str, &str)>,
        now: i64,
    ) -> Result<()>;

    /// Raises each conversation's `last_seq` by its count; returns the new values. With
    /// [`Dialect::ROW_LOCKS`] the rows are locked first, in id order: a concurrent writer waits
    /// for this transaction and then allocates after it — or, if it rolls back, where it started.
    async fn allocate_seqs(
        conn: &mut Self::Connection,
        counts: &BTreeMap<&str, i64>,
    ) -> Result<Vec<(String, i64)>>;

    async fn insert_messages(
        conn: &mut Self::Connection,
        messages: &[&StoredMessage],
    ) -> Result<()>;

    /// For each `(user, message id)`: the message, if it exists, and the user's `joined_seq` in
    /// its conversation.
    async fn find_acked(
        conn: &mut Self::Connection,
        acks: &[(&str, &str)],
    ) -> Result<Vec<AckTarget>>;

    /// With [`Dialect::ROW_LOCKS`], locks the membership rows of `(user, conversation)` pairs
    /// until commit (in sorted order), so that two pods folding acks of one user never
    /// overwrite each other; else nothing. Its own statement: at READ COMMITTED, a statement
    /// that waited for a row lock sees the locked row as committed since, but everything it
    /// joins as it was when the statement began — parked acks another pod just wrote would be
    /// missed by a read in the same statement.
    async fn lock_positions(conn: &mut Self::Connection, pairs: &[(&str, &str)]) -> Result<()>;

    /// The `ackedSeq` and parked acks of each `(user, conversation)` that has a membership,
    /// read after [`Sql::lock_positions`].
    async fn ack_positions(
        conn: &mut Self::Connection,
        pairs: &[(&str, &str)],
    ) -> Result<Vec<AckPosition>>;

    async fn write_acks(conn: &mut Self::Connection, writes: &AckWrites) -> Result<()>;

    /// Marks 1:1 messages delivered; returns the ids delivered for the first time.
    async fn mark_delivered(
        conn: &mut Self::Connection,
        ids: &[String],
        now: i64,
    ) -> Result<HashSet<String>>;

    /// Creates a group, its conversation, and its members' memberships.
    async fn create_group(
        conn: &mut Self::Connection,
        group: (&str, &str, &str),
        conversation: &str,
        members: &[&str],
        now: i64,
    ) -> Result<()>;

    /// Makes `members` active members, starting at the conversation's current seq: older
    /// messages stay invisible to them. Active members are left as they are.
    async fn join(conn: &mut Self::Connection, conversation: &str, members: &[&str]) -> Result<()>;

    async fn leave(conn: &mut Self::Connection, user: &str, conversation: &str) -> Result<()>;

    /// Messages above `after_seq` (and above the user's join point), oldest first. Not an
    /// active member: 403.
    async fn read(
        pool: &Pool<Self>,
        user: &str,
        conversation: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Page>;

    /// The user's join point and the conversation's last seq, read in one statement (so every
    /// message up to that seq is committed). Not an active member: 403.
    async fn position(pool: &Pool<Self>, user: &str, conversation: &str) -> Result<Position>;

    async fn conversations(pool: &Pool<Self>, user: &str) -> Result<Vec<ConversationSummary>>;

    async fn backlog(pool: &Pool<Self>, user: &str) -> Result<Vec<Backlog>>;

    async fn ping(pool: &Pool<Self>) -> Result<()>;
}

/// `($1, $2), ($3, $4), …`: `rows` tuples of `width` parameters, the first numbered `from`. One
/// tuple is an `IN` list; several, a `VALUES` list. In such a statement, parameters appear in
/// the text in the order they are bound (SQLite's `?` are numbered by position).
fn tuples<DB: Dialect>(rows: usize, width: usize, from: usize) -> String {
    let mut sql = String::with_capacity(rows * width * 6);
    for r in 0..rows {
        sql.push_str(if r == 0 { "(" } else { ", (" });
        for c in 0..width {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&DB::param(from + r * width + c));
        }
        sql.push(')');
    }
    sql
}

#[async_trait]
impl<DB> Sql for DB
where
    DB: Dialect,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    for<'q> DB::Arguments<'q>: IntoArguments<'q, DB>,
    for<'q> &'q str: Encode<'q, DB> + Type<DB>,
    for<'q> Option<&'q str>: Encode<'q, DB>,
    for<'q> i64: Encode<'q, DB> + Decode<'q, DB> + Type<DB>,
    for<'r> String: Decode<'r, DB> + Type<DB>,
    usize: ColumnIndex<DB::Row>,
    for<'n> &'n str: ColumnIndex<DB::Row>,
{
    async fn execute(conn: &mut DB::Connection, sql: &str) -> Result<()> {
        sqlx::query::<DB>(sql).execute(conn).await?;
        Ok(())
    }

    async fn upsert_user(conn: &mut DB::Connection, id: &str, name: &str, now: i64) -> Result<()> {
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

    async fn find_sent(
        conn: &mut DB::Connection,
        keys: &[(&str, &str)],
    ) -> Result<Vec<StoredMessage>> {
        // A join against the VALUES list: SQLite plans a row-value IN (VALUES …) as a table scan.
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS_M} FROM (VALUES {{}}) AS d
             JOIN messages m ON m.sender = d.column1 AND m.client_msg_id = d.column2"
        );
        let rows: Vec<MessageRow> = DB::over_pairs(conn, &sql, keys).await?;
        Ok(rows.into_iter().map(StoredMessage::from).collect())
    }

    async fn over_pairs<T>(
        conn: &mut DB::Connection,
        sql: &str,
        pairs: &[(&str, &str)],
    ) -> Result<Vec<T>>
    where
        T: for<'r> FromRow<'r, DB::Row> + Send + Unpin,
    {
        if pairs.is_empty() {
            return Ok(Vec::new());
        }
        let sql = sql.replace("{}", &tuples::<DB>(pairs.len(), 2, 1));
        let mut query = sqlx::query_as::<DB, T>(&sql);
        for (a, b) in pairs {
            query = query.bind(*a).bind(*b);
        }
        Ok(query.fetch_all(conn).await?)
    }

    async fn pairs_in(
        conn: &mut DB::Connection,
        select: &str,
        ids: &[&str],
    ) -> Result<Vec<(String, String)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let sql = format!("{select}{}", tuples::<DB>(1, ids.len(), 1));
        let mut query = sqlx::query_as::<DB, (String, String)>(&sql);
        for id in ids {
            query = query.bind(*id);
        }
        Ok(query.fetch_all(conn).await?)
    }

    async fn group(conn: &mut DB::Connection, id: &str) -> Result<Option<(String, String)>> {
        let sql = "SELECT conversation_id, name FROM groups WHERE id = $1";
        Ok(sqlx::query_as::<DB, (String, String)>(sql)
            .bind(id)
            .fetch_optional(conn)
            .await?)
    }

    async fn is_active_member(
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

    async fn create_direct(
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
            tuples::<DB>(conversations.len(), 4, 1)
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
        if rows.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO memberships (user_id, conversation_id) VALUES {} ON CONFLICT DO NOTHING",
            tuples::<DB>(rows.len(), 2, 1)
        );
        let mut query = sqlx::query::<DB>(&sql);
        for (user, conversation) in rows {
            query = query.bind(user).bind(conversation);
        }
        query.execute(conn).await?;
        Ok(())
    }

    async fn allocate_seqs(
        conn: &mut DB::Connection,
        counts: &BTreeMap<&str, i64>,
    ) -> Result<Vec<(String, i64)>> {
        if counts.is_empty() {
            return Ok(Vec::new());
        }
        if DB::ROW_LOCKS {
            let sql = format!(
                "SELECT id FROM conversations WHERE id IN {} ORDER BY id FOR UPDATE",
                tuples::<DB>(1, counts.len(), 1)
            );
            let mut query = sqlx::query::<DB>(&sql);
            for id in counts.keys() {
                query = query.bind(*id);
            }
            query.execute(&mut *conn).await?;
        }
        // Every conversation's seqs in one statement: last_seq += count.
        let sql = format!(
            "UPDATE conversations SET last_seq = conversations.last_seq + d.column2
             FROM (VALUES {}) AS d WHERE conversations.id = d.column1
             RETURNING conversations.id, conversations.last_seq",
            tuples::<DB>(counts.len(), 2, 1)
        );
        let mut query = sqlx::query_as::<DB, (String, i64)>(&sql);
        for (id, n) in counts {
            query = query.bind(*id).bind(*n);
        }
        Ok(query.fetch_all(conn).await?)
    }

    async fn insert_messages(conn: &mut DB::Connection, messages: &[&StoredMessage]) -> Result<()> {
        if messages.is_empty() {
            return Ok(());
        }
        let sql = format!(
            "INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES {}",
            tuples::<DB>(messages.len(), 13, 1)
        );
        let mut query = sqlx::query::<DB>(&sql);
        for m in messages {
            let (recipient, recipient_name, group_id) = match &m.target {
                Target::Direct { to, to_name } => (Some(to.as_str()), Some(to_name.as_str()), None),
                Target::Group { group_id } => (None, None, Some(group_id.as_str())),
            };
            query = query
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
                .bind(m.created_at);
        }
        query.execute(conn).await?;
        Ok(())
    }

    async fn find_acked(
        conn: &mut DB::Connection,
        acks: &[(&str, &str)],
    ) -> Result<Vec<AckTarget>> {
        let sql = format!(
            "SELECT d.column1 AS acker, ms.joined_seq, {MESSAGE_COLUMNS_M} FROM (VALUES {{}}) AS d
             JOIN messages m ON m.message_id = d.column2
             LEFT JOIN memberships ms ON ms.conversation_id = m.conversation_id AND ms.user_id = d.column1"
        );
        let rows: Vec<AckRow> = DB::over_pairs(conn, &sql, acks).await?;
        Ok(rows
            .into_iter()
            .map(|r| (r.acker, r.message.into(), r.joined_seq))
            .collect())
    }

    async fn lock_positions(conn: &mut DB::Connection, pairs: &[(&str, &str)]) -> Result<()> {
        if DB::ROW_LOCKS {
            let lock = "SELECT ms.user_id, ms.conversation_id FROM (VALUES {}) AS d
                JOIN memberships ms ON ms.user_id = d.column1 AND ms.conversation_id = d.column2
                ORDER BY ms.user_id, ms.conversation_id FOR UPDATE OF ms";
            DB::over_pairs::<(String, String)>(conn, lock, pairs).await?;
        }
        Ok(())
    }

    async fn ack_positions(
        conn: &mut DB::Connection,
        pairs: &[(&str, &str)],
    ) -> Result<Vec<AckPosition>> {
        let sql = "SELECT ms.user_id, ms.conversation_id, ms.acked_seq, a.seq FROM (VALUES {}) AS d
            JOIN memberships ms ON ms.user_id = d.column1 AND ms.conversation_id = d.column2
            LEFT JOIN acks a ON a.user_id = ms.user_id AND a.conversation_id = ms.conversation_id";
        DB::over_pairs(conn, sql, pairs).await
    }

    async fn write_acks(conn: &mut DB::Connection, writes: &AckWrites) -> Result<()> {
        let statements = [
            (
                &writes.advance,
                "UPDATE memberships SET acked_seq = d.column3 FROM (VALUES {}) AS d
                 WHERE memberships.user_id = d.column1 AND memberships.conversation_id = d.column2",
            ),
            (
                &writes.unpark,
                "DELETE FROM acks WHERE (user_id, conversation_id, seq) IN (VALUES {})",
            ),
            (
                &writes.park,
                "INSERT INTO acks (user_id, conversation_id, seq) VALUES {} ON CONFLICT DO NOTHING",
            ),
        ];
        for (rows, template) in statements {
            if rows.is_empty() {
                continue;
            }
            let sql = template.replace("{}", &tuples::<DB>(rows.len(), 3, 1));
            let mut query = sqlx::query::<DB>(&sql);
            for (user, conversation, seq) in rows {
                query = query
                    .bind(user.as_str())
                    .bind(conversation.as_str())
                    .bind(*seq);
            }
            query.execute(&mut *conn).await?;
        }
        Ok(())
    }

    async fn mark_delivered(
        conn: &mut DB::Connection,
        ids: &[String],
        now: i64,
    ) -> Result<HashSet<String>> {
        if ids.is_empty() {
            return Ok(HashSet::new());
        }
        let sql = format!(
            "UPDATE messages SET delivered_at = {} WHERE delivered_at IS NULL AND message_id IN {}
             RETURNING message_id",
            DB::param(1),
            tuples::<DB>(1, ids.len(), 2)
        );
        let mut query = sqlx::query_as::<DB, (String,)>(&sql).bind(now);
        for id in ids {
            query = query.bind(id.as_str());
        }
        Ok(query
            .fetch_all(conn)
            .await?
            .into_iter()
            .map(|(id,)| id)
            .collect())
    }

    async fn create_group(
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
        let sql = format!(
            "INSERT INTO memberships (user_id, conversation_id) VALUES {} ON CONFLICT DO NOTHING",
            tuples::<DB>(members.len(), 2, 1)
        );
        let mut query = sqlx::query::<DB>(&sql);
        for user in members {
            query = query.bind(*user).bind(conversation);
        }
        query.execute(conn).await?;
        Ok(())
    }

    async fn join(conn: &mut DB::Connection, conversation: &str, members: &[&str]) -> Result<()> {
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
            tuples::<DB>(members.len(), 1, 1),
            DB::param(members.len() + 1)
        );
        let mut query = sqlx::query::<DB>(&sql);
        for user in members {
            query = query.bind(*user);
        }
        query = query.bind(conversation);
        query.execute(conn).await?;
        Ok(())
    }

    async fn leave(conn: &mut DB::Connection, user: &str, conversation: &str) -> Result<()> {
        sqlx::query::<DB>(
            "UPDATE memberships SET active = 0 WHERE user_id = $1 AND conversation_id = $2",
        )
        .bind(user)
        .bind(conversation)
        .execute(conn)
        .await?;
        Ok(())
    }

    async fn read(
        pool: &Pool<DB>,
        user: &str,
        conversation: &str,
        after_seq: i64,
        limit: u32,
    ) -> Result<Page> {
        let mut conn = pool.acquire().await?;
        let joined: Option<(i64,)> = sqlx::query_as(
            "SELECT joined_seq FROM memberships WHERE user_id = $1 AND conversation_id = $2 AND active = 1",
        )
        .bind(user)
        .bind(conversation)
        .fetch_optional(&mut *conn)
        .await?;
        let Some((joined,)) = joined else {
            return Err(Error::Forbidden(
                "not a participant of this conversation".into(),
            ));
        };
        let sql = format!(
            "SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
        );
        let rows: Vec<MessageRow> = sqlx::query_as(&sql)
            .bind(conversation)
            .bind(after_seq.max(joined))
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

    async fn position(pool: &Pool<DB>, user: &str, conversation: &str) -> Result<Position> {
        let row: Option<(i64, i64)> = sqlx::query_as(
            "SELECT m.joined_seq, c.last_seq FROM memberships m JOIN conversations c ON c.id = m.conversation_id
             WHERE m.user_id = $1 AND m.conversation_id = $2 AND m.active = 1",
        )
        .bind(user)
        .bind(conversation)
        .fetch_optional(pool)
        .await?;
        let Some((joined_seq, last_seq)) = row else {
            return Err(Error::Forbidden(
                "not a participant of this conversation".into(),
            ));
        };
        Ok(Position {
            joined_seq,
            last_seq,
        })
    }

    async fn conversations(pool: &Pool<DB>, user: &str) -> Result<Vec<ConversationSummary>> {
        type Listed = (
            String,
            i64,
            i64,
            i64,
            String,
            Option<String>,
            Option<String>,
        );
        let rows: Vec<Listed> = sqlx::query_as(
            "SELECT c.id, c.last_seq, m.acked_seq, m.joined_seq, c.kind, g.id, g.name
             FROM memberships m JOIN conversations c ON c.id = m.conversation_id
             LEFT JOIN groups g ON g.conversation_id = c.id
             WHERE m.user_id = $1 AND m.active = 1 ORDER BY c.id",
        )
        .bind(user)
        .fetch_all(pool)
        .await?;
        let mut out = Vec::with_capacity(rows.len());
        for (conversation_id, last_seq, acked, joined, kind, group_id, name) in rows {
            let peer = if kind == "direct" {
                let other: Option<(String,)> = sqlx::query_as(
                    "SELECT user_id FROM memberships WHERE conversation_id = $1 AND user_id <> $2 LIMIT 1",
                )
                .bind(conversation_id.as_str())
                .bind(user)
                .fetch_optional(pool)
                .await?;
                Some(other.map(|(u,)| u).unwrap_or_else(|| user.to_owned()))
            } else {
                None
            };
            out.push(ConversationSummary {
                conversation_id,
                last_seq,
                acked_seq: acked.max(joined),
                kind,
                peer,
                group_id,
                name,
            });
        }
        Ok(out)
    }

    async fn backlog(pool: &Pool<DB>, user: &str) -> Result<Vec<Backlog>> {
        let rows: Vec<(String, i64, i64)> = sqlx::query_as(
            "SELECT c.id, CASE WHEN m.acked_seq > m.joined_seq THEN m.acked_seq ELSE m.joined_seq END, c.last_seq
             FROM memberships m JOIN conversations c ON c.id = m.conversation_id
             WHERE m.user_id = $1 AND m.active = 1 AND c.last_seq > m.acked_seq AND c.last_seq > m.joined_seq
             ORDER BY c.id",
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

    async fn ping(pool: &Pool<DB>) -> Result<()> {
        sqlx::query::<DB>("SELECT 1").execute(pool).await?;
        Ok(())
    }
}
