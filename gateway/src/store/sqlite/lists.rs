//! SQLite's hot path: the statements a run of SEND and ACK commands costs, each over a list as
//! long as the run, spelled out as a `VALUES` or `IN` list built for its length.
//!
//! Each statement is a round trip to sqlx's SQLite worker thread, so a run costs a few of them
//! whatever its length; there is no other writer, so nothing is locked row by row (`BEGIN
//! IMMEDIATE` took the database's write lock).

use std::collections::{BTreeMap, HashSet};

use sqlx::{FromRow, Sqlite, SqliteConnection};

use crate::error::Result;
use crate::model::StoredMessage;
use crate::store::plan::{AckPosition, AckTarget, AckWrites};
use crate::store::sql::rows::{target_columns, MessageRow, MESSAGE_COLUMNS, MESSAGE_COLUMNS_M};
use crate::store::sql::tuples;

/// An acked message looked up for its acker.
#[derive(sqlx::FromRow)]
struct AckRow {
    acker: String,
    joined_seq: Option<i64>,
    #[sqlx(flatten)]
    message: MessageRow,
}

/// Runs `sql` over `pairs`: its `{}` becomes a `VALUES` list of them (`column1`, `column2`).
async fn over_pairs<T>(
    conn: &mut SqliteConnection,
    sql: &str,
    pairs: &[(&str, &str)],
) -> Result<Vec<T>>
where
    T: for<'r> FromRow<'r, sqlx::sqlite::SqliteRow> + Send + Unpin,
{
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let sql = sql.replace("{}", &tuples::<Sqlite>(pairs.len(), 2, 1));
    let mut query = sqlx::query_as::<Sqlite, T>(&sql);
    for (a, b) in pairs {
        query = query.bind(*a).bind(*b);
    }
    Ok(query.fetch_all(conn).await?)
}

/// Messages stored under any of the `(sender, clientMsgId)` keys.
pub(super) async fn find_sent(
    conn: &mut SqliteConnection,
    keys: &[(&str, &str)],
) -> Result<Vec<StoredMessage>> {
    // A join against the VALUES list: SQLite plans a row-value IN (VALUES …) as a table scan.
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS_M} FROM (VALUES {{}}) AS d
         JOIN messages m ON m.sender = d.column1 AND m.client_msg_id = d.column2"
    );
    let rows: Vec<MessageRow> = over_pairs(conn, &sql, keys).await?;
    Ok(rows.into_iter().map(StoredMessage::from).collect())
}

/// For each `(user, message id)`: the message, if it exists, and the user's `joined_seq` in
/// its conversation.
pub(super) async fn find_acked(
    conn: &mut SqliteConnection,
    acks: &[(&str, &str)],
) -> Result<Vec<AckTarget>> {
    let sql = format!(
        "SELECT d.column1 AS acker, ms.joined_seq, {MESSAGE_COLUMNS_M} FROM (VALUES {{}}) AS d
         JOIN messages m ON m.message_id = d.column2
         LEFT JOIN memberships ms ON ms.conversation_id = m.conversation_id AND ms.user_id = d.column1"
    );
    let rows: Vec<AckRow> = over_pairs(conn, &sql, acks).await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.acker, r.message.into(), r.joined_seq))
        .collect())
}

/// Every conversation's seqs in one statement: `last_seq += count`.
pub(super) async fn allocate(
    conn: &mut SqliteConnection,
    counts: &BTreeMap<&str, i64>,
) -> Result<Vec<(String, i64)>> {
    if counts.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "UPDATE conversations SET last_seq = conversations.last_seq + d.column2
         FROM (VALUES {}) AS d WHERE conversations.id = d.column1
         RETURNING conversations.id, conversations.last_seq",
        tuples::<Sqlite>(counts.len(), 2, 1)
    );
    let mut query = sqlx::query_as::<Sqlite, (String, i64)>(&sql);
    for (id, n) in counts {
        query = query.bind(*id).bind(*n);
    }
    Ok(query.fetch_all(conn).await?)
}

pub(super) async fn insert_messages(
    conn: &mut SqliteConnection,
    messages: &[&StoredMessage],
) -> Result<()> {
    if messages.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO messages ({MESSAGE_COLUMNS}) VALUES {}",
        tuples::<Sqlite>(messages.len(), 13, 1)
    );
    let mut query = sqlx::query::<Sqlite>(&sql);
    for m in messages {
        let (recipient, recipient_name, group_id) = target_columns(m);
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

/// The `ackedSeq` and parked acks of each `(user, conversation)` that has a membership.
pub(super) async fn positions(
    conn: &mut SqliteConnection,
    pairs: &[(&str, &str)],
) -> Result<Vec<AckPosition>> {
    let sql = "SELECT ms.user_id, ms.conversation_id, ms.acked_seq, a.seq FROM (VALUES {}) AS d
        JOIN memberships ms ON ms.user_id = d.column1 AND ms.conversation_id = d.column2
        LEFT JOIN acks a ON a.user_id = ms.user_id AND a.conversation_id = ms.conversation_id";
    over_pairs(conn, sql, pairs).await
}

/// Writes the folded acks: one statement for each kind of write that has rows.
pub(super) async fn write_acks(conn: &mut SqliteConnection, writes: &AckWrites) -> Result<()> {
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
        let sql = template.replace("{}", &tuples::<Sqlite>(rows.len(), 3, 1));
        let mut query = sqlx::query::<Sqlite>(&sql);
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

/// Marks 1:1 messages delivered; returns the ids delivered for the first time.
pub(super) async fn mark_delivered(
    conn: &mut SqliteConnection,
    ids: &[String],
    now: i64,
) -> Result<HashSet<String>> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let sql = format!(
        "UPDATE messages SET delivered_at = ? WHERE delivered_at IS NULL AND message_id IN {}
         RETURNING message_id",
        tuples::<Sqlite>(1, ids.len(), 2)
    );
    let mut query = sqlx::query_as::<Sqlite, (String,)>(&sql).bind(now);
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
