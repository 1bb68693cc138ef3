//! Set-based storing of a run of SEND and ACK commands: a constant number of statements per run,
//! whatever its length.
//!
//! Each statement is a round trip to sqlx's SQLite worker thread, and those round trips — not
//! SQLite — are what a message costs when it is stored statement by statement. Here a run of
//! hundreds of sends and acks costs about a dozen: look up duplicates, groups and members; create
//! new conversations; allocate every conversation's seqs in one `UPDATE … RETURNING`; insert all
//! messages; look up the acked messages; fold all acks (the senders' own included) into the
//! users' `ackedSeq`; mark first deliveries. Per-command outcomes keep the order of the run.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use tokio::sync::oneshot;

use super::writer::{Cache, Done};
use super::{from_row, Row, MESSAGE_COLUMNS, MESSAGE_COLUMNS_M};
use crate::error::{Error, Result};
use crate::model::{direct_conversation_id, new_id, now_ms, StoredMessage, Target};
use crate::store::acks::AckState;
use crate::store::{Acked, NewMessage, Sent};

/// A SEND or ACK command of the run.
pub(super) enum Hot {
    Send {
        msg: NewMessage,
        group: bool,
        reply: oneshot::Sender<Result<Sent>>,
    },
    Ack {
        user: String,
        message_id: String,
        reply: oneshot::Sender<Result<Acked>>,
    },
}

impl Hot {
    /// Not run: its batch already failed.
    pub(super) fn pending(self) -> Done {
        let e = || Error::Unavailable("not run".into());
        match self {
            Hot::Send { reply, .. } => Done::Sent(reply, Err(e())),
            Hot::Ack { reply, .. } => Done::Acked(reply, Err(e())),
        }
    }
}

/// What a send turned into while planning.
enum Plan {
    /// Stored before (`clientMsgId` seen): answer with the first result.
    Duplicate(StoredMessage),
    /// Same `(sender, clientMsgId)` as an earlier send of this run.
    DuplicateOf(usize),
    Refused(Error),
    New {
        conversation_id: String,
        target: Target,
        members: Vec<String>,
    },
}

/// Runs the segment inside the caller's transaction. Returns one `Done` per command, in order,
/// and `Err` when a database error means the whole transaction must roll back.
pub(super) async fn run(
    conn: &mut SqliteConnection,
    cache: &mut Cache,
    cmds: Vec<Hot>,
) -> (Vec<Done>, Result<()>) {
    let mut sends = Vec::new();
    let mut acks = Vec::new();
    for (i, c) in cmds.into_iter().enumerate() {
        match c {
            Hot::Send { msg, group, reply } => sends.push((i, msg, group, reply)),
            Hot::Ack {
                user,
                message_id,
                reply,
            } => acks.push((i, user, message_id, reply)),
        }
    }
    let total = sends.len() + acks.len();
    let requests: Vec<(&NewMessage, bool)> = sends.iter().map(|(_, m, g, _)| (m, *g)).collect();
    let ack_requests: Vec<(&str, &str)> = acks
        .iter()
        .map(|(_, u, id, _)| (u.as_str(), id.as_str()))
        .collect();
    let outcome = store(conn, cache, &requests, &ack_requests).await;
    let mut done: Vec<Option<Done>> = (0..total).map(|_| None).collect();
    match outcome {
        Ok((sent, acked)) => {
            for ((i, _, _, reply), r) in sends.into_iter().zip(sent) {
                done[i] = Some(Done::Sent(reply, r));
            }
            for ((i, _, _, reply), r) in acks.into_iter().zip(acked) {
                done[i] = Some(Done::Acked(reply, r));
            }
            (
                done.into_iter()
                    .map(|d| d.expect("every command answered"))
                    .collect(),
                Ok(()),
            )
        }
        Err(e) => {
            for (i, _, _, reply) in sends {
                done[i] = Some(Done::Sent(
                    reply,
                    Err(Error::Unavailable("not stored".into())),
                ));
            }
            for (i, _, _, reply) in acks {
                done[i] = Some(Done::Acked(
                    reply,
                    Err(Error::Unavailable("not stored".into())),
                ));
            }
            (
                done.into_iter()
                    .map(|d| d.expect("every command answered"))
                    .collect(),
                Err(e),
            )
        }
    }
}

type Outcomes = (Vec<Result<Sent>>, Vec<Result<Acked>>);

async fn store(
    conn: &mut SqliteConnection,
    cache: &mut Cache,
    sends: &[(&NewMessage, bool)],
    acks: &[(&str, &str)],
) -> Result<Outcomes> {
    let plans = plan_sends(conn, cache, sends).await?;
    let (mut stored, marks) = insert_new(conn, cache, sends, &plans).await?;
    let (ack_results, ack_marks, delivered_candidates) = lookup_acks(conn, acks).await?;
    fold_acks(conn, marks.into_iter().chain(ack_marks)).await?;
    let first = mark_delivered(conn, &delivered_candidates).await?;

    let mut sent: Vec<Result<Sent>> = Vec::with_capacity(sends.len());
    for (i, plan) in plans.into_iter().enumerate() {
        sent.push(match plan {
            Plan::Duplicate(message) => Ok(Sent {
                message,
                duplicate: true,
                members: Vec::new(),
            }),
            Plan::DuplicateOf(j) => match &sent[j] {
                Ok(s) => Ok(Sent {
                    message: s.message.clone(),
                    duplicate: true,
                    members: Vec::new(),
                }),
                Err(e) => Err(Error::Conflict(format!(
                    "duplicate of a refused message: {e}"
                ))),
            },
            Plan::Refused(e) => Err(e),
            Plan::New { members, .. } => {
                let message = stored.remove(&i).expect("new sends were stored");
                Ok(Sent {
                    message,
                    duplicate: false,
                    members,
                })
            }
        });
    }
    let mut seen_first: HashSet<String> = HashSet::new();
    let acked = ack_results
        .into_iter()
        .map(|r| {
            r.map(|(message, candidate)| {
                let first_delivery = candidate
                    && first.contains(&message.message_id)
                    && seen_first.insert(message.message_id.clone());
                Acked {
                    message,
                    first_delivery,
                }
            })
        })
        .collect();
    Ok((sent, acked))
}

/// An `IN (…)` list of bound values.
fn push_in<'a>(qb: &mut QueryBuilder<'a, Sqlite>, values: impl IntoIterator<Item = &'a str>) {
    qb.push("(");
    let mut list = qb.separated(", ");
    for v in values {
        list.push_bind(v);
    }
    list.push_unseparated(")");
}

/// Duplicates, group lookups and membership checks: everything decided before writing.
async fn plan_sends(
    conn: &mut SqliteConnection,
    cache: &mut Cache,
    sends: &[(&NewMessage, bool)],
) -> Result<Vec<Plan>> {
    // Sends whose (sender, clientMsgId) is already stored.
    let keys: Vec<(&str, &str)> = sends
        .iter()
        .filter_map(|(m, _)| m.client_msg_id.as_deref().map(|c| (m.from.as_str(), c)))
        .collect();
    let mut existing: HashMap<(String, String), StoredMessage> = HashMap::new();
    if !keys.is_empty() {
        let mut qb = QueryBuilder::<Sqlite>::new(format!("SELECT {MESSAGE_COLUMNS_M} FROM ("));
        qb.push_values(keys, |mut b, (s, c)| {
            b.push_bind(s).push_bind(c);
        });
        // A join against the VALUES list: SQLite plans a row-value IN (VALUES …) as a table scan.
        qb.push(") AS d JOIN messages m ON m.sender = d.column1 AND m.client_msg_id = d.column2");
        let rows: Vec<Row> = qb.build_query_as().fetch_all(&mut *conn).await?;
        for m in rows.into_iter().map(from_row) {
            existing.insert(
                (m.from.clone(), m.client_msg_id.clone().unwrap_or_default()),
                m,
            );
        }
    }

    // Groups addressed, and their active members.
    let group_ids: BTreeSet<&str> = sends
        .iter()
        .filter(|(_, g)| *g)
        .map(|(m, _)| m.to.as_str())
        .collect();
    let mut group_conv: HashMap<String, String> = HashMap::new();
    let mut members: HashMap<String, Vec<String>> = HashMap::new();
    if !group_ids.is_empty() {
        let mut qb =
            QueryBuilder::<Sqlite>::new("SELECT id, conversation_id FROM groups WHERE id IN ");
        push_in(&mut qb, group_ids.iter().copied());
        let rows: Vec<(String, String)> = qb.build_query_as().fetch_all(&mut *conn).await?;
        group_conv.extend(rows);
        if !group_conv.is_empty() {
            let mut qb = QueryBuilder::<Sqlite>::new("SELECT conversation_id, user_id FROM memberships WHERE active = 1 AND conversation_id IN ");
            push_in(&mut qb, group_conv.values().map(String::as_str));
            qb.push(" ORDER BY user_id");
            let rows: Vec<(String, String)> = qb.build_query_as().fetch_all(&mut *conn).await?;
            for (conv, user) in rows {
                members.entry(conv).or_default().push(user);
            }
        }
    }

    // Recipients' display names for 1:1 messages.
    let unknown: BTreeSet<&str> = sends
        .iter()
        .filter(|(_, g)| !*g)
        .map(|(m, _)| m.to.as_str())
        .filter(|u| !cache.names.contains_key(*u))
        .collect();
    if !unknown.is_empty() {
        let mut qb = QueryBuilder::<Sqlite>::new("SELECT id, name FROM users WHERE id IN ");
        push_in(&mut qb, unknown.iter().copied());
        let rows: Vec<(String, String)> = qb.build_query_as().fetch_all(&mut *conn).await?;
        cache.names.extend(rows);
    }

    let mut first_of: HashMap<(&str, &str), usize> = HashMap::new();
    let mut plans = Vec::with_capacity(sends.len());
    for (i, (m, group)) in sends.iter().enumerate() {
        if let Some(cid) = m.client_msg_id.as_deref() {
            if let Some(found) = existing.get(&(m.from.clone(), cid.to_owned())) {
                plans.push(Plan::Duplicate(found.clone()));
                continue;
            }
            if let Some(&j) = first_of.get(&(m.from.as_str(), cid)) {
                plans.push(Plan::DuplicateOf(j));
                continue;
            }
        }
        let plan = if *group {
            match group_conv.get(&m.to) {
                None => Plan::Refused(Error::NotFound(format!("no group {}", m.to))),
                Some(conv) => {
                    let list = members.get(conv).cloned().unwrap_or_default();
                    if list.binary_search(&m.from).is_err() {
                        Plan::Refused(Error::Forbidden("not a member of this group".into()))
                    } else {
                        Plan::New {
                            conversation_id: conv.clone(),
                            target: Target::Group {
                                group_id: m.to.clone(),
                            },
                            members: list,
                        }
                    }
                }
            }
        } else {
            let to_name = cache
                .names
                .get(&m.to)
                .cloned()
                .unwrap_or_else(|| m.to.clone());
            Plan::New {
                conversation_id: direct_conversation_id(&m.from, &m.to),
                target: Target::Direct {
                    to: m.to.clone(),
                    to_name,
                },
                members: Vec::new(),
            }
        };
        if let (Plan::New { .. }, Some(cid)) = (&plan, m.client_msg_id.as_deref()) {
            first_of.insert((m.from.as_str(), cid), i);
        }
        plans.push(plan);
    }
    Ok(plans)
}

/// Creates new 1:1 conversations, allocates seqs, inserts the new messages. Returns them by send
/// index, and the (user, conversation, seq) acks they imply for their senders.
async fn insert_new(
    conn: &mut SqliteConnection,
    cache: &mut Cache,
    sends: &[(&NewMessage, bool)],
    plans: &[Plan],
) -> Result<(HashMap<usize, StoredMessage>, Vec<(String, String, i64)>)> {
    let new: Vec<(usize, &str)> = plans
        .iter()
        .enumerate()
        .filter_map(|(i, p)| match p {
            Plan::New {
                conversation_id, ..
            } => Some((i, conversation_id.as_str())),
            _ => None,
        })
        .collect();
    if new.is_empty() {
        return Ok((HashMap::new(), Vec::new()));
    }

    // New 1:1 conversations and their two memberships.
    let mut fresh: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    for (i, conv) in &new {
        let (m, group) = sends[*i];
        if !group && !cache.conversations.contains(*conv) {
            fresh.insert(conv, (m.from.as_str(), m.to.as_str()));
        }
    }
    if !fresh.is_empty() {
        let now = now_ms();
        let mut qb = QueryBuilder::<Sqlite>::new(
            "INSERT INTO conversations (id, kind, last_seq, created_at) ",
        );
        qb.push_values(fresh.keys(), |mut b, id| {
            b.push_bind(*id)
                .push("'direct'")
                .push_bind(0i64)
                .push_bind(now);
        });
        qb.push(" ON CONFLICT (id) DO NOTHING RETURNING id");
        let created: Vec<(String,)> = qb.build_query_as().fetch_all(&mut *conn).await?;
        let mut rows: Vec<(&str, &str)> = Vec::new();
        for (id,) in &created {
            let (a, b) = fresh[id.as_str()];
            rows.push((a, id.as_str()));
            if a != b {
                rows.push((b, id.as_str()));
            }
        }
        if !rows.is_empty() {
            let mut qb =
                QueryBuilder::<Sqlite>::new("INSERT INTO memberships (user_id, conversation_id) ");
            qb.push_values(rows, |mut b, (user, conv)| {
                b.push_bind(user).push_bind(conv);
            });
            qb.push(" ON CONFLICT DO NOTHING");
            qb.build().execute(&mut *conn).await?;
        }
        cache
            .conversations
            .extend(fresh.keys().map(|k| (*k).to_owned()));
    }

    // Every conversation's seqs in one statement: last_seq += count, then count down from it.
    let mut counts: BTreeMap<&str, i64> = BTreeMap::new();
    for (_, conv) in &new {
        *counts.entry(conv).or_default() += 1;
    }
    let mut qb = QueryBuilder::<Sqlite>::new(
        "UPDATE conversations SET last_seq = conversations.last_seq + d.column2 FROM (",
    );
    qb.push_values(counts.iter(), |mut b, (id, n)| {
        b.push_bind(*id).push_bind(*n);
    });
    qb.push(") AS d WHERE conversations.id = d.column1 RETURNING conversations.id, conversations.last_seq");
    let lasts: Vec<(String, i64)> = qb.build_query_as().fetch_all(&mut *conn).await?;
    let mut next: HashMap<String, i64> = lasts
        .into_iter()
        .map(|(id, last)| (id.clone(), last - counts[id.as_str()] + 1))
        .collect();

    let now = now_ms();
    let mut stored = HashMap::with_capacity(new.len());
    let mut marks = Vec::with_capacity(new.len());
    for (i, conv) in &new {
        let (m, _) = sends[*i];
        let Plan::New { target, .. } = &plans[*i] else {
            unreachable!("filtered to new sends")
        };
        let seq = next
            .get_mut(*conv)
            .ok_or_else(|| Error::Internal(format!("conversation {conv} missing")))?;
        let message = StoredMessage {
            message_id: new_id(),
            conversation_id: (*conv).to_owned(),
            seq: *seq,
            from: m.from.clone(),
            from_name: m.from_name.clone(),
            target: target.clone(),
            body: m.body.clone(),
            file_type: m.file_type,
            client_msg_id: m.client_msg_id.clone(),
            created_at: now,
            request_id: m.request_id.clone(),
        };
        *seq += 1;
        marks.push((
            message.from.clone(),
            message.conversation_id.clone(),
            message.seq,
        ));
        stored.insert(*i, message);
    }

    let mut qb = QueryBuilder::<Sqlite>::new(format!("INSERT INTO messages ({MESSAGE_COLUMNS}) "));
    let mut order: Vec<&usize> = stored.keys().collect();
    order.sort();
    qb.push_values(order.into_iter().map(|i| &stored[i]), |mut b, m| {
        let (recipient, recipient_name, group_id) = match &m.target {
            Target::Direct { to, to_name } => (Some(to.as_str()), Some(to_name.as_str()), None),
            Target::Group { group_id } => (None, None, Some(group_id.as_str())),
        };
        b.push_bind(m.conversation_id.as_str())
            .push_bind(m.seq)
            .push_bind(m.message_id.as_str())
            .push_bind(m.from.as_str())
            .push_bind(m.from_name.as_str())
            .push_bind(recipient)
            .push_bind(recipient_name)
            .push_bind(group_id)
            .push_bind(m.body.as_str())
            .push_bind(m.file_type)
            .push_bind(m.client_msg_id.as_deref())
            .push_bind(m.request_id.as_str())
            .push_bind(m.created_at);
    });
    qb.build().execute(&mut *conn).await?;
    Ok((stored, marks))
}

type AckLookup = (
    Vec<Result<(StoredMessage, bool)>>,
    Vec<(String, String, i64)>,
    Vec<String>,
);

/// Finds each acked message and checks the acker may ack it. Returns per-ack results (with
/// whether it may be a first delivery), the acks to fold in, and the delivery candidates.
async fn lookup_acks(conn: &mut SqliteConnection, acks: &[(&str, &str)]) -> Result<AckLookup> {
    if acks.is_empty() {
        return Ok((Vec::new(), Vec::new(), Vec::new()));
    }
    let mut qb = QueryBuilder::<Sqlite>::new(format!(
        "SELECT d.column1, {MESSAGE_COLUMNS_M}, ms.joined_seq FROM ("
    ));
    qb.push_values(acks.iter(), |mut b, (user, id)| {
        b.push_bind(*user).push_bind(*id);
    });
    qb.push(
        ") AS d JOIN messages m ON m.message_id = d.column2
         LEFT JOIN memberships ms ON ms.conversation_id = m.conversation_id AND ms.user_id = d.column1",
    );
    type LookupRow = (
        String,
        String,
        i64,
        String,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
        String,
        i64,
        Option<String>,
        String,
        i64,
        Option<i64>,
    );
    let rows: Vec<LookupRow> = qb.build_query_as().fetch_all(&mut *conn).await?;
    let mut found: HashMap<(String, String), (StoredMessage, Option<i64>)> =
        HashMap::with_capacity(rows.len());
    for (
        user,
        c,
        seq,
        id,
        from,
        from_name,
        rcpt,
        rcpt_name,
        group,
        body,
        ft,
        cmid,
        rid,
        at,
        joined,
    ) in rows
    {
        let m = from_row((
            c, seq, id, from, from_name, rcpt, rcpt_name, group, body, ft, cmid, rid, at,
        ));
        found.insert((user, m.message_id.clone()), (m, joined));
    }
    let mut results = Vec::with_capacity(acks.len());
    let mut marks = Vec::new();
    let mut candidates = Vec::new();
    for (user, id) in acks {
        let Some((message, joined)) = found.get(&((*user).to_owned(), (*id).to_owned())) else {
            results.push(Err(Error::NotFound(format!("no message {id}"))));
            continue;
        };
        if !joined.is_some_and(|j| message.seq > j) {
            results.push(Err(Error::Forbidden(
                "only a recipient may ack a message".into(),
            )));
            continue;
        }
        if message.from == *user {
            // The sender's other devices ack their copies; the sender counted as acked when it sent.
            results.push(Ok((message.clone(), false)));
            continue;
        }
        marks.push((
            (*user).to_owned(),
            message.conversation_id.clone(),
            message.seq,
        ));
        let candidate = message.is_direct_recipient(user);
        if candidate {
            candidates.push(message.message_id.clone());
        }
        results.push(Ok((message.clone(), candidate)));
    }
    Ok((results, marks, candidates))
}

/// Folds acks into the users' `ackedSeq`: one read of the positions and parked acks of every
/// (user, conversation) touched, then at most three writes.
async fn fold_acks(
    conn: &mut SqliteConnection,
    marks: impl Iterator<Item = (String, String, i64)>,
) -> Result<()> {
    let mut by_pair: BTreeMap<(String, String), Vec<i64>> = BTreeMap::new();
    for (user, conv, seq) in marks {
        by_pair.entry((user, conv)).or_default().push(seq);
    }
    if by_pair.is_empty() {
        return Ok(());
    }
    let pairs: Vec<(&str, &str)> = by_pair
        .keys()
        .map(|(u, c)| (u.as_str(), c.as_str()))
        .collect();
    let mut states: HashMap<(String, String), AckState> = HashMap::with_capacity(pairs.len());
    let mut qb =
        QueryBuilder::<Sqlite>::new("SELECT ms.user_id, ms.conversation_id, ms.acked_seq FROM (");
    qb.push_values(pairs.iter(), |mut b, (u, c)| {
        b.push_bind(*u).push_bind(*c);
    });
    qb.push(
        ") AS d JOIN memberships ms ON ms.user_id = d.column1 AND ms.conversation_id = d.column2",
    );
    let rows: Vec<(String, String, i64)> = qb.build_query_as().fetch_all(&mut *conn).await?;
    for (u, c, acked) in rows {
        states.insert(
            (u, c),
            AckState {
                acked,
                parked: BTreeSet::new(),
            },
        );
    }
    let mut qb = QueryBuilder::<Sqlite>::new("SELECT a.user_id, a.conversation_id, a.seq FROM (");
    qb.push_values(pairs.iter(), |mut b, (u, c)| {
        b.push_bind(*u).push_bind(*c);
    });
    qb.push(") AS d JOIN acks a ON a.user_id = d.column1 AND a.conversation_id = d.column2");
    let rows: Vec<(String, String, i64)> = qb.build_query_as().fetch_all(&mut *conn).await?;
    for (u, c, seq) in rows {
        if let Some(s) = states.get_mut(&(u, c)) {
            s.parked.insert(seq);
        }
    }

    let mut advance: Vec<(&str, &str, i64)> = Vec::new();
    let mut unpark: Vec<(&str, &str, i64)> = Vec::new();
    let mut park: Vec<(&str, &str, i64)> = Vec::new();
    for ((user, conv), seqs) in &by_pair {
        let Some(before) = states.get(&(user.clone(), conv.clone())) else {
            continue;
        };
        let after = before.fold(seqs.iter().copied());
        if after.acked != before.acked {
            advance.push((user, conv, after.acked));
        }
        unpark.extend(
            before
                .parked
                .difference(&after.parked)
                .map(|s| (user.as_str(), conv.as_str(), *s)),
        );
        park.extend(
            after
                .parked
                .difference(&before.parked)
                .map(|s| (user.as_str(), conv.as_str(), *s)),
        );
    }
    if !advance.is_empty() {
        let mut qb =
            QueryBuilder::<Sqlite>::new("UPDATE memberships SET acked_seq = d.column3 FROM (");
        qb.push_values(advance, |mut b, (u, c, s)| {
            b.push_bind(u).push_bind(c).push_bind(s);
        });
        qb.push(") AS d WHERE memberships.user_id = d.column1 AND memberships.conversation_id = d.column2");
        qb.build().execute(&mut *conn).await?;
    }
    if !unpark.is_empty() {
        let mut qb = QueryBuilder::<Sqlite>::new(
            "DELETE FROM acks WHERE (user_id, conversation_id, seq) IN (",
        );
        qb.push_values(unpark, |mut b, (u, c, s)| {
            b.push_bind(u).push_bind(c).push_bind(s);
        });
        qb.push(")");
        qb.build().execute(&mut *conn).await?;
    }
    if !park.is_empty() {
        let mut qb =
            QueryBuilder::<Sqlite>::new("INSERT INTO acks (user_id, conversation_id, seq) ");
        qb.push_values(park, |mut b, (u, c, s)| {
            b.push_bind(u).push_bind(c).push_bind(s);
        });
        qb.push(" ON CONFLICT DO NOTHING");
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Marks 1:1 messages delivered; returns the ids delivered for the first time.
async fn mark_delivered(conn: &mut SqliteConnection, ids: &[String]) -> Result<HashSet<String>> {
    if ids.is_empty() {
        return Ok(HashSet::new());
    }
    let mut qb = QueryBuilder::<Sqlite>::new("UPDATE messages SET delivered_at = ");
    qb.push_bind(now_ms());
    qb.push(" WHERE delivered_at IS NULL AND message_id IN ");
    push_in(&mut qb, ids.iter().map(String::as_str));
    qb.push(" RETURNING message_id");
    let rows: Vec<(String,)> = qb.build_query_as().fetch_all(&mut *conn).await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}
