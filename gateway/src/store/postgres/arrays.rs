//! PostgreSQL's hot path: one fixed statement per step of a run of SEND and ACK commands, each
//! list bound as arrays (one per column) and read back with `unnest`, 7 round trips a run.
//!
//! Every statement is a round trip to another process, and one statement per list length meant a
//! prepared statement per shape and a plan per parameter. A fixed text is prepared once per connection and planned
//! cheaply — a `VALUES` list of a batch's hundreds of parameters took PostgreSQL longer to plan
//! than to run — and steps that can share a round trip do: the lookups of sends and acks;
//! locking and bumping the seqs; inserting the messages and locking the memberships; writing the
//! acks and marking deliveries.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use sqlx::PgConnection;

use crate::error::Result;
use crate::model::StoredMessage;
use crate::store::plan::{AckPosition, AckTarget, AckWrites, Mark};
use crate::store::sql::rows::{target_columns, MessageRow, MESSAGE_COLUMNS, MESSAGE_COLUMNS_M};

/// [`look_up`]: the sends' duplicates (rows without an acker) and the acked messages.
static LOOK_UP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT NULL::text AS acker, NULL::int8 AS joined_seq, {MESSAGE_COLUMNS_M}
         FROM unnest($1::text[], $2::text[]) AS d(sender, client_msg_id)
         JOIN messages m ON m.sender = d.sender AND m.client_msg_id = d.client_msg_id
         UNION ALL
         SELECT d.acker,
             CASE WHEN ms.active = 1 OR m.seq <= ms.left_seq THEN ms.joined_seq END AS joined_seq,
             {MESSAGE_COLUMNS_M}
         FROM unnest($3::text[], $4::text[]) AS d(acker, message_id)
         JOIN messages m ON m.message_id = d.message_id
         LEFT JOIN memberships ms ON ms.conversation_id = m.conversation_id AND ms.user_id = d.acker"
    )
});

/// [`insert_and_lock`]: the insert runs whether or not the main statement reads it; the lock is
/// the main statement, so that the read after it ([`positions`]) is a statement of its own, as
/// [`Backend::positions`](crate::store::backend::Backend::positions) explains. The messages' file ids
/// came later than the rest, so they are the last parameter (`$16`).
static INSERT_AND_LOCK: LazyLock<String> = LazyLock::new(|| {
    format!(
        "WITH inserted AS (
             INSERT INTO messages ({MESSAGE_COLUMNS}, file_id) SELECT * FROM unnest(
                 $1::text[], $2::int8[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                 $8::text[], $9::text[], $10::int8[], $11::text[], $12::text[], $13::int8[],
                 $16::text[])
         )
         SELECT ms.user_id FROM unnest($14::text[], $15::text[]) AS d(user_id, conversation_id)
         JOIN memberships ms ON ms.user_id = d.user_id AND ms.conversation_id = d.conversation_id
         ORDER BY ms.user_id, ms.conversation_id FOR UPDATE OF ms"
    )
});

/// [`Backend::look_up`](crate::store::backend::Backend::look_up) in one statement.
pub(super) async fn look_up(
    conn: &mut PgConnection,
    keys: &[(&str, &str)],
    acks: &[(&str, &str)],
) -> Result<(Vec<StoredMessage>, Vec<AckTarget>)> {
    if keys.is_empty() && acks.is_empty() {
        return Ok(Default::default());
    }
    let (senders, client_ids) = columns2(keys);
    let (ackers, acked_ids) = columns2(acks);
    let rows: Vec<FoundRow> = sqlx::query_as(&LOOK_UP)
        .bind(senders)
        .bind(client_ids)
        .bind(ackers)
        .bind(acked_ids)
        .fetch_all(conn)
        .await?;
    let (mut existing, mut found) = (Vec::new(), Vec::new());
    for row in rows {
        match row.acker {
            None => existing.push(row.message.into()),
            Some(acker) => found.push((acker, row.message.into(), row.joined_seq)),
        }
    }
    Ok((existing, found))
}

/// [`Backend::allocate`](crate::store::backend::Backend::allocate): locks the conversations' rows in id order, then bumps them.
pub(super) async fn allocate(
    conn: &mut PgConnection,
    counts: &BTreeMap<&str, i64>,
) -> Result<Vec<(String, i64)>> {
    if counts.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<&str> = counts.keys().copied().collect();
    let adds: Vec<i64> = counts.values().copied().collect();
    // `locked` takes the rows' locks in id order (the lock is taken as the sorted rows come
    // out), and the UPDATE only touches rows it already holds. A row another pod's writer
    // had locked is waited for; once that commits, the UPDATE adds to its newest last_seq
    // (READ COMMITTED re-reads an updated row before changing it).
    let sql = "WITH locked AS MATERIALIZED (
             SELECT c.id FROM conversations c WHERE c.id = ANY($1::text[]) ORDER BY c.id FOR UPDATE
         )
         UPDATE conversations SET last_seq = conversations.last_seq + d.n
         FROM unnest($1::text[], $2::int8[]) AS d(id, n) JOIN locked ON locked.id = d.id
         WHERE conversations.id = d.id
         RETURNING conversations.id, conversations.last_seq";
    Ok(sqlx::query_as(sql)
        .bind(ids)
        .bind(adds)
        .fetch_all(conn)
        .await?)
}

/// [`Backend::insert_and_lock`](crate::store::backend::Backend::insert_and_lock) in one statement.
pub(super) async fn insert_and_lock(
    conn: &mut PgConnection,
    messages: &[&StoredMessage],
    pairs: &[(&str, &str)],
) -> Result<()> {
    if messages.is_empty() && pairs.is_empty() {
        return Ok(());
    }
    let n = messages.len();
    let mut conversation = Vec::with_capacity(n);
    let mut seq = Vec::with_capacity(n);
    let mut message_id = Vec::with_capacity(n);
    let mut sender = Vec::with_capacity(n);
    let mut sender_name = Vec::with_capacity(n);
    let mut recipient = Vec::with_capacity(n);
    let mut recipient_name = Vec::with_capacity(n);
    let mut group_id = Vec::with_capacity(n);
    let mut body = Vec::with_capacity(n);
    let mut file_type = Vec::with_capacity(n);
    let mut client_msg_id = Vec::with_capacity(n);
    let mut request_id = Vec::with_capacity(n);
    let mut created_at = Vec::with_capacity(n);
    let mut file_id = Vec::with_capacity(n);
    for m in messages {
        let (to, to_name, group) = target_columns(m);
        conversation.push(m.conversation_id.as_str());
        seq.push(m.seq);
        message_id.push(m.message_id.as_str());
        sender.push(m.from.as_str());
        sender_name.push(m.from_name.as_str());
        recipient.push(to);
        recipient_name.push(to_name);
        group_id.push(group);
        body.push(m.body.as_str());
        file_type.push(m.file_type);
        client_msg_id.push(m.client_msg_id.as_deref());
        request_id.push(m.request_id.as_str());
        created_at.push(m.created_at);
        file_id.push(m.file.as_ref().map(|f| f.file_id.as_str()));
    }
    let (users, conversations) = columns2(pairs);
    sqlx::query(&INSERT_AND_LOCK)
        .bind(conversation)
        .bind(seq)
        .bind(message_id)
        .bind(sender)
        .bind(sender_name)
        .bind(recipient)
        .bind(recipient_name)
        .bind(group_id)
        .bind(body)
        .bind(file_type)
        .bind(client_msg_id)
        .bind(request_id)
        .bind(created_at)
        .bind(users)
        .bind(conversations)
        .bind(file_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// [`Backend::positions`](crate::store::backend::Backend::positions).
pub(super) async fn positions(
    conn: &mut PgConnection,
    pairs: &[(&str, &str)],
) -> Result<Vec<AckPosition>> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let (users, conversations) = columns2(pairs);
    Ok(sqlx::query_as(
        "SELECT ms.user_id, ms.conversation_id, ms.acked_seq, a.seq
         FROM unnest($1::text[], $2::text[]) AS d(user_id, conversation_id)
         JOIN memberships ms ON ms.user_id = d.user_id AND ms.conversation_id = d.conversation_id
         LEFT JOIN acks a ON a.user_id = ms.user_id AND a.conversation_id = ms.conversation_id",
    )
    .bind(users)
    .bind(conversations)
    .fetch_all(conn)
    .await?)
}

/// [`Backend::settle`](crate::store::backend::Backend::settle) in one statement.
pub(super) async fn settle(conn: &mut PgConnection, writes: &AckWrites) -> Result<()> {
    if writes.is_empty() {
        return Ok(());
    }
    let memberships = writes.memberships();
    let users: Vec<&str> = memberships.iter().map(|m| m.0).collect();
    let conversations: Vec<&str> = memberships.iter().map(|m| m.1).collect();
    let acked: Vec<i64> = memberships.iter().map(|m| m.2).collect();
    let read: Vec<i64> = memberships.iter().map(|m| m.3).collect();
    let (unpark_u, unpark_c, unpark_s) = columns3(&writes.unpark);
    let (park_u, park_c, park_s) = columns3(&writes.park);
    // Every write in one statement (data-modifying CTEs run whether or not they are read).
    // An ack is parked or unparked, never both in one batch, so the two never meet a row; each
    // membership row is named once (PostgreSQL applies one update of a row per statement).
    let sql = "WITH advance AS (
             UPDATE memberships
             SET acked_seq = GREATEST(memberships.acked_seq, d.acked),
                 read_seq = GREATEST(memberships.read_seq, d.read)
             FROM unnest($1::text[], $2::text[], $3::int8[], $4::int8[])
                 AS d(user_id, conversation_id, acked, read)
             WHERE memberships.user_id = d.user_id AND memberships.conversation_id = d.conversation_id
         ), unpark AS (
             DELETE FROM acks
             USING unnest($5::text[], $6::text[], $7::int8[]) AS d(user_id, conversation_id, seq)
             WHERE acks.user_id = d.user_id AND acks.conversation_id = d.conversation_id AND acks.seq = d.seq
         )
         INSERT INTO acks (user_id, conversation_id, seq)
         SELECT * FROM unnest($8::text[], $9::text[], $10::int8[]) ON CONFLICT DO NOTHING";
    sqlx::query(sql)
        .bind(users)
        .bind(conversations)
        .bind(acked)
        .bind(read)
        .bind(unpark_u)
        .bind(unpark_c)
        .bind(unpark_s)
        .bind(park_u)
        .bind(park_c)
        .bind(park_s)
        .execute(conn)
        .await?;
    Ok(())
}

/// A row of the combined lookup: a stored duplicate (no acker) or an acked message.
#[derive(sqlx::FromRow)]
struct FoundRow {
    acker: Option<String>,
    joined_seq: Option<i64>,
    #[sqlx(flatten)]
    message: MessageRow,
}

/// A list of pairs as its two columns.
fn columns2<'a>(pairs: &[(&'a str, &'a str)]) -> (Vec<&'a str>, Vec<&'a str>) {
    pairs.iter().copied().unzip()
}

/// A list of marks as its three columns.
fn columns3(marks: &[Mark]) -> (Vec<&str>, Vec<&str>, Vec<i64>) {
    let mut columns = (
        Vec::with_capacity(marks.len()),
        Vec::with_capacity(marks.len()),
        Vec::with_capacity(marks.len()),
    );
    for (user, conversation, seq) in marks {
        columns.0.push(user.as_str());
        columns.1.push(conversation.as_str());
        columns.2.push(*seq);
    }
    columns
}
